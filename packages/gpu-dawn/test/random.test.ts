import { describe, expect, it } from 'vitest';
import { fillNormal } from '../src/index.js';
import { useGpu } from './harness.js';

const gpu = useGpu();

describe('fillNormal', () => {
  for (const dtype of ['f32', 'f16'] as const) {
    it(`gives N(mean, std) values (${dtype}, odd length), reproducibly per seed`, async () => {
      const g = gpu();
      const n = 100_001;
      const t = g.tensor('w', dtype, [n], 'weights');
      fillNormal(g, t, { seed: 7, mean: 0.5, std: 0.02 });
      const v = await g.read(t);
      let s = 0;
      let s2 = 0;
      for (const x of v) {
        s += x;
        s2 += x * x;
      }
      const mean = s / n;
      const std = Math.sqrt(s2 / n - mean * mean);
      expect(Math.abs(mean - 0.5)).toBeLessThan((5 * 0.02) / Math.sqrt(n));
      expect(Math.abs(std - 0.02) / 0.02).toBeLessThan(0.03);
      // within 3 sigma about 99.7 %
      const inside = Array.from(v).filter((x) => Math.abs(x - 0.5) < 0.06).length / n;
      expect(inside).toBeGreaterThan(0.995);
      const again = g.tensor('w2', dtype, [n], 'weights');
      fillNormal(g, again, { seed: 7, mean: 0.5, std: 0.02 });
      expect(Array.from(await g.read(again))).toEqual(Array.from(v));
      fillNormal(g, again, { seed: 8, mean: 0.5, std: 0.02 });
      expect(Array.from(await g.read(again))).not.toEqual(Array.from(v));
    });
  }
});
