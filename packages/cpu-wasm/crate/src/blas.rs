//! Level-1 helpers: y += a * x, and a plain stream copy (the benchmark's memory-bandwidth roofline).

/// Scalar reference of `y[i] += a * x[i]`.
pub unsafe fn axpy_scalar(y: *mut f32, x: *const f32, n: usize, a: f32) {
    for i in 0..n {
        *y.add(i) += a * *x.add(i);
    }
}

#[cfg(target_arch = "wasm32")]
pub mod simd {
    use core::arch::wasm32::*;

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
        super::axpy_scalar(y.add(body), x.add(body), n - body, a);
    }

    /// dst = src with 128-bit loads and stores, 4 vectors per iteration: what a kernel streaming
    /// through memory can reach, against which AdamW's bandwidth is judged.
    pub unsafe fn copy(src: *const f32, dst: *mut f32, n: usize) {
        let body = n & !15;
        let mut i = 0;
        while i < body {
            let a = v128_load(src.add(i) as *const v128);
            let b = v128_load(src.add(i + 4) as *const v128);
            let c = v128_load(src.add(i + 8) as *const v128);
            let d = v128_load(src.add(i + 12) as *const v128);
            v128_store(dst.add(i) as *mut v128, a);
            v128_store(dst.add(i + 4) as *mut v128, b);
            v128_store(dst.add(i + 8) as *mut v128, c);
            v128_store(dst.add(i + 12) as *mut v128, d);
            i += 16;
        }
        while i < n {
            *dst.add(i) = *src.add(i);
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axpy_matches_definition_on_odd_length() {
        let x: [f32; 7] = [1.0, -2.0, 3.5, 0.25, -0.5, 8.0, 1e-3];
        let mut y: [f32; 7] = [0.5; 7];
        unsafe { axpy_scalar(y.as_mut_ptr(), x.as_ptr(), 7, 2.0) };
        for i in 0..7 {
            assert_eq!(y[i], 0.5 + 2.0 * x[i]);
        }
    }
}
