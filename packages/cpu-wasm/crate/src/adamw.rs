//! AdamW: classic (fp32 params updated in place) and step-only (the LSP subspace case: the step
//! `-lr * mhat / (sqrt(vhat) + eps)` is written out and no params exist).
//!
//! Per element, with `g = grad * gscale` (gscale folds in loss-scale removal and global-norm clipping):
//!   m = beta1 * m + (1 - beta1) * g
//!   v = beta2 * v + (1 - beta2) * g * g
//!   denom = sqrt(v) * (1 / sqrt(1 - beta2^t)) + eps          (standard eps placement)
//!   classic:   p = p * (1 - lr * wd) - (lr / (1 - beta1^t)) * m / denom   (decoupled weight decay)
//!   step-only: out = -((lr / (1 - beta1^t)) * m / denom)
//! Classic AdamW can also write the new p as fp16 bits (round to nearest even, as
//! `half::f32_to_f16`) into a second array in the same pass: one extra 2-byte store per element, for
//! callers that keep an fp16 copy of the weights elsewhere (ZeRO-Offload's GPU weights).
//! The per-step scalars are computed once by the caller (in f64, rounded to f32) and passed in `Hyper`.

use crate::dtype::Dtype;

/// Per-step scalars of one tensor, already rounded to f32.
#[derive(Clone, Copy, Debug)]
pub struct Hyper {
    pub beta1: f32,
    pub one_minus_beta1: f32,
    pub beta2: f32,
    pub one_minus_beta2: f32,
    /// 1 - lr * weight_decay (classic only; 1 disables decay).
    pub decay: f32,
    /// lr / (1 - beta1^t).
    pub step_size: f32,
    /// 1 / sqrt(1 - beta2^t).
    pub inv_sqrt_bc2: f32,
    pub eps: f32,
    pub gscale: f32,
}

/// Correctly rounded square root without std (`core` has none for f32 in no_std).
#[inline(always)]
pub fn sqrt(x: f32) -> f32 {
    #[cfg(target_arch = "wasm32")]
    {
        use core::arch::wasm32::*;
        f32x4_extract_lane::<0>(f32x4_sqrt(f32x4_splat(x)))
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        x.sqrt()
    }
}

/// One element of the moment update; returns (m, v, m / denom scaled by step_size).
#[inline(always)]
fn moments(g: f32, m: f32, v: f32, h: &Hyper) -> (f32, f32, f32) {
    let g = g * h.gscale;
    let m = h.beta1 * m + h.one_minus_beta1 * g;
    let v = h.beta2 * v + h.one_minus_beta2 * (g * g);
    let denom = sqrt(v) * h.inv_sqrt_bc2 + h.eps;
    (m, v, (h.step_size * m) / denom)
}

/// Classic AdamW for one element: returns (p, m, v).
#[inline(always)]
pub fn adamw_elem(p: f32, g: f32, m: f32, v: f32, h: &Hyper) -> (f32, f32, f32) {
    let (m, v, u) = moments(g, m, v, h);
    (p * h.decay - u, m, v)
}

/// Step-only AdamW for one element: returns (step, m, v).
#[inline(always)]
pub fn step_elem(g: f32, m: f32, v: f32, h: &Hyper) -> (f32, f32, f32) {
    let (m, v, u) = moments(g, m, v, h);
    (-u, m, v)
}

/// Scalar reference of classic AdamW over `n` elements (also the vector path's tail).
pub unsafe fn adamw_scalar<G: Dtype>(
    p: *mut f32,
    g: *const G::Raw,
    m: *mut f32,
    v: *mut f32,
    n: usize,
    h: &Hyper,
) {
    for i in 0..n {
        let (pi, mi, vi) = adamw_elem(*p.add(i), G::to_f32(*g.add(i)), *m.add(i), *v.add(i), h);
        *p.add(i) = pi;
        *m.add(i) = mi;
        *v.add(i) = vi;
    }
}

/// Scalar reference of classic AdamW that also stores each new param as fp16 bits in `p16`. The fp32
/// results are those of `adamw_scalar`.
pub unsafe fn adamw_f16p_scalar<G: Dtype>(
    p: *mut f32,
    g: *const G::Raw,
    m: *mut f32,
    v: *mut f32,
    p16: *mut u16,
    n: usize,
    h: &Hyper,
) {
    for i in 0..n {
        let (pi, mi, vi) = adamw_elem(*p.add(i), G::to_f32(*g.add(i)), *m.add(i), *v.add(i), h);
        *p.add(i) = pi;
        *m.add(i) = mi;
        *v.add(i) = vi;
        *p16.add(i) = crate::half::f32_to_f16(pi);
    }
}

/// Scalar reference of step-only AdamW. `out` may alias `g` when both have the same dtype: each
/// element is read before it is written.
pub unsafe fn step_scalar<G: Dtype, O: Dtype>(
    g: *const G::Raw,
    m: *mut f32,
    v: *mut f32,
    out: *mut O::Raw,
    n: usize,
    h: &Hyper,
) {
    for i in 0..n {
        let (d, mi, vi) = step_elem(G::to_f32(*g.add(i)), *m.add(i), *v.add(i), h);
        *m.add(i) = mi;
        *v.add(i) = vi;
        *out.add(i) = O::from_f32(d);
    }
}

#[cfg(target_arch = "wasm32")]
pub mod simd {
    use super::*;
    use core::arch::wasm32::*;

    struct HyperV {
        beta1: v128,
        one_minus_beta1: v128,
        beta2: v128,
        one_minus_beta2: v128,
        decay: v128,
        step_size: v128,
        inv_sqrt_bc2: v128,
        eps: v128,
        gscale: v128,
    }

    #[inline(always)]
    fn splat(h: &Hyper) -> HyperV {
        HyperV {
            beta1: f32x4_splat(h.beta1),
            one_minus_beta1: f32x4_splat(h.one_minus_beta1),
            beta2: f32x4_splat(h.beta2),
            one_minus_beta2: f32x4_splat(h.one_minus_beta2),
            decay: f32x4_splat(h.decay),
            step_size: f32x4_splat(h.step_size),
            inv_sqrt_bc2: f32x4_splat(h.inv_sqrt_bc2),
            eps: f32x4_splat(h.eps),
            gscale: f32x4_splat(h.gscale),
        }
    }

    /// The scalar `moments`, lane-wise, same operations in the same order.
    #[inline(always)]
    fn moments4(g: v128, m: v128, v: v128, h: &HyperV) -> (v128, v128, v128) {
        let g = f32x4_mul(g, h.gscale);
        let m = f32x4_add(f32x4_mul(h.beta1, m), f32x4_mul(h.one_minus_beta1, g));
        let v = f32x4_add(
            f32x4_mul(h.beta2, v),
            f32x4_mul(h.one_minus_beta2, f32x4_mul(g, g)),
        );
        let denom = f32x4_add(f32x4_mul(f32x4_sqrt(v), h.inv_sqrt_bc2), h.eps);
        (m, v, f32x4_div(f32x4_mul(h.step_size, m), denom))
    }

    pub unsafe fn adamw<G: Dtype>(
        p: *mut f32,
        g: *const G::Raw,
        m: *mut f32,
        v: *mut f32,
        n: usize,
        h: &Hyper,
    ) {
        let hv = splat(h);
        let body = n & !3;
        let mut i = 0;
        while i < body {
            let pv = v128_load(p.add(i) as *const v128);
            let (mv, vv, u) = moments4(
                G::load4(g.add(i)),
                v128_load(m.add(i) as *const v128),
                v128_load(v.add(i) as *const v128),
                &hv,
            );
            v128_store(p.add(i) as *mut v128, f32x4_sub(f32x4_mul(pv, hv.decay), u));
            v128_store(m.add(i) as *mut v128, mv);
            v128_store(v.add(i) as *mut v128, vv);
            i += 4;
        }
        adamw_scalar::<G>(
            p.add(body),
            g.add(body),
            m.add(body),
            v.add(body),
            n - body,
            h,
        );
    }

    /// Elements per block of `adamw_f16p`: its p, g, m, v (8 KiB at most) stay in L1 between the
    /// update and the conversion.
    pub const F16P_BLOCK: usize = 512;

    /// Classic AdamW that also writes the new params as fp16 bits into `p16` (the bits of
    /// `half::f32_to_f16`): block by block, the update and then the conversion of the block's new
    /// params while they are still in L1. Memory sees one pass with one more 2-byte store per
    /// element. Converting each vector straight out of the update's registers (also software-
    /// pipelined) measured about a third slower (V8, x86-64): the conversion's integer work then
    /// queues behind the update's sqrt and div instead of running between them.
    pub unsafe fn adamw_f16p<G: Dtype>(
        p: *mut f32,
        g: *const G::Raw,
        m: *mut f32,
        v: *mut f32,
        p16: *mut u16,
        n: usize,
        h: &Hyper,
    ) {
        let mut i = 0;
        while i < n {
            let len = (n - i).min(F16P_BLOCK);
            adamw::<G>(p.add(i), g.add(i), m.add(i), v.add(i), len, h);
            crate::half::simd::f32_to_f16(p.add(i), p16.add(i), len);
            i += len;
        }
    }

    pub unsafe fn step<G: Dtype, O: Dtype>(
        g: *const G::Raw,
        m: *mut f32,
        v: *mut f32,
        out: *mut O::Raw,
        n: usize,
        h: &Hyper,
    ) {
        let hv = splat(h);
        let body = n & !3;
        let mut i = 0;
        while i < body {
            let (mv, vv, u) = moments4(
                G::load4(g.add(i)),
                v128_load(m.add(i) as *const v128),
                v128_load(v.add(i) as *const v128),
                &hv,
            );
            v128_store(m.add(i) as *mut v128, mv);
            v128_store(v.add(i) as *mut v128, vv);
            O::store4(out.add(i), f32x4_neg(u));
            i += 4;
        }
        step_scalar::<G, O>(
            g.add(body),
            m.add(body),
            v.add(body),
            out.add(body),
            n - body,
            h,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::{F16, F32};

    fn hyper(lr: f64, b1: f64, b2: f64, eps: f64, wd: f64, t: i32, gscale: f64) -> Hyper {
        let bc1 = 1.0 - b1.powi(t);
        let bc2 = 1.0 - b2.powi(t);
        Hyper {
            beta1: b1 as f32,
            one_minus_beta1: (1.0 - b1) as f32,
            beta2: b2 as f32,
            one_minus_beta2: (1.0 - b2) as f32,
            decay: (1.0 - lr * wd) as f32,
            step_size: (lr / bc1) as f32,
            inv_sqrt_bc2: (1.0 / bc2.sqrt()) as f32,
            eps: eps as f32,
            gscale: gscale as f32,
        }
    }

    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> f32 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        }
    }

    /// float64 AdamW straight from the definition (torch.optim.AdamW's formula).
    fn reference(p: &mut [f64], m: &mut [f64], v: &mut [f64], g: &[f64], lr: f64, wd: f64, t: i32) {
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8f64);
        for i in 0..p.len() {
            m[i] = b1 * m[i] + (1.0 - b1) * g[i];
            v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
            let mhat = m[i] / (1.0 - b1.powi(t));
            let vhat = v[i] / (1.0 - b2.powi(t));
            p[i] = p[i] * (1.0 - lr * wd) - lr * mhat / (vhat.sqrt() + eps);
        }
    }

    #[test]
    fn classic_matches_float64_reference_over_steps_on_odd_length() {
        let n = 37;
        let mut r = Lcg(7);
        let mut p: Vec<f32> = (0..n).map(|_| r.next()).collect();
        let (mut m, mut v) = (vec![0f32; n], vec![0f32; n]);
        let mut p64: Vec<f64> = p.iter().map(|x| *x as f64).collect();
        let (mut m64, mut v64) = (vec![0f64; n], vec![0f64; n]);
        let (lr, wd) = (1e-3, 0.01);
        for t in 1..=10 {
            let g: Vec<f32> = (0..n).map(|_| r.next()).collect();
            let g64: Vec<f64> = g.iter().map(|x| *x as f64).collect();
            let h = hyper(lr, 0.9, 0.999, 1e-8, wd, t, 1.0);
            unsafe {
                adamw_scalar::<F32>(
                    p.as_mut_ptr(),
                    g.as_ptr(),
                    m.as_mut_ptr(),
                    v.as_mut_ptr(),
                    n,
                    &h,
                )
            };
            reference(&mut p64, &mut m64, &mut v64, &g64, lr, wd, t);
            for i in 0..n {
                let tol = if t == 1 { 1e-6 } else { 1e-5 };
                assert!(
                    (p[i] as f64 - p64[i]).abs() <= tol * (p64[i].abs() + lr),
                    "t={t} p[{i}]"
                );
            }
        }
    }

    #[test]
    fn step_only_equals_classic_delta_without_decay() {
        // With wd = 0 and p = 0, classic leaves p = -u exactly: the same bits as step-only's output.
        let n = 19;
        let mut r = Lcg(3);
        let g: Vec<f32> = (0..n).map(|_| r.next()).collect();
        let h = hyper(1e-2, 0.9, 0.999, 1e-8, 0.0, 1, 0.5);
        let (mut p, mut m1, mut v1) = (vec![0f32; n], vec![0.1f32; n], vec![0.2f32; n]);
        let (mut m2, mut v2, mut out) = (vec![0.1f32; n], vec![0.2f32; n], vec![0f32; n]);
        unsafe {
            adamw_scalar::<F32>(
                p.as_mut_ptr(),
                g.as_ptr(),
                m1.as_mut_ptr(),
                v1.as_mut_ptr(),
                n,
                &h,
            );
            step_scalar::<F32, F32>(
                g.as_ptr(),
                m2.as_mut_ptr(),
                v2.as_mut_ptr(),
                out.as_mut_ptr(),
                n,
                &h,
            );
        }
        for i in 0..n {
            assert_eq!(p[i].to_bits(), out[i].to_bits(), "{i}");
            assert_eq!(m1[i].to_bits(), m2[i].to_bits());
            assert_eq!(v1[i].to_bits(), v2[i].to_bits());
        }
    }

    #[test]
    fn step_only_first_step_is_minus_lr_times_sign() {
        // At t = 1 with zero state, mhat = g and sqrt(vhat) = |g|: the step is -lr * g / (|g| + eps).
        let g = [0.5f32, -2.0, 1e-3];
        let h = hyper(0.1, 0.9, 0.999, 1e-8, 0.0, 1, 1.0);
        let (mut m, mut v, mut out) = ([0f32; 3], [0f32; 3], [0f32; 3]);
        unsafe {
            step_scalar::<F32, F32>(
                g.as_ptr(),
                m.as_mut_ptr(),
                v.as_mut_ptr(),
                out.as_mut_ptr(),
                3,
                &h,
            )
        };
        for i in 0..3 {
            let want = -0.1 * g[i] as f64 / ((g[i] as f64).abs() + 1e-8);
            assert!(
                (out[i] as f64 - want).abs() < 1e-6 * want.abs(),
                "{i}: {} vs {want}",
                out[i]
            );
        }
    }

    #[test]
    fn fp16_gradients_and_outputs_follow_the_conversions() {
        let n = 11;
        let mut r = Lcg(11);
        let g32: Vec<f32> = (0..n).map(|_| r.next()).collect();
        let g16: Vec<u16> = g32.iter().map(|x| crate::half::f32_to_f16(*x)).collect();
        let gback: Vec<f32> = g16.iter().map(|x| crate::half::f16_to_f32(*x)).collect();
        let h = hyper(1e-3, 0.9, 0.999, 1e-8, 0.0, 3, 1.0);
        let (mut ma, mut va, mut oa) = (vec![0.01f32; n], vec![0.02f32; n], vec![0f32; n]);
        let (mut mb, mut vb, mut ob) = (vec![0.01f32; n], vec![0.02f32; n], vec![0u16; n]);
        unsafe {
            step_scalar::<F32, F32>(
                gback.as_ptr(),
                ma.as_mut_ptr(),
                va.as_mut_ptr(),
                oa.as_mut_ptr(),
                n,
                &h,
            );
            step_scalar::<F16, F16>(
                g16.as_ptr(),
                mb.as_mut_ptr(),
                vb.as_mut_ptr(),
                ob.as_mut_ptr(),
                n,
                &h,
            );
        }
        for i in 0..n {
            assert_eq!(ma[i].to_bits(), mb[i].to_bits());
            assert_eq!(crate::half::f32_to_f16(oa[i]), ob[i]);
        }
    }

    #[test]
    fn step_only_output_may_alias_the_gradient() {
        let n = 9;
        let mut r = Lcg(5);
        let g: Vec<f32> = (0..n).map(|_| r.next()).collect();
        let h = hyper(1e-3, 0.9, 0.999, 1e-8, 0.0, 1, 1.0);
        let (mut m1, mut v1, mut out) = (vec![0f32; n], vec![0f32; n], vec![0f32; n]);
        let (mut m2, mut v2, mut inplace) = (vec![0f32; n], vec![0f32; n], g.clone());
        unsafe {
            step_scalar::<F32, F32>(
                g.as_ptr(),
                m1.as_mut_ptr(),
                v1.as_mut_ptr(),
                out.as_mut_ptr(),
                n,
                &h,
            );
            let gp = inplace.as_mut_ptr();
            step_scalar::<F32, F32>(gp, m2.as_mut_ptr(), v2.as_mut_ptr(), gp, n, &h);
        }
        assert_eq!(out, inplace);
    }

    #[test]
    fn grad_scale_multiplies_the_gradient_first() {
        let h2 = hyper(1e-3, 0.9, 0.999, 1e-8, 0.0, 1, 0.25);
        let h1 = hyper(1e-3, 0.9, 0.999, 1e-8, 0.0, 1, 1.0);
        let (a, b) = (step_elem(4.0, 0.0, 0.0, &h2), step_elem(1.0, 0.0, 0.0, &h1));
        assert_eq!(a, b);
    }

    #[test]
    fn fp16_param_copy_is_the_rounded_new_param_and_changes_nothing_else() {
        // odd length, fp32 and fp16 gradients, several steps; values spread over the fp16 range
        // (subnormal, normal, overflow to infinity; a tiny lr keeps them there) and a NaN gradient
        for gd16 in [false, true] {
            let n = 45;
            let mut r = Lcg(if gd16 { 21 } else { 13 });
            let scale = |i: usize| [1e-6f32, 1e-3, 1.0, 300.0, 1e5][i % 5];
            let p0: Vec<f32> = (0..n).map(|i| r.next() * scale(i)).collect();
            let (mut pa, mut ma, mut va) = (p0.clone(), vec![0f32; n], vec![0f32; n]);
            let (mut pb, mut mb, mut vb) = (p0.clone(), vec![0f32; n], vec![0f32; n]);
            let mut p16 = vec![0x5555u16; n + 1]; // one guard past the end
            for t in 1..=4 {
                let mut g: Vec<f32> = (0..n).map(|_| r.next()).collect();
                if t == 4 {
                    g[7] = f32::NAN;
                }
                let g16: Vec<u16> = g.iter().map(|x| crate::half::f32_to_f16(*x)).collect();
                let h = hyper(1e-7, 0.9, 0.999, 1e-8, 0.1, t, 0.5);
                unsafe {
                    if gd16 {
                        adamw_scalar::<F16>(
                            pa.as_mut_ptr(),
                            g16.as_ptr(),
                            ma.as_mut_ptr(),
                            va.as_mut_ptr(),
                            n,
                            &h,
                        );
                        adamw_f16p_scalar::<F16>(
                            pb.as_mut_ptr(),
                            g16.as_ptr(),
                            mb.as_mut_ptr(),
                            vb.as_mut_ptr(),
                            p16.as_mut_ptr(),
                            n,
                            &h,
                        );
                    } else {
                        adamw_scalar::<F32>(
                            pa.as_mut_ptr(),
                            g.as_ptr(),
                            ma.as_mut_ptr(),
                            va.as_mut_ptr(),
                            n,
                            &h,
                        );
                        adamw_f16p_scalar::<F32>(
                            pb.as_mut_ptr(),
                            g.as_ptr(),
                            mb.as_mut_ptr(),
                            vb.as_mut_ptr(),
                            p16.as_mut_ptr(),
                            n,
                            &h,
                        );
                    }
                }
                for i in 0..n {
                    assert_eq!(pa[i].to_bits(), pb[i].to_bits(), "t={t} p[{i}]");
                    assert_eq!(ma[i].to_bits(), mb[i].to_bits(), "t={t} m[{i}]");
                    assert_eq!(va[i].to_bits(), vb[i].to_bits(), "t={t} v[{i}]");
                    assert_eq!(p16[i], crate::half::f32_to_f16(pb[i]), "t={t} p16[{i}]");
                }
                assert_eq!(p16[n], 0x5555, "wrote past the end");
            }
            assert!(
                p16.iter().any(|&h| h & 0x7fff == 0x7c00),
                "no overflow case"
            );
            assert!(
                p16.iter().any(|&h| h & 0x7c00 == 0 && h & 0x3ff != 0),
                "no subnormal case"
            );
            assert_eq!(p16[7] & 0x7fff, 0x7e00, "NaN propagates as the quiet NaN");
        }
    }
}
