// Reconstruction error e = ||L L^T G R R^T - G||_F / ||G||_F of random vs learned (d, r)-sparse projectors
// on real gradients of the tiny LLaMA fixture (fixtures/hf/llama-gqa: config.json + model.safetensors,
// loaded in f32), after a few training steps: the core Trainer in mode 'native' (AdamW lr 1e-3, seed 0)
// takes 5 steps on random token batches of 4 x 32 (tokens from Rng(0)); then the dense f32 gradients of
// the 14 projected linears are computed on 8 further random batches of the same shape (the trained weights,
// no update): 4 "fit" batches that each pair is learned on, 4 "held-out" batches it never sees. e is
// reported on both: in-sample (mean over the fit gradients) and out-of-sample (mean over the held-out
// ones, the honest number). One pair per layer, d in {8, 16, 32, 64} (capped at min(rows, cols)) and
// r in {1, 2, 4, 8}. "drawn" is a random pair as drawn (values N(0, 1/r), which over-scale L L^T by about
// rows/d, so e >> 1); "scaled" is that pair times the common factor that best fits the fit gradients
// (closed form; where every learning starts); "learned" is the same positions after Adam on the values over
// the fit gradients (100 iterations, lr 0.1, cosine decay, no early stop). Also: one pair shared per layer
// type (r = 4, learned on both layers' fit gradients), and the best any rank-d matrix can do on each
// gradient (truncated SVD), for context.
// Usage: node bench/projector-error.mjs [outDir]   (after building core; writes projector-error.json)
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { GpuRuntime, releaseSparseProjector } from '@lsp-offload/gpu-dawn';
import {
  DenseGradients,
  ModelWeights,
  Rng,
  SparseProjector,
  Trainer,
  evaluatePair,
  gradientNorms,
  groupLayers,
  learnProjectorPair,
  openHfModel,
  projectedLayersOf,
} from '../dist/index.js';

const outDir = process.argv[2];
const fixture = new URL('../fixtures/hf/llama-gqa/', import.meta.url).pathname;
const D = [8, 16, 32, 64];
const R = [1, 2, 4, 8];
const LEARNING = { lr: 0.1, maxIterations: 100, targetError: 0, rescaleStart: true };
const TRAINING = { mode: 'native', lr: 1e-3, seed: 0, checkpointing: false };
const SEED = 0;
const STEPS = 5;
const BATCH = 4;
const SEQ_LEN = 32;
const FIT_BATCHES = 4;
const HELD_OUT_BATCHES = 4;

/** Eigenvalues of a symmetric n x n matrix (cyclic Jacobi; n <= 72 here). */
function symmetricEigenvalues(a, n) {
  const m = Float64Array.from(a);
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += m[p * n + q] ** 2;
    if (off < 1e-30) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = m[p * n + q];
        if (Math.abs(apq) < 1e-300) continue;
        const theta = (m[q * n + q] - m[p * n + p]) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const mkp = m[k * n + p];
          const mkq = m[k * n + q];
          m[k * n + p] = c * mkp - s * mkq;
          m[k * n + q] = s * mkp + c * mkq;
        }
        for (let k = 0; k < n; k++) {
          const mpk = m[p * n + k];
          const mqk = m[q * n + k];
          m[p * n + k] = c * mpk - s * mqk;
          m[q * n + k] = s * mpk + c * mqk;
        }
      }
    }
  }
  return Array.from({ length: n }, (_, i) => Math.max(0, m[i * n + i]));
}

/** Relative error of the best rank-k approximation of G (rows x cols), for each k in ks. */
function svdFloor(g, rows, cols, ks) {
  const n = Math.min(rows, cols);
  const gram = new Float64Array(n * n); // G G^T or G^T G, whichever is smaller
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) {
      let acc = 0;
      if (rows <= cols) for (let c = 0; c < cols; c++) acc += g[i * cols + c] * g[j * cols + c];
      else for (let c = 0; c < rows; c++) acc += g[c * cols + i] * g[c * cols + j];
      gram[i * n + j] = acc;
    }
  const sq = symmetricEigenvalues(gram, n).sort((a, b) => b - a);
  const total = sq.reduce((a, b) => a + b, 0);
  return ks.map((k) =>
    Math.sqrt(
      Math.max(
        0,
        sq.slice(k).reduce((a, b) => a + b, 0),
      ) / total,
    ),
  );
}

const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;

const t0 = performance.now();
const gpu = await GpuRuntime.create();
const hf = await openHfModel(fixture);
const weights = await ModelWeights.load(gpu, hf, 'f32');
await hf.close();
const layers = projectedLayersOf(weights.specs);
const projected = new Set(layers.map((l) => l.name));

// uniformly random tokens; the model is scored on predicting each next one (HF label shift)
const tokenRng = new Rng(SEED);
const randomBatch = () => {
  const inputIds = Int32Array.from({ length: BATCH * SEQ_LEN }, () =>
    tokenRng.below(weights.config.vocabSize),
  );
  return { batch: BATCH, seqLen: SEQ_LEN, inputIds, labels: inputIds.slice() };
};

const trainer = await Trainer.create(gpu, weights, TRAINING);
const losses = [];
for (let s = 0; s < STEPS; s++) losses.push((await trainer.trainStep(randomBatch())).loss);
await trainer.flush();

// dense gradients of every projected linear on further batches, the trained weights left as they are
const sinks = [];
const gradLosses = [];
for (let b = 0; b < FIT_BATCHES + HELD_OUT_BATCHES; b++) {
  const sink = new DenseGradients(gpu, weights, (spec) => projected.has(spec.name));
  const { loss } = await trainer.model.trainStep(randomBatch(), sink);
  gradLosses.push((await gpu.read(loss))[0]);
  loss.release();
  sinks.push(sink);
}
const fit = new Map();
const heldOut = new Map();
const host = new Map(); // name -> { fit: Float32Array[], heldOut: Float32Array[] }
for (const l of layers) {
  const gs = sinks.map((s) => s.get(l.name));
  fit.set(l.name, gs.slice(0, FIT_BATCHES));
  heldOut.set(l.name, gs.slice(FIT_BATCHES));
  const data = [];
  for (const g of gs) data.push(await gpu.read(g));
  host.set(l.name, { fit: data.slice(0, FIT_BATCHES), heldOut: data.slice(FIT_BATCHES) });
}
const heldOutNorms = new Map();
for (const l of layers) heldOutNorms.set(l.name, await gradientNorms(gpu, heldOut.get(l.name)));
const gradientMs = performance.now() - t0;

/** e of a pair on each of the given gradients. */
async function errorsOn(pair, gradients, norms) {
  const l = pair.left.toGpu(gpu, 'bench.L');
  const r = pair.right.toGpu(gpu, 'bench.R');
  try {
    return [...(await evaluatePair(gpu, gradients, norms, l, r, false)).errors];
  } finally {
    gpu.submit();
    releaseSparseProjector(l);
    releaseSparseProjector(r);
  }
}

let learnings = 0;
let learningMs = 0;
/** Learn `start` on the fit gradients; the errors of drawn, scaled and learned in-sample and held out. */
async function measure(start, fitGradients, heldOutGradients, norms) {
  const res = await learnProjectorPair(gpu, fitGradients, start, LEARNING);
  learnings++;
  learningMs += res.ms;
  // the drawn pair at the scale learning starts from (no Adam step)
  const scaled = await learnProjectorPair(gpu, fitGradients, start, { ...LEARNING, maxIterations: 0 });
  return {
    inSample: { drawn: res.startError, scaled: res.history[0], learned: res.meanError },
    heldOut: {
      drawn: mean(await errorsOn(start, heldOutGradients, norms)),
      scaled: mean(await errorsOn(scaled, heldOutGradients, norms)),
      learned: mean(await errorsOn(res, heldOutGradients, norms)),
    },
    history: res.history,
  };
}

const KINDS = ['drawn', 'scaled', 'learned'];
const averaged = (rows, set) => Object.fromEntries(KINDS.map((k) => [k, mean(rows.map((x) => x[set][k]))]));
const cells = [];
for (const d of D) {
  for (const r of R) {
    const perLayer = [];
    for (const [i, l] of layers.entries()) {
      const dd = Math.min(d, l.rows, l.cols);
      const rng = new Rng(1000 * i + 10 * d + r);
      const start = {
        left: SparseProjector.random(l.rows, dd, r, rng),
        right: SparseProjector.random(l.cols, dd, r, rng),
      };
      const m = await measure(start, fit.get(l.name), heldOut.get(l.name), heldOutNorms.get(l.name));
      perLayer.push({ layer: l.name, d: dd, inSample: m.inSample, heldOut: m.heldOut, history: m.history });
    }
    const cell = {
      d,
      r,
      inSample: averaged(perLayer, 'inSample'),
      heldOut: averaged(perLayer, 'heldOut'),
      perLayer,
    };
    cells.push(cell);
    console.error(
      `d=${d} r=${r}: held out: drawn ${cell.heldOut.drawn.toFixed(3)} scaled ${cell.heldOut.scaled.toFixed(3)} ` +
        `learned ${cell.heldOut.learned.toFixed(3)} (in-sample ${cell.inSample.learned.toFixed(3)})`,
    );
  }
}

// one pair shared by both layers of each type (r = 4), learned on all their fit gradients
const shared = [];
for (const d of D) {
  const inSample = [];
  const held = [];
  for (const [k, group] of groupLayers(layers, 'type').entries()) {
    const dd = Math.min(d, group.rows, group.cols);
    const rng = new Rng(77 + 1000 * k + d);
    const start = {
      left: SparseProjector.random(group.rows, dd, 4, rng),
      right: SparseProjector.random(group.cols, dd, 4, rng),
    };
    const res = await learnProjectorPair(
      gpu,
      group.layers.flatMap((l) => fit.get(l.name)),
      start,
      LEARNING,
    );
    learnings++;
    learningMs += res.ms;
    inSample.push(...res.errors);
    for (const l of group.layers)
      held.push(...(await errorsOn(res, heldOut.get(l.name), heldOutNorms.get(l.name))));
  }
  shared.push({ d, r: 4, inSample: mean(inSample), heldOut: mean(held) });
}

// best rank-d reconstruction of each gradient (truncated SVD): e and the fraction of ||G||^2 it keeps
const svd = D.map((d) => {
  const of = (set) =>
    layers.flatMap((l) =>
      host.get(l.name)[set].map((g) => svdFloor(g, l.rows, l.cols, [Math.min(d, l.rows, l.cols)])[0]),
    );
  const heldOutErrors = of('heldOut');
  return {
    d,
    inSample: mean(of('fit')),
    heldOut: mean(heldOutErrors),
    energyKept: 1 - mean(heldOutErrors.map((e) => e * e)),
  };
});
const totalMs = performance.now() - t0;
const report = gpu.ctx.report;

const fmt = (x) => x.toFixed(3);
const lines = [];
lines.push(
  `Tiny LLaMA fixture after ${STEPS} native AdamW steps (lr ${TRAINING.lr}) on random ${BATCH} x ${SEQ_LEN}-token batches ` +
    `(loss ${losses.map((x) => x.toFixed(3)).join(', ')}); gradients of ${FIT_BATCHES} fit + ${HELD_OUT_BATCHES} held-out ` +
    `batches (loss ${fmt(mean(gradLosses))} on average). Mean e over the ${layers.length} projected layers, one pair per ` +
    `layer, random as drawn / random best-scaled -> learned:`,
);
const table = (title, set, floorSet, withEnergy) => {
  lines.push('');
  lines.push(title);
  lines.push('');
  lines.push(
    `| d (capped at min(rows, cols)) | ${R.map((r) => `r = ${r}`).join(' | ')} | shared per type, r = 4 | best rank-d (SVD): e${withEnergy ? ', energy kept' : ''} |`,
  );
  lines.push(`|---|${R.map(() => '---').join('|')}|---|---|`);
  for (const [i, d] of D.entries()) {
    const row = R.map((r) => {
      const c = cells.find((x) => x.d === d && x.r === r)[set];
      return `${fmt(c.drawn)} / ${fmt(c.scaled)} -> **${fmt(c.learned)}**`;
    });
    const floor = `${fmt(svd[i][floorSet])}${withEnergy ? `, ${(100 * svd[i].energyKept).toFixed(1)} %` : ''}`;
    lines.push(`| ${d} | ${row.join(' | ')} | ${fmt(shared[i][set])} | ${floor} |`);
  }
};
table(`Out-of-sample (on the ${HELD_OUT_BATCHES} held-out gradients per layer):`, 'heldOut', 'heldOut', true);
table(
  `In-sample (on the ${FIT_BATCHES} fit gradients per layer the pairs were learned on):`,
  'inSample',
  'inSample',
  false,
);
lines.push('');
lines.push(
  `${learnings} learnings of <= ${LEARNING.maxIterations} Adam steps (${(learningMs / learnings).toFixed(0)} ms each); ` +
    `training and gradients ${(gradientMs / 1000).toFixed(1)} s; ${(totalMs / 1000).toFixed(1)} s in all on ${report.description}.`,
);
console.log(lines.join('\n'));

if (outDir) {
  mkdirSync(outDir, { recursive: true });
  writeFileSync(
    join(outDir, 'projector-error.json'),
    JSON.stringify(
      {
        adapter: report.description,
        training: { ...TRAINING, steps: STEPS, batch: BATCH, seqLen: SEQ_LEN, tokenSeed: SEED, losses },
        gradients: { fitBatches: FIT_BATCHES, heldOutBatches: HELD_OUT_BATCHES, losses: gradLosses },
        learning: LEARNING,
        cells,
        shared,
        svdFloor: svd,
        ms: { total: totalMs, trainingAndGradients: gradientMs, learning: learningMs },
      },
      null,
      2,
    ),
  );
}
for (const s of sinks) s.release();
await trainer.destroy();
weights.release();
gpu.destroy();
process.exit(0);
