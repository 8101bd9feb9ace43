/** Small seeded PRNG (mulberry32) for reproducible random test inputs. */
export function makeRng(seed: number): () => number {
  let s = seed >>> 0 || 0x9e3779b9;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n values uniform in [-1, 1) rounded to f32. */
export function uniform(rng: () => number, n: number, scale = 1): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = (rng() * 2 - 1) * scale;
  return x;
}

/** n values with magnitude in [0.5, 1.5) and random sign: params that no small step can cancel. */
export function awayFromZero(rng: () => number, n: number): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = (0.5 + rng()) * (rng() < 0.5 ? -1 : 1);
  return x;
}
