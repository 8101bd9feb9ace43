// safetensors files: round trips of every dtype, lazy reads, atomic writes, header validation.
import { describe, expect, it } from 'vitest';
import { existsSync, readdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  HfFormatError,
  SAFETENSORS_DTYPES,
  SafetensorsFile,
  f16BitsToFloat32,
  float32ToBf16Bits,
  float32ToF16Bits,
  writeSafetensors,
  type SafetensorsDtype,
  type TensorToWrite,
} from '../../src/hf/index.js';
import { bytesOf, seededRandom, tempDir, writeRawSafetensors } from './helpers.js';

/** Random bytes for a tensor of `dtype` with `count` elements (valid bit patterns of every kind). */
function randomBytes(count: number, dtype: SafetensorsDtype, seed: number): Uint8Array {
  const random = seededRandom(seed);
  const bytes = new Uint8Array(count * SAFETENSORS_DTYPES[dtype].bytes).map(() => Math.floor(random() * 256));
  if (dtype === 'BOOL') return bytes.map((b) => b & 1);
  return bytes;
}

const SHAPES: readonly (readonly number[])[] = [[3, 7, 5], [11], [], [0, 4], [2, 1, 13]];

describe('safetensors round trip', () => {
  for (const dtype of Object.keys(SAFETENSORS_DTYPES) as SafetensorsDtype[]) {
    it(`writes and reads back ${dtype} exactly`, async () => {
      const path = join(tempDir(), 'a.safetensors');
      const tensors: TensorToWrite[] = SHAPES.map((shape, i) => ({
        name: `t${i}.${dtype}`,
        dtype,
        shape,
        data: randomBytes(
          shape.reduce((a, b) => a * b, 1),
          dtype,
          i + 17,
        ),
      }));
      await writeSafetensors(path, tensors, { metadata: { note: 'round trip' } });
      const file = await SafetensorsFile.open(path);
      try {
        expect(file.metadata).toEqual({ format: 'pt', note: 'round trip' });
        expect([...file.tensors.keys()]).toEqual(tensors.map((t) => t.name));
        for (const t of tensors) {
          const read = await file.read(t.name);
          expect(read.dtype).toBe(dtype);
          expect(read.shape).toEqual(t.shape);
          expect(read.data).toBeInstanceOf(SAFETENSORS_DTYPES[dtype].array);
          expect(Array.from(bytesOf(read.data))).toEqual(Array.from(t.data as Uint8Array));
        }
      } finally {
        await file.close();
      }
    });
  }

  it('converts F16 and BF16 to f32 on request, keeps F16 raw for the GPU', async () => {
    const random = seededRandom(5);
    const values = Float32Array.from(
      { length: 301 },
      () => (random() - 0.5) * 2 ** Math.floor(random() * 40 - 28),
    );
    values.set([0, -0, Infinity, -Infinity, NaN, 1e-7, 65504, 70000], 0);
    const f16 = float32ToF16Bits(values);
    const bf16 = float32ToBf16Bits(values);
    const path = join(tempDir(), 'halves.safetensors');
    await writeSafetensors(path, [
      { name: 'h', dtype: 'F16', shape: [7, 43], data: f16 },
      { name: 'b', dtype: 'BF16', shape: [301], data: bf16 },
      { name: 'f', dtype: 'F32', shape: [301], data: values },
      { name: 'd', dtype: 'F64', shape: [301], data: Float64Array.from(values) },
    ]);
    const file = await SafetensorsFile.open(path);
    try {
      expect(Array.from((await file.readFloat16('h')).data)).toEqual(Array.from(f16));
      expect(Array.from((await file.readFloat32('h')).data)).toEqual(Array.from(f16BitsToFloat32(f16)));
      const widenedBf16 = (await file.readFloat32('b')).data;
      const expectedBf16 = new Float32Array(new Uint32Array(Array.from(bf16, (b) => b << 16)).buffer);
      expect(Array.from(widenedBf16)).toEqual(Array.from(expectedBf16));
      expect(Array.from((await file.readFloat16('f')).data)).toEqual(Array.from(f16));
      expect(Array.from((await file.readFloat16('d')).data)).toEqual(Array.from(f16));
      expect(Array.from((await file.readBfloat16('f')).data)).toEqual(Array.from(bf16));
      expect(Array.from((await file.readFloat32('d')).data)).toEqual(Array.from(values));
      expect(Array.from((await file.readFloat64('f')).data)).toEqual(Array.from(values));
      await expect(file.readFloat32('nope')).rejects.toThrow(/tensor "nope": no such tensor/);
    } finally {
      await file.close();
    }
  });

  it('reads integer tensors as int32, refusing values that do not fit', async () => {
    const path = join(tempDir(), 'ints.safetensors');
    await writeSafetensors(path, [
      {
        name: 'ids64',
        dtype: 'I64',
        shape: [2, 3],
        data: BigInt64Array.of(1n, -100n, 5n, 2n ** 31n - 1n, 0n, 7n),
      },
      { name: 'big', dtype: 'I64', shape: [1], data: BigInt64Array.of(2n ** 31n) },
      { name: 'u8', dtype: 'U8', shape: [2], data: Uint8Array.of(0, 255) },
      { name: 'f', dtype: 'F32', shape: [1], data: Float32Array.of(1) },
    ]);
    const file = await SafetensorsFile.open(path);
    try {
      expect(Array.from((await file.readInt32('ids64')).data)).toEqual([1, -100, 5, 2 ** 31 - 1, 0, 7]);
      expect(Array.from((await file.readInt32('u8')).data)).toEqual([0, 255]);
      await expect(file.readInt32('big')).rejects.toThrow(/tensor "big": value 2147483648 .* int32/);
      await expect(file.readInt32('f')).rejects.toThrow(/expected an integer tensor, found F32/);
      await expect(file.readFloat32('u8')).rejects.toThrow(/expected a float tensor/);
    } finally {
      await file.close();
    }
  });

  it('pads the header to 8 bytes with spaces and writes format "pt" metadata', async () => {
    const path = join(tempDir(), 'pad.safetensors');
    await writeSafetensors(path, [{ name: 'x', dtype: 'U8', shape: [3], data: Uint8Array.of(1, 2, 3) }]);
    const bytes = readFileSync(path);
    const n = Number(bytes.readBigUInt64LE(0));
    expect(n % 8).toBe(0);
    const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8'));
    expect(header).toEqual({
      __metadata__: { format: 'pt' },
      x: { dtype: 'U8', shape: [3], data_offsets: [0, 3] },
    });
    expect(Array.from(bytes.subarray(8 + n))).toEqual([1, 2, 3]);
  });
});

describe('lazy reads', () => {
  it('reads one tensor without reading the others', async () => {
    const path = join(tempDir(), 'lazy.safetensors');
    const big = new Float32Array(250_000).fill(1.5);
    await writeSafetensors(path, [
      { name: 'big', dtype: 'F32', shape: [500, 500], data: big },
      { name: 'small', dtype: 'F32', shape: [3], data: Float32Array.of(1, 2, 3) },
    ]);
    const file = await SafetensorsFile.open(path);
    try {
      const afterOpen = file.bytesRead;
      expect(afterOpen).toBeLessThan(300);
      expect(Array.from((await file.readFloat32('small')).data)).toEqual([1, 2, 3]);
      expect(file.bytesRead).toBe(afterOpen + 12);
    } finally {
      await file.close();
    }
  });

  it('opens a file far larger than memory it would be sensible to use, reading only what is asked', async () => {
    // A sparse 6 GiB file: the header and the first tensor are real, the rest is a hole.
    const path = join(tempDir(), 'huge.safetensors');
    const hugeBytes = 6 * 2 ** 30;
    const header = {
      small: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      huge: { dtype: 'U8', shape: [hugeBytes], data_offsets: [8, 8 + hugeBytes] },
    };
    writeRawSafetensors(path, header, new Uint8Array(new Float32Array([4, 5]).buffer));
    truncateSync(path, 8 + JSON.stringify(header).length + 8 + hugeBytes);
    const file = await SafetensorsFile.open(path);
    try {
      expect(file.info('huge').byteLength).toBe(hugeBytes);
      expect(Array.from((await file.readFloat32('small')).data)).toEqual([4, 5]);
      expect(file.bytesRead).toBeLessThan(300);
    } finally {
      await file.close();
    }
  });

  it('reads straight into a caller buffer (e.g. a mapped staging buffer) of the right size only', async () => {
    const path = join(tempDir(), 'into.safetensors');
    await writeSafetensors(path, [
      { name: 'w', dtype: 'F32', shape: [5], data: Float32Array.of(1, 2, 3, 4, 5) },
    ]);
    const file = await SafetensorsFile.open(path);
    try {
      const staging = new ArrayBuffer(64);
      await file.readInto('w', new Uint8Array(staging, 16, 20));
      expect(Array.from(new Float32Array(staging, 16, 5))).toEqual([1, 2, 3, 4, 5]);
      await expect(file.readInto('w', new Uint8Array(19))).rejects.toThrow(
        /destination has 19 bytes, the tensor 20/,
      );
    } finally {
      await file.close();
    }
  });

  it('takes data from functions, one tensor at a time', async () => {
    const path = join(tempDir(), 'fn.safetensors');
    const produced: string[] = [];
    await writeSafetensors(path, [
      { name: 'a', dtype: 'I32', shape: [2], data: async () => (produced.push('a'), Int32Array.of(1, 2)) },
      { name: 'b', dtype: 'I32', shape: [1], data: async () => (produced.push('b'), Int32Array.of(3)) },
    ]);
    expect(produced).toEqual(['a', 'b']);
    const file = await SafetensorsFile.open(path);
    expect(Array.from((await file.readInt32('b')).data)).toEqual([3]);
    await file.close();
  });
});

describe('atomic writes', () => {
  it('leaves neither the target nor a temporary file when a tensor fails mid-write', async () => {
    const dir = tempDir();
    const path = join(dir, 'model.safetensors');
    await expect(
      writeSafetensors(path, [
        { name: 'ok', dtype: 'F32', shape: [1000], data: new Float32Array(1000) },
        {
          name: 'fails',
          dtype: 'F32',
          shape: [4],
          data: async () => {
            throw new Error('GPU readback failed');
          },
        },
      ]),
    ).rejects.toThrow('GPU readback failed');
    expect(readdirSync(dir)).toEqual([]);
  });

  it('keeps the previous file intact when a rewrite fails', async () => {
    const dir = tempDir();
    const path = join(dir, 'model.safetensors');
    await writeSafetensors(path, [{ name: 'v1', dtype: 'U8', shape: [1], data: Uint8Array.of(1) }]);
    const before = readFileSync(path);
    await expect(
      writeSafetensors(path, [
        { name: 'v2', dtype: 'F32', shape: [2], data: async () => new Float32Array(3) },
      ]),
    ).rejects.toThrow(/tensor "v2": data has 12 bytes but shape \[2\] of F32 needs 8/);
    expect(readFileSync(path).equals(before)).toBe(true);
    expect(readdirSync(dir)).toEqual(['model.safetensors']);
  });

  it('refuses bad tensors before creating any file', async () => {
    const dir = tempDir();
    const path = join(dir, 'x.safetensors');
    const one = { dtype: 'U8' as const, shape: [1], data: Uint8Array.of(1) };
    await expect(
      writeSafetensors(path, [
        { name: 'a', ...one },
        { name: 'a', ...one },
      ]),
    ).rejects.toThrow(/tensor "a": duplicate or reserved tensor name/);
    await expect(
      writeSafetensors(path, [{ name: 'a', dtype: 'F32', shape: [2], data: new Float32Array(3) }]),
    ).rejects.toThrow(/needs 8/);
    expect(readdirSync(dir)).toEqual([]);
  });
});

describe('header validation', () => {
  const f32 = (n: number, begin: number): object => ({
    dtype: 'F32',
    shape: [n],
    data_offsets: [begin, begin + 4 * n],
  });

  async function openError(setup: (path: string) => void): Promise<HfFormatError> {
    const path = join(tempDir(), 'bad.safetensors');
    setup(path);
    const error = await SafetensorsFile.open(path).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(HfFormatError);
    expect((error as HfFormatError).file).toBe(path);
    return error as HfFormatError;
  }

  it('rejects a file too short to hold the header length', async () => {
    const e = await openError((p) => writeFileSync(p, Uint8Array.of(1, 2, 3)));
    expect(e.message).toMatch(/corrupt header: the file is 3 bytes, too short/);
  });

  it('rejects a header length beyond the limit or the file', async () => {
    let e = await openError((p) => writeRawSafetensors(p, {}, new Uint8Array(), { headerLength: 2n ** 40n }));
    expect(e.message).toMatch(/corrupt header: header length 1099511627776 exceeds the 100000000-byte limit/);
    e = await openError((p) =>
      writeRawSafetensors(p, { a: f32(1, 0) }, new Uint8Array(4), { headerLength: 5000n }),
    );
    expect(e.message).toMatch(/the 5000-byte header extends past the end of the \d+-byte file/);
  });

  it('rejects headers that are not JSON objects', async () => {
    expect((await openError((p) => writeRawSafetensors(p, '{"a": ', new Uint8Array()))).message).toMatch(
      /corrupt header: the header is not valid JSON/,
    );
    expect((await openError((p) => writeRawSafetensors(p, '[1, 2]', new Uint8Array()))).message).toMatch(
      /not a JSON object/,
    );
    const notUtf8 = (p: string): void => {
      writeRawSafetensors(p, '{"a":1}', new Uint8Array());
      const bytes = readFileSync(p);
      bytes[10] = 0xff;
      writeFileSync(p, bytes);
    };
    expect((await openError(notUtf8)).message).toMatch(/not valid UTF-8/);
  });

  it('rejects an unknown dtype, naming the tensor', async () => {
    const e = await openError((p) =>
      writeRawSafetensors(
        p,
        { w: { dtype: 'F8_E4M3', shape: [2], data_offsets: [0, 2] } },
        new Uint8Array(2),
      ),
    );
    expect(e.tensor).toBe('w');
    expect(e.message).toMatch(/tensor "w": unknown dtype "F8_E4M3" \(supported: BOOL, U8/);
  });

  it('rejects a shape that does not match the byte range', async () => {
    const e = await openError((p) =>
      writeRawSafetensors(
        p,
        { w: { dtype: 'F16', shape: [3, 5], data_offsets: [0, 32] } },
        new Uint8Array(32),
      ),
    );
    expect(e.message).toMatch(
      /tensor "w": corrupt header: shape \[3, 5\] of F16 needs 30 bytes but data_offsets \[0, 32\] span 32/,
    );
  });

  it('rejects malformed entries', async () => {
    const cases: [object, RegExp][] = [
      [{ w: 5 }, /tensor "w": corrupt header: the entry is not an object/],
      [{ w: { shape: [1], data_offsets: [0, 4] } }, /dtype is missing/],
      [
        { w: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } },
        /shape \[-1\] is not a list of non-negative integers/,
      ],
      [{ w: { dtype: 'F32', shape: [1], data_offsets: [0] } }, /data_offsets \[0\] is not a pair/],
      [{ w: { dtype: 'F32', shape: [1], data_offsets: [4, 0] } }, /end before they begin/],
      [{ __metadata__: { a: 1 } }, /__metadata__ value "a" is not a string/],
      [{ __metadata__: [] }, /__metadata__ must be an object of strings/],
    ];
    for (const [header, message] of cases)
      expect((await openError((p) => writeRawSafetensors(p, header, new Uint8Array(4)))).message).toMatch(
        message,
      );
  });

  it('rejects overlapping ranges, naming both tensors', async () => {
    const e = await openError((p) =>
      writeRawSafetensors(p, { a: f32(2, 0), b: f32(2, 4) }, new Uint8Array(12)),
    );
    expect(e.message).toMatch(
      /tensor "b": corrupt header: overlapping ranges: data_offsets \[4, 12\] overlap tensor "a" at \[0, 8\]/,
    );
  });

  it('rejects gaps between tensors and bytes after the last one', async () => {
    let e = await openError((p) =>
      writeRawSafetensors(p, { a: f32(1, 0), b: f32(1, 8) }, new Uint8Array(12)),
    );
    expect(e.message).toMatch(/tensor "b": corrupt header: .* leave a gap of 4 bytes after tensor "a"/);
    e = await openError((p) => writeRawSafetensors(p, { a: f32(1, 0) }, new Uint8Array(9)));
    expect(e.message).toMatch(
      /the tensors cover 4 bytes but the data section has 9 \(5 unexplained trailing bytes\)/,
    );
  });

  it('rejects a truncated file, naming the first tensor cut off', async () => {
    const e = await openError((p) => {
      writeRawSafetensors(p, { a: f32(2, 0), b: f32(3, 8), c: f32(1, 20) }, new Uint8Array(24));
      truncateSync(p, readFileSync(p).byteLength - 10);
    });
    expect(e.tensor).toBe('b');
    expect(e.message).toMatch(
      /tensor "b": truncated tensor: its bytes \[8, 20\) of the data section extend past the end of the file, whose data section has only 14 bytes/,
    );
  });

  it('reports a file truncated after opening when the tensor is read', async () => {
    const path = join(tempDir(), 'shrinks.safetensors');
    await writeSafetensors(path, [{ name: 'w', dtype: 'F32', shape: [64], data: new Float32Array(64) }]);
    const file = await SafetensorsFile.open(path);
    try {
      truncateSync(path, readFileSync(path).byteLength - 100);
      await expect(file.readFloat32('w')).rejects.toThrow(
        /tensor "w": truncated tensor: the file ended after 156 of its 256 bytes/,
      );
    } finally {
      await file.close();
    }
  });

  it('names a missing file', async () => {
    const path = join(tempDir(), 'missing.safetensors');
    await expect(SafetensorsFile.open(path)).rejects.toThrow(new RegExp(`${path}: cannot open`));
    expect(existsSync(path)).toBe(false);
  });
});
