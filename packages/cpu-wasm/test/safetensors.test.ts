import { describe, expect, it } from 'vitest';
import { concatBytes, decodeSafetensors, encodeSafetensors } from '../src/index.js';

function header(json: object, data = new Uint8Array(0)): Uint8Array {
  const h = new TextEncoder().encode(JSON.stringify(json));
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

describe('safetensors', () => {
  it('round-trips tensors given in parts, with metadata, data 8-byte aligned', () => {
    const a = new Float32Array([1, 2, 3]);
    const b = new Uint16Array([0x3c00, 0x4000]);
    const bytes = concatBytes(
      encodeSafetensors(
        [
          [
            'a',
            {
              dtype: 'F32',
              shape: [3],
              data: [new Uint8Array(a.buffer, 0, 4), new Uint8Array(a.buffer, 4, 8)],
            },
          ],
          ['b', { dtype: 'F16', shape: [1, 2], data: new Uint8Array(b.buffer) }],
          ['empty', { dtype: 'F32', shape: [0], data: new Uint8Array(0) }],
        ],
        { note: 'hi' },
      ),
    );
    const headerLen = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect((8 + headerLen) % 8).toBe(0);
    const d = decodeSafetensors(bytes);
    expect(d.metadata).toEqual({ note: 'hi' });
    expect(new Float32Array(d.tensors.get('a')!.data.slice().buffer)).toEqual(a);
    expect(d.tensors.get('b')).toMatchObject({ dtype: 'F16', shape: [1, 2] });
    expect(d.tensors.get('empty')!.data.length).toBe(0);
  });

  it('refuses sizes that do not match the shape when encoding', () => {
    expect(() => encodeSafetensors([['a', { dtype: 'F32', shape: [2], data: new Uint8Array(4) }]])).toThrow(
      /"a" has 4 bytes, F32\[2\] needs 8/,
    );
  });

  it('refuses damaged files with a reason', () => {
    const four = new Uint8Array(4);
    expect(() =>
      decodeSafetensors(header({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, four)),
    ).not.toThrow();
    expect(() =>
      decodeSafetensors(header({ a: { dtype: 'X', shape: [1], data_offsets: [0, 4] } }, four)),
    ).toThrow(/unknown dtype/);
    expect(() =>
      decodeSafetensors(header({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 4] } }, four)),
    ).toThrow(/do not match/);
    expect(() =>
      decodeSafetensors(header({ a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, four)),
    ).toThrow(/past the data/);
    expect(() =>
      decodeSafetensors(header({ a: { dtype: 'U8', shape: [2], data_offsets: [1, 3] } }, four)),
    ).toThrow(/overlap or hole/);
    expect(() =>
      decodeSafetensors(header({ a: { dtype: 'U8', shape: [2], data_offsets: [0, 2] } }, four)),
    ).toThrow(/2 bytes after the last tensor/);
    const bad = header({});
    new DataView(bad.buffer).setBigUint64(0, 1000n, true);
    expect(() => decodeSafetensors(bad)).toThrow(/header length 1000 does not fit/);
    const notJson = header({});
    notJson[8] = 0x7b + 1;
    expect(() => decodeSafetensors(notJson)).toThrow(/not valid JSON/);
  });
});
