// "Nothing lost, ever", through the real binary: data sets too small to hold any out, ...
import { beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli, writeSmallData, writeSmallModel } from './small-model.js';

let base: string;
let model: string;
let data: string;

/** A short lsp run of the small model on `dataFile`. */
const run = (dataFile: string, steps = 2): string[] => [
  'train',
  '--model',
  model,
  '--data',
  dataFile,
  ...`--steps ${steps} --batch 2 --seq 16 --rank 16 --eval-batches 1 --dtype f32`.split(' '),
];

beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), 'reliability-'));
  model = join(base, 'model');
  await writeSmallModel(model);
  data = join(base, 'train.jsonl');
  writeSmallData(data);
});

describe('data', () => {
  it('a data set too small for a held-out split says so and evaluates nothing (no "eval loss NaN")', () => {
    const tiny = join(base, 'one.jsonl');
    writeSmallData(tiny, 1);
    const r = cli([...run(tiny), '--refit-every', '1']);
    expect(r.stderr).not.toMatch(/lsp-offload:/);
    expect(r.stderr).toMatch(
      /no held-out data: 1 example is too few to hold any out; evaluations are skipped \(give --eval-data\), projector checks measure on training rows/,
    );
    expect(r.stdout).toMatch(/^done: 2 steps of lsp/);
    expect(`${r.stdout}${r.stderr}`).not.toMatch(/NaN/);
  });
});

describe('tokenizer', () => {
  it("without eos_token (tokenizer.json alone) takes config.json's eos_token_id; --eos-token says it", async () => {
    const withConfigEos = join(base, 'no-tokenizer-config');
    await writeSmallModel(withConfigEos, { eos_token_id: 2 });
    rmSync(join(withConfigEos, 'tokenizer_config.json'));
    const args = (dir: string) => ['train', '--model', dir, '--data', data, ...run(data, 1).slice(5)];
    const r = cli(args(withConfigEos));
    expect(r.stderr).not.toMatch(/lsp-offload:/);
    expect(r.stdout).toMatch(/^done: 1 steps/);
    const noEos = join(base, 'no-eos-at-all');
    await writeSmallModel(noEos);
    rmSync(join(noEos, 'tokenizer_config.json'));
    expect(cli(args(noEos)).stderr).toMatch(/no end-of-sequence token: .* give --eos-token <token or id>/);
    expect(cli([...args(noEos), '--eos-token', '</s>']).stdout).toMatch(/^done: 1 steps/);
    expect(cli([...args(noEos), '--eos-token', '<nope>']).stderr).toMatch(
      /--eos-token '<nope>' is neither a token of the tokenizer nor a token id/,
    );
  });
});
