//! Level-1 helpers: y += a * x, and sum of squares. Small, but they prove the SIMD + shared-memory path.

/// Scalar reference of `y[i] += a * x[i]`.
pub fn axpy_scalar(y: &mut [f32], x: &[f32], a: f32) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += a * *xi;
    }
}

/// Scalar reference of `sum(x[i]^2)`, accumulated in f64 so the result does not depend on lane order.
pub fn sum_squares_scalar(x: &[f32]) -> f64 {
    x.iter().map(|v| (*v as f64) * (*v as f64)).sum()
}

#[cfg(target_arch = "wasm32")]
mod simd {
    use core::arch::wasm32::*;

    /// y += a * x over 4 lanes; tail handled by the scalar reference.
    pub unsafe fn axpy(y: *mut f32, x: *const f32, n: usize, a: f32) {
        let av = f32x4_splat(a);
        let body = n & !3;
        let mut i = 0;
        while i < body {
            let yv = v128_load(y.add(i) as *const v128);
            let xv = v128_load(x.add(i) as *const v128);
            v128_store(y.add(i) as *mut v128, f32x4_add(yv, f32x4_mul(av, xv)));
            i += 4;
        }
        super::axpy_scalar(
            core::slice::from_raw_parts_mut(y.add(body), n - body),
            core::slice::from_raw_parts(x.add(body), n - body),
            a,
        );
    }

    /// sum(x^2) with f64 lanes (2 x f64x2) so precision matches the scalar reference closely.
    pub unsafe fn sum_squares(x: *const f32, n: usize) -> f64 {
        let mut acc0 = f64x2_splat(0.0);
        let mut acc1 = f64x2_splat(0.0);
        let body = n & !3;
        let mut i = 0;
        while i < body {
            let v = v128_load(x.add(i) as *const v128);
            let lo = f64x2_promote_low_f32x4(v);
            let hi = f64x2_promote_low_f32x4(i32x4_shuffle::<2, 3, 0, 1>(v, v));
            acc0 = f64x2_add(acc0, f64x2_mul(lo, lo));
            acc1 = f64x2_add(acc1, f64x2_mul(hi, hi));
            i += 4;
        }
        let s = f64x2_add(acc0, acc1);
        f64x2_extract_lane::<0>(s)
            + f64x2_extract_lane::<1>(s)
            + super::sum_squares_scalar(core::slice::from_raw_parts(x.add(body), n - body))
    }
}

/// Exported: `y[0..n] += a * x[0..n]` (pointers are byte offsets into the shared memory).
#[cfg(target_arch = "wasm32")]
#[no_mangle]
pub unsafe extern "C" fn axpy_f32(y: *mut f32, x: *const f32, n: usize, a: f32) {
    simd::axpy(y, x, n, a)
}

/// Exported: `sum(x[0..n]^2)` as f64.
#[cfg(target_arch = "wasm32")]
#[no_mangle]
pub unsafe extern "C" fn sum_squares_f32(x: *const f32, n: usize) -> f64 {
    simd::sum_squares(x, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axpy_matches_definition_on_odd_length() {
        let x: [f32; 7] = [1.0, -2.0, 3.5, 0.25, -0.5, 8.0, 1e-3];
        let mut y: [f32; 7] = [0.5; 7];
        axpy_scalar(&mut y, &x, 2.0);
        for i in 0..7 {
            assert_eq!(y[i], 0.5 + 2.0 * x[i]);
        }
    }

    #[test]
    fn sum_squares_is_exact_for_small_integers() {
        let x: [f32; 5] = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(sum_squares_scalar(&x), 55.0);
    }
}
