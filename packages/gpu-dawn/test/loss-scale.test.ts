import { describe, expect, it } from 'vitest';
import { createLossScaleState, updateLossScale, type LossScaleOptions } from '../src/index.js';
import { lossScaleUpdateReference } from '../src/reference.js';
import { useGpu } from './harness.js';

const gpu = useGpu();

describe('dynamic loss scale on the GPU (GradScaler update rule)', () => {
  it('halves and counts a skip on overflow, grows after growthInterval clean steps, clears the count', async () => {
    const g = gpu();
    const options: LossScaleOptions = { initScale: 2 ** 16, growthInterval: 3 };
    const state = createLossScaleState(g, options);
    const count = g.tensor('nonFinite', 'u32', [3], 'workspace');
    // overflow flags per step: growth after 3 clean steps, resets of the tracker, two skips in a row
    const found = [0, 0, 0, 5, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0];
    let want = { scale: 2 ** 16, tracker: 0, skipped: 0 };
    for (const [step, f] of found.entries()) {
      g.write(count, [7, 0, f]); // the step's running count lives at index 2
      updateLossScale(g, state, { tensor: count, index: 2 }, options);
      want = lossScaleUpdateReference(want, f !== 0, options);
      const [scale] = await g.read(state.scale);
      const [tracker, skipped] = await g.read(state.counters);
      expect({ scale, tracker, skipped }, `step ${step}`).toEqual(want);
      expect(Array.from(await g.read(count)), `count cleared at step ${step}`).toEqual([7, 0, 0]);
    }
    expect(want).toEqual({ scale: 2 ** 16, tracker: 0, skipped: 3 });
    for (const t of [state.scale, state.counters, count]) t.release();
  });

  it('never grows to inf (like torch), and keeps the count with clearCount false', async () => {
    const g = gpu();
    const options = { initScale: 2 ** 127, growthInterval: 1, clearCount: false };
    const state = createLossScaleState(g, options);
    const count = g.upload('nonFinite', 'u32', [1], [0]);
    updateLossScale(g, state, { tensor: count }, options);
    expect(Array.from(await g.read(state.scale))).toEqual([2 ** 127]);
    expect(lossScaleUpdateReference({ scale: 2 ** 127, tracker: 0, skipped: 0 }, false, options).scale).toBe(
      2 ** 127,
    );
    g.write(count, [2]);
    updateLossScale(g, state, { tensor: count }, options);
    expect(Array.from(await g.read(state.scale))).toEqual([2 ** 126]);
    expect(Array.from(await g.read(count))).toEqual([2]);
    for (const t of [state.scale, state.counters, count]) t.release();
  });

  it('rejects bad options and tensors', () => {
    const g = gpu();
    expect(() => createLossScaleState(g, { backoffFactor: 1 })).toThrow(/backoffFactor must lie in \(0, 1\)/);
    const state = createLossScaleState(g);
    const f32 = g.tensor('f', 'f32', [1], 'workspace');
    expect(() => updateLossScale(g, state, { tensor: f32 })).toThrow(/count must be u32/);
    const u = g.tensor('u', 'u32', [1], 'workspace');
    expect(() => updateLossScale(g, state, { tensor: u, index: 1 })).toThrow(/count index 1 outside/);
    for (const t of [state.scale, state.counters, f32, u]) t.release();
  });
});
