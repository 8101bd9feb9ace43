// Checkpoints on tiny random models: a run saved after k steps and resumed in a fresh trainer takes the
// same n next steps (same losses and weights, bit for bit in f32) as the run that went on, in every mode;
// a save that fails midway or is cut by a crash leaves the previous checkpoint; exports load through
// openHfModel; corrupt or mismatched checkpoints fail naming the file and the problem.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  cpSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GpuRuntime } from '@lsp-offload/gpu-dawn';
import {
  BatchLoader,
  CheckpointError,
  CPU_OPTIMIZER_FILE,
  GPU_OPTIMIZER_FILE,
  MANIFEST_FILE,
  ModelWeights,
  PROJECTORS_FILE,
  PackedRows,
  Rng,
  SparseProjector,
  Trainer,
  exportHfModel,
  loadCheckpoint,
  openHfModel,
  overwriteProjectorTensors,
  parseModelConfig,
  renderConfigJson,
  restoreTrainer,
  resumeTraining,
  saveCheckpoint,
  type ModelConfig,
  type TrainerOptions,
  type WeightDtype,
} from '../../src/index.js';
import { leftoverSiblings } from '../../src/checkpoint/atomic-directory.js';

let gpu: GpuRuntime;
const made: string[] = [];
beforeAll(async () => {
  gpu = await GpuRuntime.create();
});
afterAll(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
  gpu?.destroy();
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'lsp-ckpt-'));
  made.push(dir);
  return dir;
}

// rectangular linears (GQA k/v 16 -> 8, MLP 16 <-> 24) so the projectors' two sides differ
const tinyLlama = parseModelConfig({
  model_type: 'llama',
  vocab_size: 37,
  hidden_size: 16,
  intermediate_size: 24,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  max_position_embeddings: 32,
  rms_norm_eps: 1e-6,
  tie_word_embeddings: false,
});

const SEQ_LEN = 9;
const BATCH = 2;

/** Random rows for a real BatchLoader, so the data position goes through the checkpoint too. */
function packedRows(seed: number, rows: number, vocab: number): PackedRows {
  const rng = new Rng(seed);
  const ids = Int32Array.from({ length: rows * SEQ_LEN }, () => rng.below(vocab));
  const labels = ids.map((v, i) => (i % 5 === 0 ? -100 : v));
  const tokens = ids.length;
  return new PackedRows(SEQ_LEN, ids, labels, 0, {
    examples: rows,
    rows,
    tokens,
    padTokens: 0,
    labelTokens: tokens,
    truncatedExamples: 0,
    truncatedTokens: 0,
    truncatedLabelTokens: 0,
  });
}

async function newTrainer(
  options: Partial<TrainerOptions>,
  dtype: WeightDtype,
  seed = 42,
  config: ModelConfig = tinyLlama,
): Promise<Trainer> {
  const weights = ModelWeights.random(gpu, config, dtype, new Rng(seed), 0.2);
  return Trainer.create(gpu, weights, { threads: 2, lr: 3e-3, checkpointing: true, ...options });
}

async function dispose(trainer: Trainer): Promise<void> {
  await trainer.destroy();
  trainer.weights.release();
}

async function losses(trainer: Trainer, loader: BatchLoader, steps: number): Promise<number[]> {
  const out: number[] = [];
  for (let s = 0; s < steps; s++) out.push((await trainer.trainStep(loader.next())).loss);
  await trainer.flush();
  return out;
}

/** What a refit does to a layer: its GPU projectors rewritten in place with new positions and values. */
function simulateRefit(trainer: Trainer): void {
  const [, layer] = [...trainer.projectedLayers][1]!;
  const fresh = SparseProjector.random(layer.rows, layer.d, layer.leftGpu.r, new Rng(99), 'rademacher');
  overwriteProjectorTensors(gpu, layer.leftGpu, fresh);
}

function expectSameWeights(a: Map<string, Float32Array>, b: Map<string, Float32Array>): void {
  expect([...a.keys()]).toEqual([...b.keys()]);
  for (const [name, x] of a)
    expect(Buffer.from(b.get(name)!.buffer).equals(Buffer.from(x.buffer)), name).toBe(true);
}

interface ResumeCase {
  name: string;
  options: Partial<TrainerOptions>;
  dtype: WeightDtype;
  /** resumeTraining (a trainer built from the checkpoint) or restoreTrainer (into one built by the caller). */
  via: 'resume' | 'restore';
  /** Rewrite a layer's projectors before the save, as a refit does. */
  refit?: boolean;
  /** Also check that the save itself changed nothing: a run that never saved ends the same. */
  checkUninterrupted?: boolean;
}

const RESUME_CASES: ResumeCase[] = [
  {
    name: 'lsp (after a refit, f32 steps, trained non-projected)',
    options: { mode: 'lsp', rank: 8, nnz: 2, nonProjected: 'adamw', stepDtype: 'f32' },
    dtype: 'f32',
    via: 'resume',
    refit: true,
  },
  {
    name: 'lsp with f16 weights and f16 steps',
    options: { mode: 'lsp', rank: 8, nnz: 2, nonProjected: 'frozen' },
    dtype: 'f16',
    via: 'resume',
    checkUninterrupted: true,
  },
  { name: 'zero', options: { mode: 'zero' }, dtype: 'f32', via: 'restore' },
  { name: 'native', options: { mode: 'native' }, dtype: 'f32', via: 'resume' },
  {
    name: 'native with f16 weights (fp32 masters)',
    options: { mode: 'native' },
    dtype: 'f16',
    via: 'restore',
  },
];

describe('save and resume', () => {
  const K = 2;
  const N = 2;
  const data = packedRows(5, 7, tinyLlama.vocabSize);

  it.each(RESUME_CASES)(
    '$name: the resumed run repeats the continued one',
    async ({ options, dtype, via, refit, checkUninterrupted }) => {
      const trainer = await newTrainer(options, dtype);
      const loader = new BatchLoader(data, { batchSize: BATCH, seed: 3 });
      await losses(trainer, loader, K);
      if (refit) simulateRefit(trainer);
      const dir = join(tempDir(), 'checkpoint');
      const evalRng = new Rng(11);
      evalRng.next();
      const metrics = [
        { step: 1, loss: 3.5 },
        { step: 2, loss: 3.25 },
      ];
      const saved = await saveCheckpoint(dir, {
        trainer,
        data: loader.state(),
        rng: { eval: evalRng.getState() },
        metrics,
      });
      expect(saved.step).toBe(K);
      const continued = await losses(trainer, loader, N);
      const expected = await trainer.weights.readAll(gpu);
      await dispose(trainer);

      const checkpoint = await loadCheckpoint(dir);
      expect(checkpoint.manifest.metrics).toEqual(metrics);
      expect(Rng.fromState(checkpoint.manifest.rng.eval!).nextU32()).toBe(evalRng.nextU32());
      let resumed: Trainer;
      if (via === 'resume') {
        resumed = (await resumeTraining(gpu, checkpoint, { runtime: { threads: 2 }, mode: options.mode! }))
          .trainer;
      } else {
        resumed = await newTrainer(options, dtype, 1234); // other weights: all of them must come from the checkpoint
        await restoreTrainer(resumed, checkpoint);
      }
      expect(resumed.step).toBe(K);
      const resumedLoader = new BatchLoader(data, { batchSize: BATCH, seed: 999 }, checkpoint.manifest.data!);
      const again = await losses(resumed, resumedLoader, N);
      expect(again).toEqual(continued);
      expect(resumed.step).toBe(K + N);
      expectSameWeights(await resumed.weights.readAll(gpu), expected);
      await dispose(resumed);

      if (checkUninterrupted) {
        // no flush between the steps: updates land when the schedule puts them, as in a run without saves
        const plain = await newTrainer(options, dtype);
        const plainLoader = new BatchLoader(data, { batchSize: BATCH, seed: 3 });
        const all = await losses(plain, plainLoader, K + N);
        expect(all.slice(K)).toEqual(continued);
        expectSameWeights(await plain.weights.readAll(gpu), expected);
        await dispose(plain);
      }
    },
  );

  it('the checkpoint is a Hugging Face model directory (openHfModel loads its weights)', async () => {
    const trainer = await newTrainer({ mode: 'zero' }, 'f32');
    const loader = new BatchLoader(data, { batchSize: BATCH, seed: 3 });
    await losses(trainer, loader, 1);
    const dir = join(tempDir(), 'checkpoint');
    await saveCheckpoint(dir, { trainer }, { maxShardBytes: 4096 });
    const hf = await openHfModel(dir);
    expect(existsSync(join(dir, 'model.safetensors.index.json'))).toBe(true);
    const weights = await trainer.weights.readAll(gpu);
    for (const [name, values] of weights) expect((await hf.weights.readFloat32(name)).data).toEqual(values);
    await hf.close();
    await dispose(trainer);
  });
});

describe('atomic saves', () => {
  it('a save that fails midway leaves the previous checkpoint and nothing else', async () => {
    const trainer = await newTrainer({ mode: 'lsp', rank: 8, nnz: 2, nonProjected: 'frozen' }, 'f32');
    const loader = new BatchLoader(packedRows(5, 4, tinyLlama.vocabSize), { batchSize: BATCH, seed: 3 });
    await losses(trainer, loader, 1);
    const parent = tempDir();
    const dir = join(parent, 'checkpoint');
    const first = await saveCheckpoint(dir, { trainer });
    await losses(trainer, loader, 1);

    // the third weight read back from the GPU fails, while the new model.safetensors is being written
    const read = gpu.read.bind(gpu);
    let weightReads = 0;
    const spy = vi.spyOn(gpu, 'read').mockImplementation(async (t) => {
      if (trainer.weights.has(t.label) && ++weightReads === 3) throw new Error('injected: device lost');
      return read(t);
    });
    await expect(saveCheckpoint(dir, { trainer })).rejects.toThrow('injected: device lost');
    spy.mockRestore();

    expect(readdirSync(parent)).toEqual(['checkpoint']);
    const kept = await loadCheckpoint(dir);
    expect(kept.manifest.step).toBe(1);
    expect(kept.manifest.files).toEqual(first.files);

    // records that are not JSON are refused before anything is written
    await expect(saveCheckpoint(dir, { trainer, metrics: [{ step: 2n }] })).rejects.toThrow(/JSON/);
    expect(readdirSync(parent)).toEqual(['checkpoint']);

    // and a save that completes replaces it
    expect((await saveCheckpoint(dir, { trainer })).step).toBe(2);
    expect(readdirSync(parent)).toEqual(['checkpoint']);
    expect((await loadCheckpoint(dir)).manifest.step).toBe(2);
    await dispose(trainer);
  });

  it('a crash between the two renames is finished on load; a partial directory is dropped', async () => {
    const trainer = await newTrainer({ mode: 'zero' }, 'f32');
    const loader = new BatchLoader(packedRows(5, 4, tinyLlama.vocabSize), { batchSize: BATCH, seed: 3 });
    const parent = tempDir();
    const dir = join(parent, 'checkpoint');
    await losses(trainer, loader, 1);
    await saveCheckpoint(dir, { trainer });
    const spare = join(tempDir(), 'new');
    await losses(trainer, loader, 1);
    await saveCheckpoint(spare, { trainer });

    // the state after "rename old aside" and before "rename ready into place", plus a crashed partial one
    renameSync(dir, join(parent, '.checkpoint.old-0123456789abcdef'));
    cpSync(spare, join(parent, '.checkpoint.ready-0123456789abcdef'), { recursive: true });
    cpSync(spare, join(parent, '.checkpoint.partial-fedcba9876543210'), { recursive: true });
    expect((await leftoverSiblings(dir)).map((s) => s.phase)).toEqual(['old', 'partial', 'ready']);
    expect((await loadCheckpoint(dir)).manifest.step).toBe(2);
    expect(readdirSync(parent)).toEqual(['checkpoint']);

    // crashed before the old one was moved: the old one stays
    cpSync(spare, join(parent, '.checkpoint.ready-0123456789abcdef'), { recursive: true });
    await saveCheckpoint(dir, { trainer });
    expect(readdirSync(parent)).toEqual(['checkpoint']);
    await dispose(trainer);
  });

  it('refuses to replace a directory that is not a checkpoint', async () => {
    const trainer = await newTrainer({ mode: 'zero' }, 'f32');
    const dir = tempDir();
    writeFileSync(join(dir, 'notes.txt'), 'mine');
    await expect(saveCheckpoint(dir, { trainer })).rejects.toThrow(/refusing to replace it/);
    expect(readdirSync(dir)).toEqual(['notes.txt']);
    await dispose(trainer);
  });
});

describe('export', () => {
  it('writes a plain HF directory: same weights through openHfModel, f32 or converted to f16, sharded', async () => {
    const trainer = await newTrainer({ mode: 'lsp', rank: 8, nnz: 2, nonProjected: 'frozen' }, 'f32');
    await losses(
      trainer,
      new BatchLoader(packedRows(5, 4, tinyLlama.vocabSize), { batchSize: BATCH, seed: 3 }),
      1,
    );
    const weights = await trainer.weights.readAll(gpu);
    const parent = tempDir();

    const f32Dir = join(parent, 'f32');
    await exportHfModel(f32Dir, trainer);
    expect(readdirSync(f32Dir).sort()).toEqual([
      'config.json',
      'lsp-offload-export.json',
      'model.safetensors',
    ]);
    let hf = await openHfModel(f32Dir);
    expect(hf.config).toEqual({ ...tinyLlama, savedDtype: 'float32' });
    for (const [name, values] of weights) {
      const stored = await hf.weights.readFloat32(name);
      expect(stored.dtype).toBe('F32');
      expect(stored.data).toEqual(values);
    }
    await hf.close();

    const f16Dir = join(parent, 'f16');
    await exportHfModel(f16Dir, trainer, { dtype: 'f16', maxShardBytes: 2048 });
    expect(readdirSync(f16Dir).filter((f) => f.endsWith('.safetensors')).length).toBeGreaterThan(1);
    hf = await openHfModel(f16Dir);
    expect(hf.config.savedDtype).toBe('float16');
    for (const [name, values] of weights) {
      const stored = await hf.weights.readFloat32(name);
      expect(stored.dtype).toBe('F16');
      for (let i = 0; i < values.length; i++)
        expect(Math.abs(stored.data[i]! - values[i]!)).toBeLessThanOrEqual(
          Math.abs(values[i]!) * 2 ** -11 + 2 ** -24,
        );
    }
    await hf.close();

    // exporting again replaces the export only with force; nothing else is ever replaced by an export
    await expect(exportHfModel(f16Dir, trainer)).rejects.toThrow(/earlier lsp-offload export; give --force/);
    await exportHfModel(f16Dir, trainer, { force: true });
    expect(readdirSync(f16Dir).sort()).toEqual([
      'config.json',
      'lsp-offload-export.json',
      'model.safetensors',
    ]);
    const checkpointDir = join(parent, 'checkpoint');
    await saveCheckpoint(checkpointDir, { trainer });
    await expect(exportHfModel(checkpointDir, trainer, { force: true })).rejects.toThrow(
      /not empty and not an lsp-offload export/,
    );
    await expect(
      exportHfModel(join(parent, 'new'), trainer, { protectedDirs: { '--model': join(parent, 'new') } }),
    ).rejects.toThrow(/is the input model directory \(--model\)/);
    await dispose(trainer);
  });

  it('keeps the source config.json fields and tokenizer files, and the f16 bits of f16 weights', async () => {
    const source = fileURLToPath(new URL('../../fixtures/hf/llama-gqa-f16/', import.meta.url));
    const hf = await openHfModel(source);
    const weights = await ModelWeights.load(gpu, hf, 'f16');
    const configJson: unknown = JSON.parse(readFileSync(join(source, 'config.json'), 'utf8'));
    const dir = join(tempDir(), 'export');
    await exportHfModel(dir, { gpu, weights }, { configJson, sourceDir: source });
    const written = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(written).toEqual({
      ...(configJson as Record<string, unknown>),
      ...dtypeFieldsOf(configJson, 'float16'),
    });
    const copied = readdirSync(source).filter(
      (f) => f.startsWith('tokenizer') || f === 'generation_config.json',
    );
    for (const f of copied) expect(readFileSync(join(dir, f))).toEqual(readFileSync(join(source, f)));
    const back = await openHfModel(dir);
    for (const spec of hf.parameters)
      expect((await back.weights.read(spec.name)).data).toEqual((await hf.weights.read(spec.name)).data);
    await back.close();
    await hf.close();
    weights.release();
  });

  it('renders config.json as transformers writes it (same values as the fixtures for every key)', () => {
    for (const name of ['llama-gqa', 'llama-tied', 'gpt2']) {
      const path = fileURLToPath(new URL(`../../fixtures/hf/${name}/config.json`, import.meta.url));
      const json = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
      const config = parseModelConfig(json);
      const rendered = renderConfigJson(config);
      for (const [key, value] of Object.entries(rendered))
        if (key in json) expect(value, `${name}: ${key}`).toEqual(json[key]);
      const { savedDtype: _saved, ...withoutDtype } = config;
      expect(parseModelConfig(rendered)).toEqual(withoutDtype);
    }
  });
});

function dtypeFieldsOf(json: unknown, dtype: string): Record<string, string> {
  const keys = ['dtype', 'torch_dtype'].filter((k) => Object.hasOwn(json as object, k));
  return Object.fromEntries((keys.length > 0 ? keys : ['dtype']).map((k) => [k, dtype]));
}

describe('bad checkpoints', () => {
  const lspOptions = { mode: 'lsp' as const, rank: 8, nnz: 2, nonProjected: 'frozen' as const };
  let good: string;
  beforeAll(async () => {
    const trainer = await newTrainer(lspOptions, 'f32');
    await losses(
      trainer,
      new BatchLoader(packedRows(5, 4, tinyLlama.vocabSize), { batchSize: BATCH, seed: 3 }),
      1,
    );
    good = join(tempDir(), 'good');
    await saveCheckpoint(good, { trainer });
    await dispose(trainer);
  });

  function broken(change: (dir: string) => void): string {
    const dir = join(tempDir(), 'broken');
    cpSync(good, dir, { recursive: true });
    change(dir);
    return dir;
  }

  async function loadError(dir: string, checksums = true): Promise<CheckpointError> {
    const e: unknown = await loadCheckpoint(dir, { checksums }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(CheckpointError);
    return e as CheckpointError;
  }

  it('a corrupt manifest, a truncated or altered file, a missing file: the file and the problem', async () => {
    let e = await loadError(
      broken((d) => writeFileSync(join(d, MANIFEST_FILE), '{"format": "lsp-offload-chec')),
    );
    expect(e.file).toMatch(new RegExp(`${MANIFEST_FILE}$`));
    expect(e.message).toMatch(/not valid JSON/);

    e = await loadError(
      broken((d) => {
        const path = join(d, CPU_OPTIMIZER_FILE);
        truncateSync(path, readFileSync(path).byteLength - 100);
      }),
      false,
    );
    expect(e.file).toMatch(new RegExp(`${CPU_OPTIMIZER_FILE}$`));
    expect(e.message).toMatch(/truncated: \d+ bytes, the manifest says \d+/);

    e = await loadError(
      broken((d) => {
        const path = join(d, PROJECTORS_FILE);
        const bytes = readFileSync(path);
        const at = bytes.byteLength - 16; // inside the last projector's values
        bytes[at] = bytes[at]! ^ 0x40;
        writeFileSync(path, bytes);
      }),
    );
    expect(e.file).toMatch(new RegExp(`${PROJECTORS_FILE}$`));
    expect(e.message).toMatch(/SHA-256/);

    e = await loadError(broken((d) => rmSync(join(d, PROJECTORS_FILE))));
    expect(e.message).toMatch(new RegExp(`${PROJECTORS_FILE}: missing`));

    e = await loadError(broken((d) => rmSync(join(d, MANIFEST_FILE))));
    expect(e.message).toMatch(/not an lsp-offload training checkpoint/);

    const manifest = JSON.parse(readFileSync(join(good, MANIFEST_FILE), 'utf8')) as Record<string, unknown>;
    e = await loadError(
      broken((d) => writeFileSync(join(d, MANIFEST_FILE), JSON.stringify({ ...manifest, step: -1 }))),
    );
    expect(e.message).toMatch(/"step" must be a non-negative integer/);
  });

  it('an optimizer state that does not fit, found without checksums, names the file', async () => {
    // a native checkpoint's state file under the CPU state's name: sizes in the manifest updated to match
    const dir = broken((d) => {
      const native = join(d, CPU_OPTIMIZER_FILE);
      writeFileSync(native, readFileSync(join(good, PROJECTORS_FILE)));
      const manifest = JSON.parse(readFileSync(join(d, MANIFEST_FILE), 'utf8')) as {
        files: Record<string, { bytes: number; sha256: string }>;
      };
      manifest.files[CPU_OPTIMIZER_FILE] = { ...manifest.files[PROJECTORS_FILE]! };
      writeFileSync(join(d, MANIFEST_FILE), JSON.stringify(manifest));
    });
    const checkpoint = await loadCheckpoint(dir);
    const e: unknown = await resumeTraining(gpu, checkpoint, { runtime: { threads: 2 } }).catch(
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(CheckpointError);
    expect((e as CheckpointError).file).toMatch(new RegExp(`${CPU_OPTIMIZER_FILE}$`));
    expect((e as CheckpointError).message).toMatch(/CPU optimizer state does not fit/);
  });

  it('another mode, other projector settings, another model shape or dtype are refused', async () => {
    const checkpoint = await loadCheckpoint(good);
    await expect(resumeTraining(gpu, checkpoint, { mode: 'native' })).rejects.toThrow(
      /saved in mode lsp, cannot resume in mode native/,
    );
    const wider = parseModelConfig({ ...renderConfigJson(tinyLlama), intermediate_size: 32 });
    await expect(resumeTraining(gpu, checkpoint, { model: wider })).rejects.toThrow(
      /config\.json: the checkpoint is of another model shape.*mlp\.gate_proj\.weight' is \[32, 16\], expected \[24, 16\]/,
    );
    for (const [options, dtype, config, message] of [
      [{ mode: 'zero' }, 'f32', tinyLlama, /saved in mode lsp, cannot resume in mode zero/],
      [{ ...lspOptions, rank: 4 }, 'f32', tinyLlama, /rank 8 saved, 4 now/],
      [lspOptions, 'f16', tinyLlama, /saved with f32 weights, the trainer has f16 weights/],
      [lspOptions, 'f32', wider, /does not match the trainer's/],
    ] as const) {
      const trainer = await newTrainer(options, dtype, 1, config);
      await expect(restoreTrainer(trainer, checkpoint)).rejects.toThrow(message);
      await dispose(trainer);
    }
  });

  it('a native checkpoint written for f32 weights has no masters for f16 ones', async () => {
    const trainer = await newTrainer({ mode: 'native' }, 'f32');
    const dir = join(tempDir(), 'native');
    await saveCheckpoint(dir, { trainer });
    await dispose(trainer);
    const checkpoint = await loadCheckpoint(dir);
    // forge the dtype the manifest claims, as an edited manifest would
    const manifestPath = join(dir, MANIFEST_FILE);
    const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as { model: { dtype: string } };
    manifest.model.dtype = 'f16';
    writeFileSync(manifestPath, JSON.stringify(manifest));
    const f16 = await newTrainer({ mode: 'native' }, 'f16');
    const forged = await loadCheckpoint(dir);
    const e: unknown = await restoreTrainer(f16, forged).catch((x: unknown) => x);
    expect((e as CheckpointError).file).toMatch(new RegExp(`${GPU_OPTIMIZER_FILE}$`));
    expect((e as CheckpointError).message).toMatch(/no fp32 master/);
    expect(checkpoint.manifest.model.dtype).toBe('f32');
    await dispose(f16);
  });
});
