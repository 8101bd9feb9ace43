//! Element types a kernel can read or write: fp32 and fp16 (stored as raw u16 bits). Kernels are generic
//! over these so each (gradient dtype, output dtype) pair is one monomorphised loop, not a copy.

pub trait Dtype {
    type Raw: Copy;
    fn to_f32(r: Self::Raw) -> f32;
    fn from_f32(x: f32) -> Self::Raw;

    /// Load 4 consecutive elements as f32x4.
    #[cfg(target_arch = "wasm32")]
    unsafe fn load4(p: *const Self::Raw) -> core::arch::wasm32::v128;
    /// Store an f32x4 as 4 consecutive elements.
    #[cfg(target_arch = "wasm32")]
    unsafe fn store4(p: *mut Self::Raw, v: core::arch::wasm32::v128);
}

pub struct F32;
pub struct F16;

impl Dtype for F32 {
    type Raw = f32;
    #[inline(always)]
    fn to_f32(r: f32) -> f32 {
        r
    }
    #[inline(always)]
    fn from_f32(x: f32) -> f32 {
        x
    }
    #[cfg(target_arch = "wasm32")]
    #[inline(always)]
    unsafe fn load4(p: *const f32) -> core::arch::wasm32::v128 {
        core::arch::wasm32::v128_load(p as *const core::arch::wasm32::v128)
    }
    #[cfg(target_arch = "wasm32")]
    #[inline(always)]
    unsafe fn store4(p: *mut f32, v: core::arch::wasm32::v128) {
        core::arch::wasm32::v128_store(p as *mut core::arch::wasm32::v128, v)
    }
}

impl Dtype for F16 {
    type Raw = u16;
    #[inline(always)]
    fn to_f32(r: u16) -> f32 {
        crate::half::f16_to_f32(r)
    }
    #[inline(always)]
    fn from_f32(x: f32) -> u16 {
        crate::half::f32_to_f16(x)
    }
    #[cfg(target_arch = "wasm32")]
    #[inline(always)]
    unsafe fn load4(p: *const u16) -> core::arch::wasm32::v128 {
        use core::arch::wasm32::*;
        let h = u32x4_extend_low_u16x8(v128_load64_zero(p as *const u64));
        crate::half::simd::f16x4_to_f32x4(h)
    }
    #[cfg(target_arch = "wasm32")]
    #[inline(always)]
    unsafe fn store4(p: *mut u16, v: core::arch::wasm32::v128) {
        use core::arch::wasm32::*;
        let h = crate::half::simd::f32x4_to_f16x4(v);
        // lanes hold values <= 0xffff, so the saturating narrow is exact
        v128_store64_lane::<0>(u16x8_narrow_i32x4(h, h), p as *mut u64);
    }
}
