import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SafetensorsFile } from '@lsp-offload/core';

const bin = fileURLToPath(new URL('../dist/bin.js', import.meta.url));
const fixture = fileURLToPath(new URL('../../core/fixtures/hf/gpt2/', import.meta.url));

describe('lsp-offload grads', () => {
  it('writes loss, logits and HF-named gradients matching the transformers reference', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'grads-')), 'grads.safetensors');
    // the fixture's reference file holds input_ids and labels (plus the reference values)
    const inputs = join(fixture, 'reference.safetensors');
    const msg = execFileSync(
      process.execPath,
      [bin, 'grads', '--model', fixture, '--inputs', inputs, '--out', out],
      { encoding: 'utf8' },
    );
    expect(msg).toMatch(/^loss \d+\.\d+ over \d+ tokens; wrote logits and 28 gradients/);
    const got = await SafetensorsFile.open(out);
    const ref = await SafetensorsFile.open(inputs);
    const loss = (await got.readFloat64('loss')).data[0]!;
    const refLoss = (await ref.readFloat64('loss')).data[0]!;
    expect(Math.abs(loss - refLoss) / refLoss).toBeLessThan(1e-4);
    const g = (await got.readFloat64('transformer.h.1.mlp.c_fc.weight')).data;
    const r = (await ref.readFloat64('grad.transformer.h.1.mlp.c_fc.weight')).data;
    let num = 0;
    let den = 0;
    for (let i = 0; i < r.length; i++) {
      num += (g[i]! - r[i]!) ** 2;
      den += r[i]! ** 2;
    }
    expect(Math.sqrt(num / den)).toBeLessThan(1e-3);
    await got.close();
    await ref.close();
  });

  it('names a missing input tensor', () => {
    expect(() =>
      execFileSync(
        process.execPath,
        [
          bin,
          'grads',
          '--model',
          fixture,
          '--inputs',
          join(fixture, 'model.safetensors'),
          '--out',
          '/tmp/x.safetensors',
        ],
        { stdio: 'pipe' },
      ),
    ).toThrow(/missing tensor 'input_ids'/);
  });
});
