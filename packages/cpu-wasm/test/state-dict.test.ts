// stateDict()/loadStateDict(): safetensors bytes that restore the exact state, validated before any write.
import { afterAll, describe, expect, it } from 'vitest';
import { closeSync, mkdtempSync, openSync, rmSync, truncateSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AdamW, concatBytes, decodeSafetensors, encodeSafetensors, openFileSource } from '../src/index.js';
import {
  BASE_OPTIONS,
  CASES,
  register,
  snapshot,
  snapshotsEqual,
  writeGradients,
  type TensorCase,
} from './helpers.js';

const names = CASES.map((c) => c.name);

describe('stateDict round trip', () => {
  const a = new AdamW({ ...BASE_OPTIONS, threads: 2 });
  const b = new AdamW({ ...BASE_OPTIONS, threads: 1 });
  afterAll(() => Promise.all([a.destroy(), b.destroy()]));
  register(a, CASES, 1);
  register(b, CASES, 2); // different initial params: the load must overwrite them

  it('is readable safetensors with params, moments and step counts', async () => {
    for (let t = 1; t <= 3; t++) {
      writeGradients(a, CASES, 1, t);
      await a.step();
    }
    a.setHyperParams('nodecay', { lr: 0.25 });
    const file = decodeSafetensors(a.stateDict());
    expect(file.tensors.get('w1001.param')).toMatchObject({ dtype: 'F32', shape: [1001] });
    expect(file.tensors.get('s33.exp_avg_sq')).toMatchObject({ dtype: 'F32', shape: [33] });
    expect(file.tensors.has('s33.param')).toBe(false);
    expect(new Float32Array(file.tensors.get('w7.param')!.data.slice().buffer)).toEqual(a.param('w7'));
    const meta = JSON.parse(file.metadata['lsp_offload_adamw']!) as {
      step: number;
      tensors: Record<string, { steps: number }>;
    };
    expect(meta.step).toBe(3);
    expect(meta.tensors['h4099']!.steps).toBe(3);
  });

  it('restores exactly: both continue with the same bits', async () => {
    b.loadStateDict(a.stateDict());
    // the step output is not state (the next step overwrites it): compare params and moments
    expect(snapshotsEqual(snapshot(a, names, false), snapshot(b, names, false))).toEqual([]);
    expect(b.stepCount).toBe(3);
    expect(b.info('w7').steps).toBe(3);
    expect(b.hyperParams('nodecay').lr).toBe(0.25);
    for (let t = 4; t <= 5; t++) {
      writeGradients(a, CASES, 1, t);
      writeGradients(b, CASES, 1, t);
      await Promise.all([a.step(), b.step()]);
    }
    expect(snapshotsEqual(snapshot(a, names), snapshot(b, names))).toEqual([]);
  });

  it('refuses mismatched or damaged state and changes nothing', async () => {
    const sd = a.stateDict();
    const variants: Array<[string, TensorCase[], RegExp]> = [
      ['fewer tensors', CASES.slice(0, 3), /not registered: h4099/],
      [
        'another kind',
        CASES.map((x) => (x.name === 's33' ? { ...x, kind: 'param' } : x)),
        /"s33" is 'param' here but 'stepOnly'/,
      ],
      [
        'another length',
        CASES.map((x) => (x.name === 'w7' ? { ...x, length: 8 } : x)),
        /"w7" has 8 elements here but 7/,
      ],
      [
        'one more tensor',
        [...CASES, { ...CASES[0]!, name: 'extra' }],
        /"extra" is registered but not in the state/,
      ],
    ];
    for (const [what, cases, message] of variants) {
      const c = new AdamW({ ...BASE_OPTIONS, threads: 1 });
      register(c, cases, 3);
      const before = snapshot(
        c,
        cases.map((x) => x.name),
      );
      expect(() => c.loadStateDict(sd), what).toThrow(message);
      expect(
        snapshotsEqual(
          before,
          snapshot(
            c,
            cases.map((x) => x.name),
          ),
        ),
        what,
      ).toEqual([]);
      expect(c.stepCount).toBe(0);
      await c.destroy();
    }
    expect(() => b.loadStateDict(sd.subarray(0, sd.length - 1))).toThrow(/past the data|after the last/);
    expect(() => b.loadStateDict(new Uint8Array(4))).toThrow(/too short/);
    const foreign = concatBytes(
      encodeSafetensors([['x', { dtype: 'F32', shape: [1], data: new Uint8Array(4) }]]),
    );
    expect(() => b.loadStateDict(foreign)).toThrow(/not a state dict of this optimizer/);
  });

  it('streams through a file: parts written in order, loaded with openFileSource into shared memory', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cpu-wasm-state-'));
    const path = join(dir, 'optimizer.safetensors');
    try {
      const fd = openSync(path, 'w');
      for (const part of a.stateDictParts()) writeSync(fd, part);
      closeSync(fd);
      const c = new AdamW({ ...BASE_OPTIONS, threads: 1, memoryCapBytes: 512 * 1024 }); // several memories
      register(c, CASES, 4);
      const source = openFileSource(path);
      try {
        c.loadStateDict(source);
      } finally {
        source.close();
      }
      expect(snapshotsEqual(snapshot(a, names, false), snapshot(c, names, false))).toEqual([]);
      truncateSync(path, 1000);
      const cut = openFileSource(path);
      const before = snapshot(c, names);
      expect(() => c.loadStateDict(cut)).toThrow(/header length \d+ does not fit/);
      cut.close();
      expect(snapshotsEqual(before, snapshot(c, names))).toEqual([]);
      await c.destroy();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
