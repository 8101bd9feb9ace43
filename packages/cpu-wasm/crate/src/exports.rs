//! The module's exported functions. Pointers are byte offsets into the shared memory (u32), lengths
//! are element counts; scalars arrive as f32 so the caller controls their rounding.

use crate::adamw::{simd as adamw, Hyper};
use crate::dtype::{F16, F32};
use crate::{blas::simd as blas, half, reduce::simd as reduce};

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn hyper(
    b1: f32,
    omb1: f32,
    b2: f32,
    omb2: f32,
    decay: f32,
    ss: f32,
    isb: f32,
    eps: f32,
    gs: f32,
) -> Hyper {
    Hyper {
        beta1: b1,
        one_minus_beta1: omb1,
        beta2: b2,
        one_minus_beta2: omb2,
        decay,
        step_size: ss,
        inv_sqrt_bc2: isb,
        eps,
        gscale: gs,
    }
}

macro_rules! classic {
    ($name:ident, $g:ty) => {
        /// Classic AdamW in place: p, m, v fp32; gradient of the given dtype.
        #[no_mangle]
        #[allow(clippy::too_many_arguments)]
        pub unsafe extern "C" fn $name(
            p: *mut f32,
            g: *const <$g as crate::dtype::Dtype>::Raw,
            m: *mut f32,
            v: *mut f32,
            n: usize,
            b1: f32,
            omb1: f32,
            b2: f32,
            omb2: f32,
            decay: f32,
            ss: f32,
            isb: f32,
            eps: f32,
            gs: f32,
        ) {
            adamw::adamw::<$g>(
                p,
                g,
                m,
                v,
                n,
                &hyper(b1, omb1, b2, omb2, decay, ss, isb, eps, gs),
            );
        }
    };
}
classic!(adamw_f32g, F32);
classic!(adamw_f16g, F16);

macro_rules! classic_f16p {
    ($name:ident, $g:ty) => {
        /// Classic AdamW in place that also writes the new params as fp16 bits (round to nearest
        /// even) to `p16`, in the same pass.
        #[no_mangle]
        #[allow(clippy::too_many_arguments)]
        pub unsafe extern "C" fn $name(
            p: *mut f32,
            g: *const <$g as crate::dtype::Dtype>::Raw,
            m: *mut f32,
            v: *mut f32,
            p16: *mut u16,
            n: usize,
            b1: f32,
            omb1: f32,
            b2: f32,
            omb2: f32,
            decay: f32,
            ss: f32,
            isb: f32,
            eps: f32,
            gs: f32,
        ) {
            adamw::adamw_f16p::<$g>(
                p,
                g,
                m,
                v,
                p16,
                n,
                &hyper(b1, omb1, b2, omb2, decay, ss, isb, eps, gs),
            );
        }
    };
}
classic_f16p!(adamw_f32g_f16p, F32);
classic_f16p!(adamw_f16g_f16p, F16);

macro_rules! step_only {
    ($name:ident, $g:ty, $o:ty) => {
        /// Step-only AdamW: m, v fp32 updated in place, the step written to `out`.
        #[no_mangle]
        #[allow(clippy::too_many_arguments)]
        pub unsafe extern "C" fn $name(
            g: *const <$g as crate::dtype::Dtype>::Raw,
            m: *mut f32,
            v: *mut f32,
            out: *mut <$o as crate::dtype::Dtype>::Raw,
            n: usize,
            b1: f32,
            omb1: f32,
            b2: f32,
            omb2: f32,
            ss: f32,
            isb: f32,
            eps: f32,
            gs: f32,
        ) {
            adamw::step::<$g, $o>(
                g,
                m,
                v,
                out,
                n,
                &hyper(b1, omb1, b2, omb2, 1.0, ss, isb, eps, gs),
            );
        }
    };
}
step_only!(adamw_step_f32g_f32o, F32, F32);
step_only!(adamw_step_f32g_f16o, F32, F16);
step_only!(adamw_step_f16g_f32o, F16, F32);
step_only!(adamw_step_f16g_f16o, F16, F16);

#[no_mangle]
pub unsafe extern "C" fn sum_squares_f32(x: *const f32, n: usize) -> f64 {
    reduce::sum_squares::<F32>(x, n)
}

#[no_mangle]
pub unsafe extern "C" fn sum_squares_f16(x: *const u16, n: usize) -> f64 {
    reduce::sum_squares::<F16>(x, n)
}

#[no_mangle]
pub unsafe extern "C" fn count_nonfinite_f32(x: *const f32, n: usize) -> u32 {
    reduce::count_nonfinite::<F32>(x, n)
}

#[no_mangle]
pub unsafe extern "C" fn count_nonfinite_f16(x: *const u16, n: usize) -> u32 {
    reduce::count_nonfinite::<F16>(x, n)
}

/// dst (fp32) = src (fp16), exact.
#[no_mangle]
pub unsafe extern "C" fn f16_to_f32(src: *const u16, dst: *mut f32, n: usize) {
    let body = n & !3;
    let mut i = 0;
    while i < body {
        core::arch::wasm32::v128_store(
            dst.add(i) as *mut core::arch::wasm32::v128,
            <F16 as crate::dtype::Dtype>::load4(src.add(i)),
        );
        i += 4;
    }
    half::f16_to_f32_scalar(src.add(body), dst.add(body), n - body);
}

/// dst (fp16) = src (fp32), round to nearest even.
#[no_mangle]
pub unsafe extern "C" fn f32_to_f16(src: *const f32, dst: *mut u16, n: usize) {
    half::simd::f32_to_f16(src, dst, n)
}

#[no_mangle]
pub unsafe extern "C" fn axpy_f32(y: *mut f32, x: *const f32, n: usize, a: f32) {
    blas::axpy(y, x, n, a)
}

#[no_mangle]
pub unsafe extern "C" fn copy_f32(src: *const f32, dst: *mut f32, n: usize) {
    blas::copy(src, dst, n)
}
