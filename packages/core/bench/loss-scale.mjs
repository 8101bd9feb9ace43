// Which loss scaling mixed precision needs, measured: the gradients of one batch computed in mixed precision
// (f16 matmul operands) under a single loss scale of 2^0 ... 2^40, against references, per tensor:
//   - the transformers fixtures (fixtures/hf/*-f16: random tiny models, float64 references);
//   - the demo model trained 60 steps in lsp (`npm start`'s run), whose gradients are small, against the
//     same gradients in f32 precision.
// For each scale: the worst relative L2 error over every parameter's gradient, and the tensors that
// overflowed (a non-finite value). The window of scales where every tensor is finite and within 2e-2 (the
// fixture tests' bound) tells whether one scale for the whole model suffices (GradScaler's dynamic scale)
// or tensors need scales of their own; so does the spread of the largest scale each tensor survives.
// Usage: node bench/loss-scale.mjs [outDir]   (after building core; writes loss-scale.json)
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GpuRuntime, createLossScaleState } from '@lsp-offload/gpu-dawn';
import {
  BatchLoader,
  DEMO_MODEL_CONFIG,
  DenseGradients,
  ModelWeights,
  Rng,
  SafetensorsFile,
  Trainer,
  Transformer,
  demoTask,
  openHfModel,
} from '../dist/index.js';

const outDir = process.argv[2];
const EXPONENTS = Array.from({ length: 11 }, (_, i) => 4 * i); // 2^0 .. 2^40
const fixtures = ['llama-gqa-f16', 'llama-tied-f16', 'gpt2-f16'];

function relL2(got, want) {
  let num = 0;
  let den = 0;
  for (let i = 0; i < want.length; i++) {
    num += (got[i] - want[i]) ** 2;
    den += want[i] ** 2;
  }
  return Math.sqrt(num / Math.max(den, 1e-300));
}

/** Gradients (unscaled again) of one batch under `scale` (mixed), or in f32 precision (scale undefined). */
async function gradients(gpu, weights, batch, scale) {
  const model = new Transformer(gpu, weights, {
    checkpointing: true,
    precision: scale === undefined ? 'f32' : 'mixed',
  });
  const sink = new DenseGradients(gpu, weights);
  const state = scale === undefined ? undefined : createLossScaleState(gpu, { initScale: scale });
  const { loss } = await model.trainStep(
    batch,
    sink,
    {},
    state ? { lossScale: { tensor: state.scale } } : {},
  );
  loss.release();
  const grads = await sink.readAll();
  for (const g of grads.values()) for (let i = 0; i < g.length; i++) g[i] /= scale ?? 1;
  sink.release();
  model.release();
  state?.scale.release();
  state?.counters.release();
  return grads;
}

/** Per scale: the worst error, the tensor it is in, and the tensors with non-finite values. */
async function sweep(gpu, weights, batch, reference) {
  const rows = [];
  for (const e of EXPONENTS) {
    const got = await gradients(gpu, weights, batch, 2 ** e);
    let worst = 0;
    let worstName = '';
    const overflowed = [];
    for (const [name, want] of reference) {
      const g = got.get(name);
      if (g.some((v) => !Number.isFinite(v))) {
        overflowed.push(name);
        continue;
      }
      const err = relL2(g, want);
      if (err > worst) [worst, worstName] = [err, name];
    }
    rows.push({ log2Scale: e, worstRelL2: worst, worstTensor: worstName, overflowed });
  }
  return rows;
}

function window(rows) {
  const ok = rows.filter((r) => r.overflowed.length === 0 && r.worstRelL2 < 2e-2).map((r) => r.log2Scale);
  return ok.length ? [Math.min(...ok), Math.max(...ok)] : null;
}

/** The range over tensors of the largest swept scale (log2) at which each tensor's gradient stays finite. */
function survivalSpread(rows, names) {
  const last = names.map((n) =>
    Math.max(-1, ...rows.filter((r) => !r.overflowed.includes(n)).map((r) => r.log2Scale)),
  );
  return [Math.min(...last), Math.max(...last)];
}

const gpu = await GpuRuntime.create();
const results = { date: new Date().toISOString(), device: gpu.ctx.report.description, models: [] };
for (const name of fixtures) {
  const dir = new URL(`../fixtures/hf/${name}/`, import.meta.url).pathname;
  const ref = await SafetensorsFile.open(join(dir, 'reference.safetensors'));
  const ids = await ref.readInt32('input_ids');
  const batch = {
    batch: ids.shape[0],
    seqLen: ids.shape[1],
    inputIds: ids.data,
    labels: (await ref.readInt32('labels')).data,
  };
  const reference = new Map();
  for (const t of ref.tensors.keys())
    if (t.startsWith('grad.')) reference.set(t.slice(5), (await ref.readFloat64(t)).data);
  await ref.close();
  const hf = await openHfModel(dir);
  const weights = await ModelWeights.load(gpu, hf, 'f16');
  await hf.close();
  const rows = await sweep(gpu, weights, batch, reference);
  weights.release();
  results.models.push({
    model: name,
    reference: 'transformers float64',
    rows,
    window: window(rows),
    survival: survivalSpread(rows, [...reference.keys()]),
  });
}

// the demo: trained as `npm start` trains it, then one held-out batch
const weights = ModelWeights.random(gpu, DEMO_MODEL_CONFIG, 'f16', new Rng(0, 7));
const task = demoTask({ seqLen: 64, seed: 0 });
const trainer = await Trainer.create(gpu, weights, {
  mode: 'lsp',
  precision: 'mixed',
  rank: 64,
  nnz: 4,
  lr: 3e-3,
  threads: 2,
});
const loader = new BatchLoader(task.train, { batchSize: 8, seed: 0 });
const scales = [];
for (let s = 0; s < 60; s++) scales.push((await trainer.trainStep(loader.next())).lossScale);
await trainer.flush();
const status = trainer.lossScaleStatus;
await trainer.destroy();
const held = new BatchLoader(task.heldOut, { batchSize: 8, seed: 1 }).next();
const reference = await gradients(gpu, weights, held, undefined);
const rows = await sweep(gpu, weights, held, reference);
results.models.push({
  model: 'demo after 60 lsp steps',
  reference: 'the same gradients in f32 precision',
  training: { lossScales: [...new Set(scales)], skippedSteps: status.skippedSteps },
  rows,
  window: window(rows),
  survival: survivalSpread(rows, [...reference.keys()]),
});
weights.release();
gpu.destroy();

const lines = [`loss scale sweep on ${results.device} (${results.date.slice(0, 10)})`];
for (const m of results.models) {
  lines.push(
    `${m.model} (vs ${m.reference}): every gradient finite and within 2e-2 rel L2 for scales ` +
      (m.window ? `2^${m.window[0]}..2^${m.window[1]}` : 'none') +
      `; the largest finite scale per tensor spans 2^${m.survival[0]}..2^${m.survival[1]}`,
  );
  for (const r of m.rows)
    lines.push(
      `  2^${String(r.log2Scale).padStart(2)}  worst ${r.worstRelL2.toExponential(2)} (${r.worstTensor})` +
        (r.overflowed.length ? `  overflow in ${r.overflowed.length} tensors` : ''),
    );
  if (m.training)
    lines.push(
      `  training: loss scales seen ${m.training.lossScales.join(', ')}; skipped ${m.training.skippedSteps}`,
    );
}
console.log(lines.join('\n'));
if (outDir) {
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'loss-scale.json'), JSON.stringify(results, null, 2));
}
process.exit(0);
