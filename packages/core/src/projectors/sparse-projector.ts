// A (d, r)-sparse projector: rows x d with exactly r non-zeros per row at DISTINCT positions (the
// authors' release drew with replacement, so positions collided). Positions stay fixed between refits;
// only the values are learned.
import { uploadSparseProjector, type GpuRuntime, type SparseProjectorTensors } from '@lsp-offload/gpu-dawn';
import { Rng } from '../util/rng.js';

export type ProjectorInit = 'gaussian' | 'rademacher';

export class SparseProjector {
  constructor(
    readonly rows: number,
    readonly d: number,
    readonly r: number,
    /** [rows * r]: positions of row i at i*r .. i*r+r-1, distinct and < d. */
    readonly positions: Uint32Array,
    /** [rows * r] values in the same order. */
    readonly values: Float32Array,
  ) {
    if (!Number.isInteger(rows) || rows < 1) throw new RangeError(`projector rows must be >= 1, got ${rows}`);
    if (!Number.isInteger(d) || d < 1) throw new RangeError(`projector d must be >= 1, got ${d}`);
    if (!Number.isInteger(r) || r < 1 || r > d)
      throw new RangeError(`projector r must be in [1, d=${d}], got ${r}`);
    if (positions.length !== rows * r || values.length !== rows * r) {
      throw new Error(
        `projector arrays must hold rows*r = ${rows * r} entries (positions ${positions.length}, values ${values.length})`,
      );
    }
  }

  /**
   * Random positions (r distinct per row, partial Fisher-Yates over d) and values N(0, 1/r) or +-1/sqrt(r),
   * so E[P P^T] = I scaled to keep gradient norms.
   */
  static random(
    rows: number,
    d: number,
    r: number,
    rng: Rng,
    init: ProjectorInit = 'gaussian',
  ): SparseProjector {
    if (r > d) throw new RangeError(`projector r = ${r} exceeds d = ${d}`);
    const positions = new Uint32Array(rows * r);
    const values = new Float32Array(rows * r);
    const perm = new Uint32Array(d);
    for (let i = 0; i < d; i++) perm[i] = i;
    const scale = 1 / Math.sqrt(r);
    for (let i = 0; i < rows; i++) {
      for (let k = 0; k < r; k++) {
        const j = k + rng.below(d - k);
        const t = perm[k]!;
        perm[k] = perm[j]!;
        perm[j] = t;
        positions[i * r + k] = perm[k]!;
        values[i * r + k] = init === 'gaussian' ? rng.normal() * scale : rng.nextU32() & 1 ? scale : -scale;
      }
    }
    return new SparseProjector(rows, d, r, positions, values);
  }

  /** The exact projector of a square layer: a signed permutation (d = rows, r = 1). P P^T = I. */
  static signedPermutation(n: number, rng: Rng): SparseProjector {
    const perm = rng.shuffle(Array.from({ length: n }, (_, i) => i));
    const values = Float32Array.from({ length: n }, () => (rng.nextU32() & 1 ? 1 : -1));
    return new SparseProjector(n, n, 1, Uint32Array.from(perm), values);
  }

  /** Check the invariants (e.g. after loading): positions in range and distinct within each row. */
  validate(where = 'projector'): void {
    for (let i = 0; i < this.rows; i++) {
      const seen = new Set<number>();
      for (let k = 0; k < this.r; k++) {
        const p = this.positions[i * this.r + k]!;
        if (p >= this.d) throw new Error(`${where}: row ${i} position ${p} is not < d = ${this.d}`);
        if (seen.has(p)) throw new Error(`${where}: row ${i} repeats position ${p}`);
        seen.add(p);
      }
      for (let k = 0; k < this.r; k++) {
        if (!Number.isFinite(this.values[i * this.r + k]!))
          throw new Error(`${where}: row ${i} has a non-finite value`);
      }
    }
  }

  toGpu(gpu: GpuRuntime, label: string): SparseProjectorTensors {
    return uploadSparseProjector(gpu, label, this);
  }

  /** Dense rows x d matrix (tests and tiny references only). */
  toDense(): Float64Array {
    const out = new Float64Array(this.rows * this.d);
    for (let i = 0; i < this.rows; i++) {
      for (let k = 0; k < this.r; k++)
        out[i * this.d + this.positions[i * this.r + k]!] = this.values[i * this.r + k]!;
    }
    return out;
  }

  clone(): SparseProjector {
    return new SparseProjector(this.rows, this.d, this.r, this.positions.slice(), this.values.slice());
  }
}
