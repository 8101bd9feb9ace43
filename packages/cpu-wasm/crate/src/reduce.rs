//! Reductions the trainer needs before a step: sum of squares (global-norm clipping, and a cheap
//! finiteness test: in f64 it is finite exactly when every element is) and non-finite counting.
//! The result for a given range is deterministic; callers split at fixed block boundaries and add the
//! block sums in a fixed order so a norm does not depend on the thread count.

use crate::dtype::Dtype;

/// Scalar reference of `sum(x[i]^2)` in f64 (the vector path's tail).
pub unsafe fn sum_squares_scalar<T: Dtype>(x: *const T::Raw, n: usize) -> f64 {
    let mut s = 0f64;
    for i in 0..n {
        let v = T::to_f32(*x.add(i)) as f64;
        s += v * v;
    }
    s
}

#[inline(always)]
fn is_nonfinite_bits(bits: u32) -> bool {
    bits & 0x7f80_0000 == 0x7f80_0000
}

/// Scalar reference: how many elements are NaN or +-infinity.
pub unsafe fn count_nonfinite_scalar<T: Dtype>(x: *const T::Raw, n: usize) -> u32 {
    let mut c = 0u32;
    for i in 0..n {
        c += is_nonfinite_bits(T::to_f32(*x.add(i)).to_bits()) as u32;
    }
    c
}

#[cfg(target_arch = "wasm32")]
pub mod simd {
    use super::*;
    use core::arch::wasm32::*;

    /// sum(x^2): 16 elements per iteration into 8 independent f64x2 accumulators (one accumulator
    /// would wait on the previous addition every step), combined in a fixed order, then the scalar tail.
    pub unsafe fn sum_squares<T: Dtype>(x: *const T::Raw, n: usize) -> f64 {
        let mut acc = [f64x2_splat(0.0); 8];
        let body = n & !15;
        let mut i = 0;
        while i < body {
            for j in 0..4 {
                let v = T::load4(x.add(i + 4 * j));
                let lo = f64x2_promote_low_f32x4(v);
                let hi = f64x2_promote_low_f32x4(i32x4_shuffle::<2, 3, 0, 1>(v, v));
                acc[2 * j] = f64x2_add(acc[2 * j], f64x2_mul(lo, lo));
                acc[2 * j + 1] = f64x2_add(acc[2 * j + 1], f64x2_mul(hi, hi));
            }
            i += 16;
        }
        let a = f64x2_add(f64x2_add(acc[0], acc[1]), f64x2_add(acc[2], acc[3]));
        let b = f64x2_add(f64x2_add(acc[4], acc[5]), f64x2_add(acc[6], acc[7]));
        let s = f64x2_add(a, b);
        f64x2_extract_lane::<0>(s)
            + f64x2_extract_lane::<1>(s)
            + sum_squares_scalar::<T>(x.add(body), n - body)
    }

    pub unsafe fn count_nonfinite<T: Dtype>(x: *const T::Raw, n: usize) -> u32 {
        let exp = u32x4_splat(0x7f80_0000);
        let mut acc = u32x4_splat(0);
        let body = n & !3;
        let mut i = 0;
        while i < body {
            let v = T::load4(x.add(i));
            // a true lane is all ones (-1): subtracting it counts one
            acc = i32x4_sub(acc, i32x4_eq(v128_and(v, exp), exp));
            i += 4;
        }
        u32x4_extract_lane::<0>(acc)
            .wrapping_add(u32x4_extract_lane::<1>(acc))
            .wrapping_add(u32x4_extract_lane::<2>(acc))
            .wrapping_add(u32x4_extract_lane::<3>(acc))
            .wrapping_add(count_nonfinite_scalar::<T>(x.add(body), n - body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::{F16, F32};

    #[test]
    fn sum_squares_is_exact_for_small_integers() {
        let x: [f32; 5] = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(unsafe { sum_squares_scalar::<F32>(x.as_ptr(), 5) }, 55.0);
        let h: [u16; 3] = [0x3c00, 0x4000, 0xc200]; // 1, 2, -3
        assert_eq!(unsafe { sum_squares_scalar::<F16>(h.as_ptr(), 3) }, 14.0);
    }

    #[test]
    fn sum_squares_of_max_floats_stays_finite_in_f64() {
        let x = [f32::MAX; 7];
        assert!(unsafe { sum_squares_scalar::<F32>(x.as_ptr(), 7) }.is_finite());
    }

    #[test]
    fn counts_nan_and_infinities_only() {
        let x = [
            1.0f32,
            f32::NAN,
            f32::INFINITY,
            -f32::INFINITY,
            f32::MAX,
            -0.0,
            1e-45,
        ];
        assert_eq!(unsafe { count_nonfinite_scalar::<F32>(x.as_ptr(), 7) }, 3);
        let h: [u16; 5] = [0x7c00, 0xfc00, 0x7e00, 0x7bff, 0x0001];
        assert_eq!(unsafe { count_nonfinite_scalar::<F16>(h.as_ptr(), 5) }, 3);
    }
}
