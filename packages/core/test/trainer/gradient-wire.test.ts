// The gradient wire against references, on odd sizes, with a real GPU, staging ring and CPU optimizer:
// an f32 gradient sent as fp16 with its scale (the CPU receives packScaledHalfReference's bits and the
// factor 1 / scale), touched rows (made so by the embedding backward) scattered over row blocks (the rest zero, the
// previous step's rows cleared), zero mode's fp16 gradients sent as they are, and the non-finite count.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DownloadRing, GpuRuntime, f32ToF16Bits, type Tensor } from '@lsp-offload/gpu-dawn';
import { packScaledHalfReference } from '@lsp-offload/gpu-dawn/reference';
import { AdamW } from '@lsp-offload/cpu-wasm';
import { Rng } from '../../src/index.js';
import { GradientWire, touchedRows } from '../../src/trainer/gradient-wire.js';

let gpu: GpuRuntime;
let down: DownloadRing;
beforeAll(async () => {
  gpu = await GpuRuntime.create();
  down = await DownloadRing.create(gpu, { chunkBytes: 4096, slots: 3 });
});
afterAll(async () => {
  await down?.close();
  gpu?.destroy();
});

function randomValues(seed: number, n: number, scale: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: n }, () => (rng.next() * 2 - 1) * scale);
}

function gradient(label: string, values: Float32Array, shape: number[]): Tensor {
  return gpu.upload(label, 'f32', shape, values, 'gradients');
}

async function arrived(sent: ReturnType<GradientWire['send']>): Promise<void> {
  await sent.header.done;
  await Promise.all(sent.arrivals.flatMap((a) => a.transfers.map((t) => t.done)));
  for (const a of sent.arrivals) a.land?.();
}

describe('gradient wire', () => {
  it('fp16 with a per-tensor scale: the reference bits arrive with the factor 1 / scale', async () => {
    const cpu = new AdamW({ threads: 1 });
    cpu.addStepOnly('S', 13 * 13, { gradDtype: 'f16' });
    cpu.addParam('norm', new Float32Array(7), { gradDtype: 'f16' });
    const wire = new GradientWire(gpu, cpu, down, true);
    const s = randomValues(1, 13 * 13, 3e-7); // far below fp16's normal range unscaled
    const norm = randomValues(2, 7, 40);
    const sent = wire.send('L0', [
      {
        label: 'S',
        kind: 'S',
        grad: gradient('S', s, [13, 13]),
        targets: [{ name: 'S', rowStart: 0, rowEnd: 13 }],
      },
      {
        label: 'norm',
        kind: 'gradients',
        grad: gradient('n', norm, [7]),
        targets: [{ name: 'norm', rowStart: 0, rowEnd: 7 }],
      },
    ]);
    await arrived(sent);
    expect(sent.nonFiniteCount()).toBe(0);
    const refS = packScaledHalfReference(s);
    const refN = packScaledHalfReference(norm);
    expect([...cpu.gradF16('S')]).toEqual([...refS.bits]);
    expect([...cpu.gradF16('norm')]).toEqual([...refN.bits]);
    expect(sent.gradScales(['S', 'norm'])).toEqual({ S: 1 / refS.scale, norm: 1 / refN.scale });
    expect(sent.bytes.S).toBe(13 * 13 * 2);
    expect(sent.bytes.gradients).toBe(7 * 2);
    expect(sent.bytes.headers).toBe(3 * 4);
    await cpu.destroy();
  });

  it('touched rows: scattered into each row block, the rest zero', async () => {
    const rows = 37;
    const cols = 11;
    const cpu = new AdamW({ threads: 1 });
    const blocks = [
      { name: 'emb[0:19]', rowStart: 0, rowEnd: 19 },
      { name: 'emb[19:37]', rowStart: 19, rowEnd: 37 },
    ];
    for (const half of [false, true]) {
      for (const b of blocks)
        if (!cpu.has(`${b.name}${half}`))
          cpu.addParam(`${b.name}${half}`, new Float32Array((b.rowEnd - b.rowStart) * cols), {
            gradDtype: half ? 'f16' : 'f32',
          });
      const targets = blocks.map((b) => ({ ...b, name: `${b.name}${half}` }));
      const wire = new GradientWire(gpu, cpu, down, half);
      // two steps touching different rows: the second must clear the first's
      for (const [step, ids] of [
        [
          0,
          [
            [0, 5, 5, 6],
            [36, 18, 19],
          ],
        ],
        [1, [[1, 2], [35]]],
      ] as const) {
        const touched = touchedRows(ids, rows);
        const full = randomValues(10 + step, rows * cols, 2);
        // a real embedding gradient is zero on untouched rows
        const isTouched = new Set(touched);
        for (let r = 0; r < rows; r++) if (!isTouched.has(r)) full.fill(0, r * cols, (r + 1) * cols);
        // as the embedding backward leaves it: the touched rows in order, room for 9
        const compact = new Float32Array(9 * cols);
        touched.forEach((r, j) => compact.set(full.subarray(r * cols, (r + 1) * cols), j * cols));
        const sent = wire.send('embeddings', [
          {
            label: 'emb',
            kind: 'gradients',
            grad: gradient('emb', compact, [9, cols]),
            targets,
            rows: touched,
          },
        ]);
        await arrived(sent);
        expect(sent.bytes['embedding rows']).toBe(touched.length * cols * (half ? 2 : 4));
        const scale = half ? packScaledHalfReference(full).scale : 1;
        for (const t of targets) {
          const got = half ? cpu.gradF16(t.name) : cpu.grad(t.name);
          for (let r = t.rowStart; r < t.rowEnd; r++)
            for (let c = 0; c < cols; c++) {
              const v = full[r * cols + c]!;
              const want = half ? f32ToF16Bits(Math.fround(v * scale)) : v;
              const at = (r - t.rowStart) * cols + c;
              if (got[at] !== want)
                expect.fail(`step ${step}, ${t.name} row ${r} col ${c}: ${got[at]} vs ${want}`);
            }
        }
      }
    }
    await cpu.destroy();
  });

  it("zero mode's fp16 gradients travel as they are; NaN and infinities are counted", async () => {
    const cpu = new AdamW({ threads: 1 });
    cpu.addParam('w', new Float32Array(9), { gradDtype: 'f16' });
    cpu.addParam('b', new Float32Array(5));
    const wire = new GradientWire(gpu, cpu, down, false);
    const w = randomValues(3, 9, 1);
    const b = Float32Array.from([1, Number.NaN, 2, Infinity, -Infinity]);
    const sent = wire.send('L1', [
      {
        label: 'w',
        kind: 'gradients',
        grad: gpu.upload('w', 'f16', [3, 3], w, 'gradients'),
        targets: [{ name: 'w', rowStart: 0, rowEnd: 3 }],
      },
      {
        label: 'b',
        kind: 'gradients',
        grad: gradient('b', b, [5]),
        targets: [{ name: 'b', rowStart: 0, rowEnd: 5 }],
      },
    ]);
    await arrived(sent);
    expect([...cpu.gradF16('w')]).toEqual([...w].map((v) => f32ToF16Bits(v)));
    expect(sent.gradScales(['w', 'b'])).toEqual({});
    expect(sent.nonFiniteCount()).toBe(3);
    await cpu.destroy();
  });

  it('touchedRows: sorted distinct ids of every micro-batch, ids outside the vocabulary refused', () => {
    expect([...touchedRows([[4, 1, 4], Int32Array.from([0, 9, 1])], 10)]).toEqual([0, 1, 4, 9]);
    expect(() => touchedRows([[3, 10]], 10)).toThrow(/token id 10 at position 1/);
  });
});
