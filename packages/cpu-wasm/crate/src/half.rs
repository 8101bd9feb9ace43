//! IEEE binary16 <-> binary32 conversion with integer bit operations (wasm has no f16 instructions).
//! fp16 -> fp32 is exact; fp32 -> fp16 rounds to nearest, ties to even, overflows to infinity and
//! turns every NaN into the quiet NaN 0x7e00 (after ryg's float_to_half_fast3_rtne, which is
//! exhaustively checked). The vector versions compute the same bits lane by lane; fp32 -> fp16 does so
//! by float arithmetic (`f32_to_f16_fp`, checked against `f32_to_f16` on every fp32), which takes
//! about half the instructions.

const F16_EXP_SHIFTED: u32 = 0x7c00 << 13; // fp16 exponent field moved to fp32 position
const EXP_ADJUST: u32 = (127 - 15) << 23;
const F32_INF: u32 = 255 << 23;
const F16_OVERFLOW: u32 = (127 + 16) << 23; // 65536.0: from here on the result is inf (or NaN)
const F16_MIN_NORMAL: u32 = 113 << 23; // 2^-14 as fp32 bits
const DENORM_MAGIC: u32 = ((127 - 15) + (23 - 10) + 1) << 23; // 0.5: aligns fp16 subnormal bits at the bottom

/// Exact fp16 -> fp32.
#[inline(always)]
pub fn f16_to_f32(h: u16) -> f32 {
    let h = h as u32;
    let sign = (h & 0x8000) << 16;
    let mut o = (h & 0x7fff) << 13;
    let exp = o & F16_EXP_SHIFTED;
    o += EXP_ADJUST;
    if exp == F16_EXP_SHIFTED {
        o += (128 - 16) << 23; // inf / NaN: exponent all ones
    } else if exp == 0 {
        // zero / subnormal: renormalise through an exact fp32 subtraction
        o += 1 << 23;
        o = (f32::from_bits(o) - f32::from_bits(F16_MIN_NORMAL)).to_bits();
    }
    f32::from_bits(o | sign)
}

/// fp32 -> fp16, round to nearest even.
#[inline(always)]
pub fn f32_to_f16(f: f32) -> u16 {
    let mut x = f.to_bits();
    let sign = x & 0x8000_0000;
    x ^= sign;
    let o = if x >= F16_OVERFLOW {
        if x > F32_INF {
            0x7e00
        } else {
            0x7c00
        }
    } else if x < F16_MIN_NORMAL {
        // the fp32 addition does the round-to-nearest-even into the subnormal grid
        (f32::from_bits(x) + f32::from_bits(DENORM_MAGIC)).to_bits() - DENORM_MAGIC
    } else {
        let mant_odd = (x >> 13) & 1;
        x = x.wrapping_add((((15i32 - 127) << 23) as u32).wrapping_add(0xfff));
        x += mant_odd;
        x >> 13
    };
    (o | (sign >> 16)) as u16
}

/// fp32 -> fp16 by float arithmetic (after Maratyszcza's FP16 library): the FPU does the rounding to
/// nearest even. The same bits as `f32_to_f16` for every input (`exhaustive_*` test below); the scalar
/// model of `simd::f32x4_to_f16x4`, which needs about half the instructions of the integer method.
#[inline(always)]
pub fn f32_to_f16_fp(f: f32) -> u16 {
    let w = f.to_bits();
    let abs = f32::from_bits(w & 0x7fff_ffff);
    // 4 * abs, exactly; from 65536 on the first product overflows, so the result is inf
    let base = (abs * SCALE_TO_INF) * SCALE_TO_ZERO;
    let shl1 = w.wrapping_add(w);
    // 2^(e + 15) for abs's exponent e, at least -14 (NaN and inf give garbage, replaced below)
    let bias = (shl1 & 0xff00_0000).max(0x7100_0000);
    // the addition rounds 4 * abs to a multiple of 2^(e - 8), i.e. abs to fp16's spacing 2^(e - 10)
    // (2^-24 among subnormals), ties to even; the sum's exponent and low bits then are the fp16 bits
    let base = (f32::from_bits((bias >> 1) + 0x0780_0000) + base).to_bits();
    let nonsign = ((base >> 13) & 0x7c00) + (base & 0x0fff);
    let o = if f.is_nan() { 0x7e00 } else { nonsign };
    (o | ((w & 0x8000_0000) >> 16)) as u16
}

const SCALE_TO_INF: f32 = f32::from_bits((127 + 112) << 23); // 2^112
const SCALE_TO_ZERO: f32 = f32::from_bits((127 - 110) << 23); // 2^-110

#[cfg(target_arch = "wasm32")]
pub mod simd {
    use super::*;
    use core::arch::wasm32::*;

    /// Four fp16 bit patterns (low 16 bits of each u32 lane) -> four fp32, exactly as `f16_to_f32`.
    #[inline(always)]
    pub fn f16x4_to_f32x4(h: v128) -> v128 {
        let sign = i32x4_shl(v128_and(h, u32x4_splat(0x8000)), 16);
        let o = i32x4_shl(v128_and(h, u32x4_splat(0x7fff)), 13);
        let exp = v128_and(o, u32x4_splat(F16_EXP_SHIFTED));
        let o = i32x4_add(o, u32x4_splat(EXP_ADJUST));
        let infnan = i32x4_add(o, u32x4_splat((128 - 16) << 23));
        let sub = f32x4_sub(
            i32x4_add(o, u32x4_splat(1 << 23)),
            u32x4_splat(F16_MIN_NORMAL),
        );
        let o = v128_bitselect(infnan, o, i32x4_eq(exp, u32x4_splat(F16_EXP_SHIFTED)));
        let o = v128_bitselect(sub, o, i32x4_eq(exp, u32x4_splat(0)));
        v128_or(o, sign)
    }

    /// Four fp32 -> four fp16 bit patterns in the low 16 bits of each u32 lane, as `f32_to_f16`
    /// (computed as `f32_to_f16_fp`: float scaling and one addition do the rounding).
    #[inline(always)]
    pub fn f32x4_to_f16x4(f: v128) -> v128 {
        let abs = v128_and(f, u32x4_splat(0x7fff_ffff));
        let base = f32x4_mul(
            f32x4_mul(abs, f32x4_splat(SCALE_TO_INF)),
            f32x4_splat(SCALE_TO_ZERO),
        );
        let shl1 = i32x4_add(f, f);
        let bias = u32x4_max(
            v128_and(shl1, u32x4_splat(0xff00_0000)),
            u32x4_splat(0x7100_0000),
        );
        let base = f32x4_add(
            i32x4_add(u32x4_shr(bias, 1), u32x4_splat(0x0780_0000)),
            base,
        );
        let nonsign = i32x4_add(
            v128_and(u32x4_shr(base, 13), u32x4_splat(0x7c00)),
            v128_and(base, u32x4_splat(0x0fff)),
        );
        let o = v128_bitselect(u32x4_splat(0x7e00), nonsign, f32x4_ne(f, f));
        v128_or(o, u32x4_shr(v128_xor(f, abs), 16))
    }

    /// dst (fp16 bits) = src (fp32) over `n` elements, eight per 16-byte store, scalar tail.
    #[inline(always)]
    pub unsafe fn f32_to_f16(src: *const f32, dst: *mut u16, n: usize) {
        let body = n & !7;
        let mut i = 0;
        while i < body {
            let lo = f32x4_to_f16x4(v128_load(src.add(i) as *const v128));
            let hi = f32x4_to_f16x4(v128_load(src.add(i + 4) as *const v128));
            // lanes hold values <= 0xffff, so the saturating narrow is exact
            v128_store(dst.add(i) as *mut v128, u16x8_narrow_i32x4(lo, hi));
            i += 8;
        }
        super::f32_to_f16_scalar(src.add(body), dst.add(body), n - body);
    }
}

/// Scalar reference loops (also the vector paths' tails).
pub unsafe fn f16_to_f32_scalar(src: *const u16, dst: *mut f32, n: usize) {
    for i in 0..n {
        *dst.add(i) = f16_to_f32(*src.add(i));
    }
}

pub unsafe fn f32_to_f16_scalar(src: *const f32, dst: *mut u16, n: usize) {
    for i in 0..n {
        *dst.add(i) = f32_to_f16(*src.add(i));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// fp16 value by its definition, in f64.
    fn f16_value(h: u16) -> f64 {
        let s = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
        let e = ((h >> 10) & 0x1f) as i32;
        let m = (h & 0x3ff) as f64;
        match e {
            0 => s * m * 2f64.powi(-24),
            31 => {
                if m == 0.0 {
                    s * f64::INFINITY
                } else {
                    f64::NAN
                }
            }
            _ => s * (1.0 + m / 1024.0) * 2f64.powi(e - 15),
        }
    }

    #[test]
    fn f16_to_f32_is_exact_for_every_half() {
        for h in 0..=u16::MAX {
            let got = f16_to_f32(h) as f64;
            let want = f16_value(h);
            if want.is_nan() {
                assert!(got.is_nan(), "{h:#06x}");
            } else {
                assert_eq!(got, want, "{h:#06x}");
                assert_eq!(got.is_sign_negative(), want.is_sign_negative(), "{h:#06x}");
            }
        }
    }

    #[test]
    fn f32_to_f16_round_trips_every_half() {
        for h in 0..=u16::MAX {
            let f = f16_to_f32(h);
            if f.is_nan() {
                assert_eq!(f32_to_f16(f) & 0x7fff, 0x7e00);
            } else {
                assert_eq!(f32_to_f16(f), h, "{h:#06x}");
            }
        }
    }

    /// Nearest-even rounding checked against neighbours: for a spread of fp32 inputs the result is the
    /// closest fp16 (ties to the even mantissa), overflowing to infinity from 65520 on.
    #[test]
    fn f32_to_f16_rounds_to_nearest_even() {
        let mut x: u32 = 0x1234_5678;
        for k in 0..200_000u32 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            // cover the fp16 range densely, including subnormals and overflow
            let exp = 100 + (k % 45);
            let bits = (x & 0x807f_ffff) | (exp << 23);
            let f = f32::from_bits(bits);
            let h = f32_to_f16(f);
            let got = f16_value(h);
            let a = (f as f64).abs();
            if a >= 65520.0 {
                assert!(got.is_infinite(), "{f}");
                continue;
            }
            let err = (got - f as f64).abs();
            for nb in [h.wrapping_sub(1), h.wrapping_add(1)] {
                let other = f16_value(nb);
                if other.is_nan() || other.is_infinite() || (nb & 0x7fff) == 0x7fff {
                    continue;
                }
                let e2 = (other - f as f64).abs();
                assert!(err <= e2, "{f}: {h:#06x} ({got}) vs {nb:#06x} ({other})");
                if err == e2 {
                    assert_eq!(h & 1, 0, "tie must round to even: {f}");
                }
            }
        }
    }

    #[test]
    fn f32_to_f16_special_values() {
        assert_eq!(f32_to_f16(0.0), 0x0000);
        assert_eq!(f32_to_f16(-0.0), 0x8000);
        assert_eq!(f32_to_f16(f32::INFINITY), 0x7c00);
        assert_eq!(f32_to_f16(f32::NEG_INFINITY), 0xfc00);
        assert_eq!(f32_to_f16(f32::NAN) & 0x7fff, 0x7e00);
        assert_eq!(f32_to_f16(65504.0), 0x7bff);
        assert_eq!(f32_to_f16(65519.99), 0x7bff);
        assert_eq!(f32_to_f16(65520.0), 0x7c00);
        assert_eq!(f32_to_f16(1e-8), 0x0000); // below half the smallest subnormal
        assert_eq!(f32_to_f16(2f32.powi(-24)), 0x0001);
        assert_eq!(f32_to_f16(1e30), 0x7c00);
    }

    /// The float-arithmetic conversion (the vector path's model) against the integer one: every fp32
    /// bit pattern would take minutes unoptimised, so a stride through all of them plus every pattern
    /// whose top 19 bits are those of an fp16 boundary region (the low 13 bits decide the rounding).
    #[test]
    fn f32_to_f16_fp_equals_f32_to_f16() {
        let check = |b: u32| {
            let f = f32::from_bits(b);
            assert_eq!(f32_to_f16_fp(f), f32_to_f16(f), "{b:#010x}");
        };
        let mut b = 0u32;
        while let Some(next) = b.checked_add(65_521) {
            check(b);
            b = next;
        }
        // around the subnormal, normal and overflow thresholds and 1.0, both signs, all 2^13 low bits
        for exp in [
            0u32, 1, 100, 101, 102, 103, 112, 113, 127, 142, 143, 254, 255,
        ] {
            for hi in [0u32, 1, 0x1ff, 0x200, 0x3fe, 0x3ff] {
                for lo in 0..(1u32 << 13) {
                    for sign in [0u32, 0x8000_0000] {
                        check(sign | (exp << 23) | (hi << 13) | lo);
                    }
                }
            }
        }
    }

    /// Every fp32 bit pattern (4.3e9): `cargo test --release -- --ignored` (seconds when optimised).
    #[test]
    #[ignore]
    fn exhaustive_f32_to_f16_fp_equals_f32_to_f16() {
        for b in 0..=u32::MAX {
            let f = f32::from_bits(b);
            assert_eq!(f32_to_f16_fp(f), f32_to_f16(f), "{b:#010x}");
        }
    }
}
