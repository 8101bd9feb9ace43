// References for AdamW: float64 from the definition (torch.optim.AdamW's formula), and an fp32
// emulation that performs the kernel's exact operation sequence (Math.fround after every operation
// reproduces f32 arithmetic: double rounding is innocuous for + - * / sqrt), for bit-exact checks.

export interface RefHyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export interface RefState {
  p: Float64Array | null;
  m: Float64Array;
  v: Float64Array;
}

/** One float64 AdamW step (t is 1-based). Returns the step -lr * mhat / (sqrt(vhat) + eps). */
export function adamwStep64(
  s: RefState,
  g: ArrayLike<number>,
  hp: RefHyper,
  t: number,
  gscale = 1,
): Float64Array {
  const n = s.m.length;
  const d = new Float64Array(n);
  const bc1 = 1 - hp.beta1 ** t;
  const bc2 = 1 - hp.beta2 ** t;
  for (let i = 0; i < n; i++) {
    const gi = g[i]! * gscale;
    s.m[i] = hp.beta1 * s.m[i]! + (1 - hp.beta1) * gi;
    s.v[i] = hp.beta2 * s.v[i]! + (1 - hp.beta2) * gi * gi;
    d[i] = (-hp.lr * (s.m[i]! / bc1)) / (Math.sqrt(s.v[i]! / bc2) + hp.eps);
    if (s.p) s.p[i] = s.p[i]! * (1 - hp.lr * hp.weightDecay) + d[i]!;
  }
  return d;
}

/** The kernel's fp32 operation sequence (crate/src/adamw.rs), element by element. */
export function adamwStep32(
  p: Float32Array | null,
  m: Float32Array,
  v: Float32Array,
  g: ArrayLike<number>,
  hp: RefHyper,
  t: number,
  gscale = 1,
): Float32Array {
  const f = Math.fround;
  const b1 = f(hp.beta1);
  const omb1 = f(1 - hp.beta1);
  const b2 = f(hp.beta2);
  const omb2 = f(1 - hp.beta2);
  const decay = f(1 - hp.lr * hp.weightDecay);
  const ss = f(hp.lr / (1 - hp.beta1 ** t));
  const isb = f(1 / Math.sqrt(1 - hp.beta2 ** t));
  const eps = f(hp.eps);
  const gs = f(gscale);
  const out = new Float32Array(m.length);
  for (let i = 0; i < m.length; i++) {
    const gi = f(f(g[i]!) * gs);
    const mi = f(f(b1 * m[i]!) + f(omb1 * gi));
    const vi = f(f(b2 * v[i]!) + f(omb2 * f(gi * gi)));
    const denom = f(f(f(Math.sqrt(vi)) * isb) + eps);
    const u = f(f(ss * mi) / denom);
    m[i] = mi;
    v[i] = vi;
    out[i] = -u;
    if (p) p[i] = f(f(p[i]! * decay) - u);
  }
  return out;
}

/** Largest |a - b| / (|b| + floor) over the elements, and where. */
export function maxRelErr(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  floor = 0,
): { err: number; at: number } {
  let err = 0;
  let at = -1;
  for (let i = 0; i < b.length; i++) {
    const e = Math.abs(a[i]! - b[i]!) / (Math.abs(b[i]!) + floor);
    if (!(e <= err)) {
      err = e;
      at = i;
    }
  }
  return { err, at };
}

export function rms(x: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]! * x[i]!;
  return Math.sqrt(s / Math.max(1, x.length));
}

export function sameBits(a: Float32Array | Uint16Array, b: Float32Array | Uint16Array): boolean {
  const x = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const y = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}
