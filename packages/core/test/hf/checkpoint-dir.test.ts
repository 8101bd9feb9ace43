// Checkpoint directories: one model.safetensors or shards + model.safetensors.index.json.
import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  CheckpointDir,
  INDEX_FILE_NAME,
  SAVE_ID_KEY,
  SINGLE_FILE_NAME,
  writeCheckpointDir,
  writeSafetensors,
  type TensorToWrite,
} from '../../src/hf/index.js';
import { tempDir } from './helpers.js';

function tensors(count: number, elements: number): TensorToWrite[] {
  return Array.from({ length: count }, (_, i) => ({
    name: `layers.${i}.w`,
    dtype: 'F32' as const,
    shape: [elements],
    data: Float32Array.from({ length: elements }, (_, j) => i * 1000 + j),
  }));
}

async function readAll(dir: string): Promise<Record<string, number[]>> {
  const checkpoint = await CheckpointDir.open(dir);
  try {
    const out: Record<string, number[]> = {};
    for (const name of checkpoint.tensors.keys())
      out[name] = Array.from((await checkpoint.readFloat32(name)).data);
    return out;
  } finally {
    await checkpoint.close();
  }
}

describe('checkpoint directories', () => {
  it('writes one model.safetensors when everything fits in a shard', async () => {
    const dir = tempDir();
    await writeCheckpointDir(dir, tensors(3, 5));
    expect(readdirSync(dir)).toEqual([SINGLE_FILE_NAME]);
    const all = await readAll(dir);
    expect(Object.keys(all)).toEqual(['layers.0.w', 'layers.1.w', 'layers.2.w']);
    expect(all['layers.2.w']).toEqual([2000, 2001, 2002, 2003, 2004]);
  });

  it('shards by size, writes the index, and reads any tensor lazily from its shard', async () => {
    const dir = tempDir();
    // 7 tensors of 40 bytes, at most 100 bytes a shard: 2 + 2 + 2 + 1.
    await writeCheckpointDir(dir, tensors(7, 10), { maxShardBytes: 100 });
    expect(readdirSync(dir).sort()).toEqual([
      'model-00001-of-00004.safetensors',
      'model-00002-of-00004.safetensors',
      'model-00003-of-00004.safetensors',
      'model-00004-of-00004.safetensors',
      INDEX_FILE_NAME,
    ]);
    const index = JSON.parse(readFileSync(join(dir, INDEX_FILE_NAME), 'utf8'));
    expect(index.metadata.total_size).toBe(280);
    expect(index.weight_map['layers.6.w']).toBe('model-00004-of-00004.safetensors');
    const checkpoint = await CheckpointDir.open(dir);
    try {
      expect(checkpoint.files).toHaveLength(4);
      const afterOpen = checkpoint.bytesRead;
      expect(Array.from((await checkpoint.readFloat32('layers.5.w')).data.slice(0, 3))).toEqual([
        5000, 5001, 5002,
      ]);
      expect(checkpoint.bytesRead).toBe(afterOpen + 40);
      expect(checkpoint.info('layers.5.w').file).toBe(join(dir, 'model-00003-of-00004.safetensors'));
    } finally {
      await checkpoint.close();
    }
  });

  it('gives a tensor larger than the shard size a shard of its own', async () => {
    const dir = tempDir();
    await writeCheckpointDir(
      dir,
      [...tensors(1, 10), { name: 'big', dtype: 'F32', shape: [100], data: new Float32Array(100) }],
      {
        maxShardBytes: 100,
      },
    );
    const index = JSON.parse(readFileSync(join(dir, INDEX_FILE_NAME), 'utf8'));
    expect(index.weight_map).toEqual({
      'layers.0.w': 'model-00001-of-00002.safetensors',
      big: 'model-00002-of-00002.safetensors',
    });
  });

  it('replaces an earlier save completely, removing its stale files', async () => {
    const dir = tempDir();
    await writeCheckpointDir(dir, tensors(7, 10), { maxShardBytes: 100 });
    await writeCheckpointDir(dir, tensors(3, 10), { maxShardBytes: 100 });
    expect(readdirSync(dir).sort()).toEqual([
      'model-00001-of-00002.safetensors',
      'model-00002-of-00002.safetensors',
      INDEX_FILE_NAME,
    ]);
    await writeCheckpointDir(dir, tensors(2, 3));
    expect(readdirSync(dir)).toEqual([SINGLE_FILE_NAME]);
    expect(Object.keys(await readAll(dir))).toEqual(['layers.0.w', 'layers.1.w']);
  });

  it('leaves the previous checkpoint loadable when writing a new one fails', async () => {
    const dir = tempDir();
    await writeCheckpointDir(dir, tensors(4, 10), { maxShardBytes: 100 });
    const before = readdirSync(dir).sort();
    const failing: TensorToWrite[] = [
      ...tensors(3, 10),
      {
        name: 'last',
        dtype: 'F32',
        shape: [10],
        data: async () => {
          throw new Error('disk full');
        },
      },
    ];
    await expect(writeCheckpointDir(dir, failing, { maxShardBytes: 100 })).rejects.toThrow('disk full');
    expect(readdirSync(dir).sort()).toEqual(before);
    expect((await readAll(dir))['layers.3.w']?.[0]).toBe(3000);
  });

  it('prefers model.safetensors over an index, like transformers', async () => {
    const dir = tempDir();
    await writeCheckpointDir(dir, tensors(4, 10), { maxShardBytes: 100 });
    await writeSafetensors(join(dir, SINGLE_FILE_NAME), [
      { name: 'only', dtype: 'F32', shape: [1], data: Float32Array.of(1) },
    ]);
    expect(Object.keys(await readAll(dir))).toEqual(['only']);
  });
});

describe('checkpoint directory errors', () => {
  async function shardedDir(): Promise<string> {
    const dir = tempDir();
    await writeCheckpointDir(dir, tensors(4, 10), { maxShardBytes: 100 });
    return dir;
  }
  function editIndex(
    dir: string,
    edit: (index: { metadata: Record<string, unknown>; weight_map: Record<string, string> }) => void,
  ): void {
    const path = join(dir, INDEX_FILE_NAME);
    const index = JSON.parse(readFileSync(path, 'utf8'));
    edit(index);
    writeFileSync(path, JSON.stringify(index));
  }

  it('says when the directory holds no checkpoint', async () => {
    const dir = tempDir();
    await expect(CheckpointDir.open(dir)).rejects.toThrow(
      /no model.safetensors or model.safetensors.index.json/,
    );
  });

  it('names a missing shard', async () => {
    const dir = await shardedDir();
    editIndex(dir, (i) => (i.weight_map['layers.0.w'] = 'model-00009-of-00009.safetensors'));
    await expect(CheckpointDir.open(dir)).rejects.toThrow(/model-00009-of-00009.safetensors: cannot open/);
  });

  it('names a tensor the index puts in a shard that lacks it', async () => {
    const dir = await shardedDir();
    editIndex(dir, (i) => {
      i.weight_map['ghost'] = 'model-00001-of-00002.safetensors';
    });
    await expect(CheckpointDir.open(dir)).rejects.toThrow(
      /model-00001-of-00002.safetensors: tensor "ghost": listed in model.safetensors.index.json but missing/,
    );
  });

  it('names a tensor in a shard that the index does not list', async () => {
    const dir = await shardedDir();
    editIndex(dir, (i) => {
      delete i.weight_map['layers.1.w'];
    });
    await expect(CheckpointDir.open(dir)).rejects.toThrow(
      /tensor "layers.1.w": present in this shard but .* does not list it/,
    );
  });

  it('refuses shard paths that leave the directory', async () => {
    const dir = await shardedDir();
    editIndex(dir, (i) => (i.weight_map['layers.0.w'] = '../elsewhere.safetensors'));
    await expect(CheckpointDir.open(dir)).rejects.toThrow(
      /tensor "layers.0.w": weight_map entry "..\/elsewhere.safetensors" is not a file name/,
    );
  });

  it('detects shards of another save under an index (a half-written checkpoint)', async () => {
    const dir = await shardedDir();
    editIndex(dir, (i) => (i.metadata[SAVE_ID_KEY] = 'another-save'));
    await expect(CheckpointDir.open(dir)).rejects.toThrow(/belongs to a different save .* left half-written/);
  });

  it('rejects an index that is not JSON or has no weight_map', async () => {
    const dir = await shardedDir();
    writeFileSync(join(dir, INDEX_FILE_NAME), '{"metadata": {}}');
    await expect(CheckpointDir.open(dir)).rejects.toThrow(/missing "weight_map" object/);
    writeFileSync(join(dir, INDEX_FILE_NAME), '{');
    await expect(CheckpointDir.open(dir)).rejects.toThrow(/model.safetensors.index.json: not valid JSON/);
    expect(existsSync(join(dir, 'model-00001-of-00002.safetensors'))).toBe(true);
  });
});
