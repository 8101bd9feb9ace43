import { describe, expect, it } from 'vitest';
import { parseSize } from '../src/size.js';

describe('parseSize', () => {
  it('reads binary and decimal units, case-insensitively, with or without a space', () => {
    expect(parseSize('4GiB')).toBe(4 * 2 ** 30);
    expect(parseSize('512MiB')).toBe(512 * 2 ** 20);
    expect(parseSize('24GB')).toBe(24e9);
    expect(parseSize('1.5G')).toBe(1.5 * 2 ** 30);
    expect(parseSize('64 kib')).toBe(65536);
    expect(parseSize('1000000')).toBe(1e6);
  });

  it('refuses what is not a size, with examples', () => {
    for (const bad of ['', 'GiB', '4 GiBs', '-1GB', '4 PB', 'four'])
      expect(() => parseSize(bad)).toThrow(/is not a size \(examples: 4GiB, 512MiB, 24GB\)/);
  });
});
