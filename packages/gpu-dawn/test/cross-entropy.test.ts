import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { f16Round } from '../src/dtype.js';
import {
  IGNORE_INDEX,
  crossEntropyBackward,
  crossEntropyBackwardReference,
  crossEntropyForward,
  crossEntropyReference,
  type CrossEntropyOptions,
} from '../src/kernels/cross-entropy.js';
import type { GpuRuntime } from '../src/runtime.js';
import { Tensor } from '../src/tensor.js';
import { NAN_BITS, expectClose, expectF16Close, makeRng, poisonedTensor, randn, useGpu } from './harness.js';

const gpu = useGpu();

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

interface Outputs {
  losses: Tensor;
  logSumExp: Tensor;
  meanLoss: Tensor;
  keptCount: Tensor;
  release(): void;
}

function outputs(g: GpuRuntime, rows: number): Outputs {
  const t = {
    losses: g.tensor('losses', 'f32', [rows], 'workspace'),
    logSumExp: g.tensor('logSumExp', 'f32', [rows], 'workspace'),
    meanLoss: g.tensor('meanLoss', 'f32', [1], 'workspace'),
    keptCount: g.tensor('keptCount', 'u32', [1], 'workspace'),
  };
  for (const v of Object.values(t)) g.fill32(v, NAN_BITS);
  return { ...t, release: () => Object.values(t).forEach((v) => v.release()) };
}

/** Targets in [0, vocab) with about `ignoredFraction` of them set to -100. */
function randomTargets(rng: () => number, rows: number, vocab: number, ignoredFraction: number): Int32Array {
  return Int32Array.from({ length: rows }, () =>
    rng() < ignoredFraction ? IGNORE_INDEX : Math.floor(rng() * vocab),
  );
}

interface Run {
  out: Outputs;
  dlogits: Float32Array;
}

/** Forward then backward on the GPU, outputs poisoned beforehand. */
async function run(
  g: GpuRuntime,
  logits: ArrayLike<number>,
  targets: Int32Array,
  vocab: number,
  dtype: 'f32' | 'f16',
  options: CrossEntropyOptions & { gradScale?: number; inPlace?: boolean } = {},
): Promise<Run & { logitsT: Tensor; targetsT: Tensor }> {
  const rows = targets.length;
  const logitsT = g.upload('logits', dtype, [rows, vocab], logits);
  const targetsT = g.upload('targets', 'i32', [rows], targets);
  const out = outputs(g, rows);
  crossEntropyForward(g, { logits: logitsT, targets: targetsT, ...out, ...options });
  let dlogitsT = logitsT;
  if (!options.inPlace) {
    dlogitsT = g.tensor('dlogits', 'f32', [rows, vocab], 'workspace');
    g.fill32(dlogitsT, NAN_BITS);
  }
  crossEntropyBackward(g, {
    logits: logitsT,
    targets: targetsT,
    logSumExp: out.logSumExp,
    keptCount: out.keptCount,
    dlogits: dlogitsT,
    ...options,
  });
  const dlogits = (await g.read(dlogitsT)) as Float32Array;
  if (dlogitsT !== logitsT) dlogitsT.release();
  return { out, dlogits, logitsT, targetsT };
}

async function expectMatches(
  g: GpuRuntime,
  r: Run,
  logits: ArrayLike<number>,
  targets: Int32Array,
  vocab: number,
  options: CrossEntropyOptions & { gradScale?: number } = {},
): Promise<void> {
  const ref = crossEntropyReference(logits, targets, vocab, options);
  expectClose(await g.read(r.out.losses), ref.losses, { rtol: 1e-5, atol: 1e-5 }, 'losses');
  expectClose(await g.read(r.out.logSumExp), ref.logSumExp, { rtol: 1e-6, atol: 1e-5 }, 'logSumExp');
  expectClose(await g.read(r.out.meanLoss), [ref.meanLoss], { rtol: 1e-5, atol: 1e-6 }, 'meanLoss');
  expect((await g.read(r.out.keptCount))[0]).toBe(ref.keptCount);
  const grad = crossEntropyBackwardReference(logits, targets, vocab, options);
  const kept = options.divideBy ?? Math.max(1, ref.keptCount);
  expectClose(r.dlogits, grad, { rtol: 1e-4, atol: 1e-6 / kept }, 'dlogits');
}

describe('softmax cross-entropy', () => {
  describe.each(['f32', 'f16'] as const)('logits %s', (dtype) => {
    for (const [rows, vocab] of [
      [1, 1],
      [1, 2],
      [7, 37],
      [5, 1029], // several backward tiles, several loop trips per invocation in the forward
      [3, 3001],
    ] as const) {
      it(`forward and backward match float64 for ${rows} x ${vocab}`, async () => {
        const g = gpu();
        const rng = makeRng(rows * 1000 + vocab);
        const round = dtype === 'f16' ? f16Round : Math.fround;
        const logits = Float64Array.from(randn(rng, rows * vocab, 3), round);
        const targets = randomTargets(rng, rows, vocab, rows > 1 ? 0.3 : 0);
        const r = await run(g, logits, targets, vocab, dtype);
        await expectMatches(g, r, logits, targets, vocab);
        r.out.release();
        r.logitsT.release();
        r.targetsT.release();
      });
    }
  });

  it('is stable for large logits (online max), and in place over the logits', async () => {
    const g = gpu();
    const rng = makeRng(77);
    const [rows, vocab] = [9, 515];
    // Row r is shifted by +-1000 * r: exp would overflow without the running max.
    const logits = Float64Array.from(randn(rng, rows * vocab, 20), (v, i) =>
      Math.fround(v + (Math.floor(i / vocab) % 2 ? 1000 : -1000)),
    );
    const targets = randomTargets(rng, rows, vocab, 0.2);
    const r = await run(g, logits, targets, vocab, 'f32', { inPlace: true });
    // Large logits: the f32 inputs to exp lose absolute precision, so compare with a looser tolerance.
    const ref = crossEntropyReference(logits, targets, vocab);
    expectClose(await g.read(r.out.losses), ref.losses, { rtol: 1e-5, atol: 1e-4 }, 'losses');
    expectClose(
      r.dlogits,
      crossEntropyBackwardReference(logits, targets, vocab),
      { rtol: 1e-3, atol: 1e-6 },
      'dlogits',
    );
    r.out.release();
    r.logitsT.release();
    r.targetsT.release();
  });

  it('handles a 128k vocabulary (chunked online max/sum)', async () => {
    const g = gpu();
    const rng = makeRng(128);
    const [rows, vocab] = [2, 128 * 1024 + 3];
    const logits = Float64Array.from(randn(rng, rows * vocab, 2), Math.fround);
    const targets = Int32Array.from([vocab - 1, 5]);
    const r = await run(g, logits, targets, vocab, 'f32');
    await expectMatches(g, r, logits, targets, vocab);
    r.out.release();
    r.logitsT.release();
    r.targetsT.release();
  });

  it('divides by divideBy (num_items_in_batch) and scales the gradient by gradScale', async () => {
    const g = gpu();
    const rng = makeRng(31);
    const [rows, vocab] = [11, 17];
    const logits = Float64Array.from(randn(rng, rows * vocab), Math.fround);
    const targets = randomTargets(rng, rows, vocab, 0.3);
    const options = { divideBy: 29, gradScale: 4 };
    const r = await run(g, logits, targets, vocab, 'f32', options);
    await expectMatches(g, r, logits, targets, vocab, options);
    r.out.release();
    r.logitsT.release();
    r.targetsT.release();
  });

  it('all tokens ignored: mean is NaN, count 0, gradient all zeros (like torch)', async () => {
    const g = gpu();
    const [rows, vocab] = [3, 5];
    const logits = new Float32Array(rows * vocab).fill(0.5);
    const targets = new Int32Array(rows).fill(IGNORE_INDEX);
    const r = await run(g, logits, targets, vocab, 'f32');
    expect(Number.isNaN((await g.read(r.out.meanLoss))[0])).toBe(true);
    expect((await g.read(r.out.keptCount))[0]).toBe(0);
    expect(Array.from(await g.read(r.out.losses))).toEqual([0, 0, 0]);
    expect(Array.from(r.dlogits).every((v) => v === 0)).toBe(true);
    r.out.release();
    r.logitsT.release();
    r.targetsT.release();
  });

  it('a target outside the vocabulary makes its loss NaN; a custom ignoreIndex is honoured', async () => {
    const g = gpu();
    const [rows, vocab] = [3, 4];
    const logits = Float32Array.from({ length: rows * vocab }, (_, i) => i / 10);
    const r = await run(g, logits, Int32Array.from([1, 4, -1]), vocab, 'f32', { ignoreIndex: -1 });
    const losses = Array.from(await g.read(r.out.losses));
    expect(Number.isFinite(losses[0])).toBe(true);
    expect(Number.isNaN(losses[1])).toBe(true);
    expect(losses[2]).toBe(0);
    expect((await g.read(r.out.keptCount))[0]).toBe(2);
    r.out.release();
    r.logitsT.release();
    r.targetsT.release();
  });

  it('float64 backward equals central finite differences of the float64 mean loss', () => {
    const rng = makeRng(3);
    const [rows, vocab] = [4, 6];
    const logits = Float64Array.from(randn(rng, rows * vocab, 2));
    const targets = Int32Array.from([2, IGNORE_INDEX, 0, 5]);
    const options = { gradScale: 1.5 };
    const h = 1e-6;
    const loss = () => options.gradScale * crossEntropyReference(logits, targets, vocab).meanLoss;
    const fd = Float64Array.from(logits, (v, i) => {
      logits[i] = v + h;
      const up = loss();
      logits[i] = v - h;
      const down = loss();
      logits[i] = v;
      return (up - down) / (2 * h);
    });
    expectClose(
      fd,
      crossEntropyBackwardReference(logits, targets, vocab, options),
      { rtol: 1e-6, atol: 1e-9 },
      'fd',
    );
  });

  it('GPU backward agrees with a directional finite difference of the GPU mean loss', async () => {
    const g = gpu();
    const rng = makeRng(8);
    const [rows, vocab] = [6, 301];
    const logits = randn(rng, rows * vocab, 2);
    const v = randn(rng, rows * vocab);
    const targets = randomTargets(rng, rows, vocab, 0.3);
    targets[0] = 3; // at least one kept token
    const targetsT = g.upload('targets', 'i32', [rows], targets);
    const out = outputs(g, rows);
    const lossAt = async (h: number) => {
      const x = g.upload(
        'logits',
        'f32',
        [rows, vocab],
        Float32Array.from(logits, (l, i) => l + h * v[i]!),
      );
      crossEntropyForward(g, { logits: x, targets: targetsT, ...out });
      const mean = (await g.read(out.meanLoss))[0]!;
      x.release();
      return mean;
    };
    const h = 1e-2;
    const numeric = ((await lossAt(h)) - (await lossAt(-h))) / (2 * h);
    const r = await run(g, logits, targets, vocab, 'f32');
    const analytic = dot(r.dlogits, v);
    expect(Math.abs(numeric - analytic)).toBeLessThan(2e-3 * Math.max(1, Math.abs(analytic)));
    for (const t of [targetsT, r.logitsT, r.targetsT]) t.release();
    out.release();
    r.out.release();
  });

  it('checks arguments and names the tensor', () => {
    const g = gpu();
    const logits = g.tensor('logits', 'f32', [4, 7], 'workspace');
    const targets = g.tensor('targets', 'i32', [3], 'workspace');
    const out = outputs(g, 4);
    expect(() => crossEntropyForward(g, { logits, targets, ...out })).toThrow(
      /targets must hold one i32 per logits row \(4\)/,
    );
    const targets4 = g.tensor('targets4', 'i32', [4], 'workspace');
    expect(() => crossEntropyForward(g, { logits, targets: targets4, ...out, divideBy: 0 })).toThrow(
      /divideBy must be > 0/,
    );
    const wrong = g.tensor('wrong', 'f32', [4, 6], 'workspace');
    expect(() =>
      crossEntropyBackward(g, {
        logits,
        targets: targets4,
        logSumExp: out.logSumExp,
        keptCount: out.keptCount,
        dlogits: wrong,
      }),
    ).toThrow(/dlogits must be f32 \[4, 7\]/);
    for (const t of [logits, targets, targets4, wrong]) t.release();
    out.release();
  });
});

describe('softmax cross-entropy, f16 dlogits (mixed precision: the lm_head operand)', () => {
  /** Forward on logits of `dtype`, then the backward into a poisoned f16 dlogits (or in place). */
  async function runF16(
    g: GpuRuntime,
    logits: Float64Array,
    targets: Int32Array,
    vocab: number,
    dtype: 'f32' | 'f16',
    options: CrossEntropyOptions & { gradScale?: number; inPlace?: boolean },
  ): Promise<Float32Array> {
    const rows = targets.length;
    const logitsT = g.upload('logits', dtype, [rows, vocab], logits);
    const targetsT = g.upload('targets', 'i32', [rows], targets);
    const out = outputs(g, rows);
    crossEntropyForward(g, { logits: logitsT, targets: targetsT, ...out, ...options });
    const dlogits = options.inPlace ? logitsT : poisonedTensor(g, 'dlogits', 'f16', [rows, vocab]);
    crossEntropyBackward(g, {
      logits: logitsT,
      targets: targetsT,
      logSumExp: out.logSumExp,
      keptCount: out.keptCount,
      dlogits,
      ...options,
    });
    const got = (await g.read(dlogits)) as Float32Array;
    for (const t of new Set([logitsT, targetsT, dlogits])) t.release();
    out.release();
    return got;
  }

  // 7 x 37 and 3 x 3001: rows of odd length, so f16 words straddle rows
  for (const [rows, vocab] of [
    [1, 1],
    [7, 37],
    [4, 258],
    [3, 3001],
  ] as const) {
    it(`f32 logits -> f16 dlogits scaled by gradScale, within one f16 ulp, ${rows} x ${vocab}`, async () => {
      const g = gpu();
      const rng = makeRng(rows * 17 + vocab);
      const logits = Float64Array.from(randn(rng, rows * vocab, 3), Math.fround);
      const targets = randomTargets(rng, rows, vocab, rows > 1 ? 0.3 : 0);
      const options = { gradScale: 1024 }; // a loss scale
      const got = await runF16(g, logits, targets, vocab, 'f32', options);
      const want = crossEntropyBackwardReference(logits, targets, vocab, options);
      const kept = Math.max(1, crossEntropyReference(logits, targets, vocab).keptCount);
      // one rounding of the f32 result; atol: f32 error of p - 1 at the target (cancellation)
      expectF16Close(got, want, { ulps: 1, atol: (1e-6 * options.gradScale) / kept }, 'dlogits f16');
    });
  }

  it('f16 logits -> f16 dlogits in place, with divideBy', async () => {
    const g = gpu();
    const rng = makeRng(5);
    const [rows, vocab] = [5, 101];
    const logits = Float64Array.from(randn(rng, rows * vocab, 3), f16Round);
    const targets = randomTargets(rng, rows, vocab, 0.3);
    const options = { gradScale: 8, divideBy: 7, inPlace: true };
    const got = await runF16(g, logits, targets, vocab, 'f16', options);
    const want = crossEntropyBackwardReference(logits, targets, vocab, options);
    expectF16Close(got, want, { ulps: 1, atol: (1e-6 * 8) / 7 }, 'dlogits f16 in place');
  });

  it('overflows to -inf (never a clamped -65504) when gradScale is too large for f16', async () => {
    const g = gpu();
    const vocab = 9; // one row
    const logits = Float64Array.from({ length: vocab }, (_, i) => Math.fround(i / 4));
    const targets = Int32Array.from([2]);
    const options = { gradScale: 2 ** 20 };
    const got = await runF16(g, logits, targets, vocab, 'f32', options);
    expect(got[2]).toBe(-Infinity);
    const want = crossEntropyBackwardReference(logits, targets, vocab, options);
    expectF16Close(got, want, { ulps: 1 }, 'dlogits with overflow');
  });

  it('gradScaleBy multiplies by a loss scale kept on the GPU: the same bits as that scale given as gradScale', async () => {
    const g = gpu();
    const rng = makeRng(19);
    const [rows, vocab] = [6, 77];
    const logits = Float64Array.from(randn(rng, rows * vocab, 3), Math.fround);
    const targets = randomTargets(rng, rows, vocab, 0.3);
    const logitsT = g.upload('logits', 'f32', [rows, vocab], logits);
    const targetsT = g.upload('targets', 'i32', [rows], targets);
    const out = outputs(g, rows);
    crossEntropyForward(g, { logits: logitsT, targets: targetsT, ...out });
    const lossScale = g.upload('lossScale', 'f32', [2], [3, 4096]);
    const common = { logits: logitsT, targets: targetsT, logSumExp: out.logSumExp, keptCount: out.keptCount };
    for (const dtype of ['f32', 'f16'] as const) {
      const byTensor = poisonedTensor(g, 'byTensor', dtype, [rows, vocab]);
      const byHost = poisonedTensor(g, 'byHost', dtype, [rows, vocab]);
      crossEntropyBackward(g, {
        ...common,
        dlogits: byTensor,
        gradScale: 0.5,
        gradScaleBy: { tensor: lossScale, index: 1 },
      });
      crossEntropyBackward(g, { ...common, dlogits: byHost, gradScale: 2048 });
      const got = await g.read(byTensor);
      expect(Array.from(got), dtype).toEqual(Array.from(await g.read(byHost)));
      const want = crossEntropyBackwardReference(logits, targets, vocab, { gradScale: 2048 });
      const kept = crossEntropyReference(logits, targets, vocab).keptCount;
      if (dtype === 'f16') expectF16Close(got, want, { ulps: 1, atol: (1e-6 * 2048) / kept }, 'f16 dlogits');
      else expectClose(got, want, { rtol: 1e-4, atol: (1e-6 * 2048) / kept }, 'f32 dlogits');
      byTensor.release();
      byHost.release();
    }
    const bad = { ...common, dlogits: logitsT, gradScaleBy: { tensor: lossScale, index: 2 } };
    expect(() => crossEntropyBackward(g, bad)).toThrow(/gradScaleBy index 2 outside/);
    for (const t of [logitsT, targetsT, lossScale]) t.release();
    out.release();
  });

  it('rejects an in-place dlogits of another dtype', () => {
    const g = gpu();
    const logits = g.tensor('logits', 'f32', [2, 4], 'workspace');
    const view = new Tensor(logits.buffer, 'f16', [2, 4], 'logits16', logits.byteOffset);
    const targets = g.tensor('targets', 'i32', [2], 'workspace');
    const out = outputs(g, 2);
    const args = { logits, targets, logSumExp: out.logSumExp, keptCount: out.keptCount, dlogits: view };
    expect(() => crossEntropyBackward(g, args)).toThrow(/in place, so it must have their dtype/);
    for (const t of [logits, targets]) t.release();
    out.release();
  });
});

/** The few tensors we need from a safetensors file (F64 and I32 only; test-side, no package import). */
function readSafetensors(path: string): Map<string, Float64Array | Int32Array> {
  const bytes = readFileSync(path);
  const headerLength = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8')) as Record<
    string,
    { dtype: string; data_offsets: [number, number] }
  >;
  const out = new Map<string, Float64Array | Int32Array>();
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const [start, end] = info.data_offsets;
    const data = bytes.buffer.slice(
      bytes.byteOffset + 8 + headerLength + start,
      bytes.byteOffset + 8 + headerLength + end,
    );
    if (info.dtype === 'F64') out.set(name, new Float64Array(data));
    else if (info.dtype === 'I32') out.set(name, new Int32Array(data));
  }
  return out;
}

describe('cross-entropy against Hugging Face fixtures (transformers 5.17 on the GPU machine)', () => {
  for (const model of ['llama-gqa', 'gpt2']) {
    it(`reproduces ${model}'s loss from its logits and labels (shifted here, as the caller does)`, async () => {
      const g = gpu();
      const path = fileURLToPath(
        new URL(`../../core/fixtures/hf/${model}/reference.safetensors`, import.meta.url),
      );
      const ref = readSafetensors(path);
      const logits = ref.get('logits') as Float64Array;
      const labels = ref.get('labels') as Int32Array;
      const hfLoss = (ref.get('loss') as Float64Array)[0]!;
      const [batch, seq] = [2, labels.length / 2];
      const vocab = logits.length / labels.length;
      // HF's causal-LM loss: position s predicts labels[s + 1]; the last position of a row has no target.
      const targets = Int32Array.from({ length: batch * seq }, (_, i) =>
        i % seq === seq - 1 ? IGNORE_INDEX : labels[i + 1]!,
      );
      expect(crossEntropyReference(logits, targets, vocab).meanLoss).toBeCloseTo(hfLoss, 12);
      const r = await run(g, logits, targets, vocab, 'f32');
      expectClose(await g.read(r.out.meanLoss), [hfLoss], { rtol: 1e-5, atol: 0 }, `${model} loss`);
      r.out.release();
      r.logitsT.release();
      r.targetsT.release();
    });
  }
});
