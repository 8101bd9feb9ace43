// Reconstruction error e = ||L L^T G R R^T - G||_F / ||G||_F of random vs learned (d, r)-sparse projectors
// on real gradients: the dense float64 gradients `grad.<hf name>` of the tiny LLaMA fixture
// (fixtures/hf/llama-gqa/reference.safetensors: one batch of 2 x 11 tokens, computed by HF transformers),
// one pair per layer, d in {8, 16, 32, 64} (capped at min(rows, cols)) and r in {1, 2, 4, 8}. "drawn" is a
// random pair as drawn (values N(0, 1/r), which over-scale L L^T by about rows/d, so e >> 1); "scaled" is
// that pair times the best common factor (closed form; where every learning starts); "learned" is the same
// positions after Adam on the values (100 iterations, lr 0.1, cosine decay, no early stop). Also: one pair
// shared per layer type, and the best any rank-d matrix can do (truncated SVD), for context.
// Usage: node bench/projector-error.mjs [outDir]   (after building core; writes projector-error.json)
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { GpuRuntime } from '@lsp-offload/gpu-dawn';
// the projector modules directly, not ../dist/index.js: this measurement needs none of the model code
import { SafetensorsFile, listParameters, loadModelConfig } from '../dist/hf/index.js';
import { groupLayers, projectedLayersOf } from '../dist/projectors/projector-groups.js';
import { learnProjectorPair } from '../dist/projectors/projector-learning.js';
import { SparseProjector } from '../dist/projectors/sparse-projector.js';
import { Rng } from '../dist/util/rng.js';

const outDir = process.argv[2];
const fixture = new URL('../fixtures/hf/llama-gqa/', import.meta.url).pathname;
const D = [8, 16, 32, 64];
const R = [1, 2, 4, 8];
const LEARNING = { lr: 0.1, maxIterations: 100, targetError: 0, rescaleStart: true };

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

const config = await loadModelConfig(fixture);
const layers = projectedLayersOf(listParameters(config));
const file = await SafetensorsFile.open(join(fixture, 'reference.safetensors'));
const gpu = await GpuRuntime.create();
const grads = new Map();
const host = new Map();
for (const l of layers) {
  const g = (await file.readFloat64(`grad.${l.name}`)).data;
  host.set(l.name, g);
  grads.set(l.name, gpu.upload(`grad.${l.name}`, 'f32', [l.rows, l.cols], g));
}
await file.close();

const t0 = performance.now();
const cells = [];
let learnings = 0;
let learningMs = 0;
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
      const res = await learnProjectorPair(gpu, [grads.get(l.name)], start, LEARNING);
      learnings++;
      learningMs += res.ms;
      perLayer.push({
        layer: l.name,
        d: dd,
        drawn: res.startError,
        scaled: res.history[0],
        learned: res.meanError,
        history: res.history,
      });
    }
    const cell = {
      d,
      r,
      drawn: mean(perLayer.map((x) => x.drawn)),
      scaled: mean(perLayer.map((x) => x.scaled)),
      learned: mean(perLayer.map((x) => x.learned)),
      perLayer,
    };
    cells.push(cell);
    console.error(
      `d=${d} r=${r}: drawn ${cell.drawn.toFixed(3)} scaled ${cell.scaled.toFixed(3)} learned ${cell.learned.toFixed(3)}`,
    );
  }
}

// one pair shared by both layers of each type (r = 4): the mean over the type's gradients
const shared = [];
for (const d of D) {
  const errors = [];
  for (const [k, group] of groupLayers(layers, 'type').entries()) {
    const dd = Math.min(d, group.rows, group.cols);
    const rng = new Rng(77 + 1000 * k + d);
    const start = {
      left: SparseProjector.random(group.rows, dd, 4, rng),
      right: SparseProjector.random(group.cols, dd, 4, rng),
    };
    const res = await learnProjectorPair(
      gpu,
      group.layers.map((l) => grads.get(l.name)),
      start,
      LEARNING,
    );
    learnings++;
    learningMs += res.ms;
    errors.push(...res.errors);
  }
  shared.push({ d, r: 4, learned: mean(errors) });
}

const floors = D.map((d) =>
  mean(layers.map((l) => svdFloor(host.get(l.name), l.rows, l.cols, [Math.min(d, l.rows, l.cols)])[0])),
);
// fraction of ||G||^2 the truncated SVD keeps, averaged over layers
const energy = D.map((d) => {
  const kept = layers.map(
    (l) => 1 - svdFloor(host.get(l.name), l.rows, l.cols, [Math.min(d, l.rows, l.cols)])[0] ** 2,
  );
  return `${(100 * mean(kept)).toFixed(1)} %`;
});
const totalMs = performance.now() - t0;
const report = gpu.ctx.report;

const fmt = (x) => x.toFixed(3);
const lines = [];
lines.push(
  `Mean e over the ${layers.length} projected layers of the tiny LLaMA fixture, one pair per layer, random as drawn / random best-scaled -> learned:`,
);
lines.push('');
lines.push(
  `| d (capped at min(rows, cols)) | ${R.map((r) => `r = ${r}`).join(' | ')} | shared per type, r = 4 | best rank-d (SVD): e, energy kept |`,
);
lines.push(`|---|${R.map(() => '---').join('|')}|---|---|`);
for (const [i, d] of D.entries()) {
  const row = R.map((r) => {
    const c = cells.find((x) => x.d === d && x.r === r);
    return `${fmt(c.drawn)} / ${fmt(c.scaled)} -> **${fmt(c.learned)}**`;
  });
  lines.push(`| ${d} | ${row.join(' | ')} | ${fmt(shared[i].learned)} | ${fmt(floors[i])}, ${energy[i]} |`);
}
lines.push('');
lines.push(
  `${learnings} learnings of <= ${LEARNING.maxIterations} Adam steps in ${(totalMs / 1000).toFixed(1)} s ` +
    `(${(learningMs / learnings).toFixed(0)} ms per learning) on ${report.description}.`,
);
console.log(lines.join('\n'));

if (outDir) {
  mkdirSync(outDir, { recursive: true });
  writeFileSync(
    join(outDir, 'projector-error.json'),
    JSON.stringify(
      {
        adapter: report.description,
        learning: LEARNING,
        cells,
        shared,
        svdFloor: D.map((d, i) => ({ d, error: floors[i] })),
      },
      null,
      2,
    ),
  );
}
gpu.destroy();
process.exit(0);
