// A Hugging Face checkpoint directory: either one `model.safetensors`, or shards listed by
// `model.safetensors.index.json` (`{"metadata": {"total_size": N}, "weight_map": {tensor: file}}`).
// Like transformers, a `model.safetensors` wins over an index when both are present.
import { existsSync } from 'node:fs';
import { readFile, readdir, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { writeTextFileAtomically } from './atomic-file.js';
import { HfFormatError } from './errors.js';
import { SafetensorsFile } from './safetensors-file.js';
import { isPlainObject } from './safetensors-header.js';
import { dtypeByteSize, elementCount } from './safetensors-dtypes.js';
import { stageSafetensors, type TensorToWrite } from './safetensors-write.js';
import { TensorReader, type TensorSourceInfo } from './tensor-reader.js';

export const SINGLE_FILE_NAME = 'model.safetensors';
export const INDEX_FILE_NAME = 'model.safetensors.index.json';
const SHARD_NAME = /^model-\d{5}-of-\d{5}\.safetensors$/;
/**
 * Written into every shard and into the index by `writeCheckpointDir`: a crash between renaming the
 * shards and writing the index could leave an old index over new shards; the ids show that.
 */
export const SAVE_ID_KEY = 'lsp_offload_save_id';

export class CheckpointDir extends TensorReader {
  private constructor(
    readonly dir: string,
    /** The files read, in the order opened. */
    readonly files: readonly SafetensorsFile[],
    readonly tensors: ReadonlyMap<string, TensorSourceInfo>,
    private readonly fileOf: ReadonlyMap<string, SafetensorsFile>,
  ) {
    super();
  }

  /** Opens `model.safetensors`, or every shard of the index; reads headers only. */
  static async open(dir: string): Promise<CheckpointDir> {
    const single = join(dir, SINGLE_FILE_NAME);
    if (existsSync(single)) {
      const file = await SafetensorsFile.open(single);
      return new CheckpointDir(
        dir,
        [file],
        file.tensors,
        new Map([...file.tensors.keys()].map((n) => [n, file])),
      );
    }
    const indexPath = join(dir, INDEX_FILE_NAME);
    if (!existsSync(indexPath))
      throw new HfFormatError(
        dir,
        `no ${SINGLE_FILE_NAME} or ${INDEX_FILE_NAME}: not a safetensors checkpoint directory`,
      );
    const { weightMap, saveId } = await readIndex(indexPath);
    const files: SafetensorsFile[] = [];
    try {
      const byShard = new Map<string, SafetensorsFile>();
      for (const shard of new Set(weightMap.values())) {
        const file = await SafetensorsFile.open(join(dir, shard));
        files.push(file);
        byShard.set(shard, file);
        if (saveId !== undefined && file.metadata[SAVE_ID_KEY] !== saveId)
          throw new HfFormatError(
            file.path,
            `belongs to a different save than ${INDEX_FILE_NAME} (${SAVE_ID_KEY} ${file.metadata[SAVE_ID_KEY] ?? 'missing'}, index has ${saveId}): the checkpoint was left half-written`,
          );
      }
      const tensors = new Map<string, TensorSourceInfo>();
      const fileOf = new Map<string, SafetensorsFile>();
      for (const [name, shard] of weightMap) {
        const file = byShard.get(shard)!;
        const info = file.tensors.get(name);
        if (!info)
          throw new HfFormatError(
            file.path,
            `listed in ${INDEX_FILE_NAME} but missing from this shard`,
            name,
          );
        tensors.set(name, info);
        fileOf.set(name, file);
      }
      for (const file of files)
        for (const name of file.tensors.keys())
          if (fileOf.get(name) !== file)
            throw new HfFormatError(
              file.path,
              `present in this shard but ${INDEX_FILE_NAME} ${weightMap.has(name) ? `puts it in ${weightMap.get(name)}` : 'does not list it'}`,
              name,
            );
      return new CheckpointDir(dir, files, tensors, fileOf);
    } catch (e) {
      await Promise.all(files.map((f) => f.close()));
      throw e;
    }
  }

  async readInto(name: string, dest: Uint8Array): Promise<void> {
    this.info(name);
    await this.fileOf.get(name)!.readInto(name, dest);
  }

  async close(): Promise<void> {
    await Promise.all(this.files.map((f) => f.close()));
  }

  /** Bytes read from all files so far. */
  get bytesRead(): number {
    return this.files.reduce((sum, f) => sum + f.bytesRead, 0);
  }

  protected describe(): string {
    return this.dir;
  }
}

async function readIndex(path: string): Promise<{ weightMap: Map<string, string>; saveId?: string }> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    throw new HfFormatError(path, `not valid JSON (${(e as Error).message})`);
  }
  if (!isPlainObject(json) || !isPlainObject(json.weight_map))
    throw new HfFormatError(path, 'missing "weight_map" object (tensor name -> shard file)');
  const weightMap = new Map<string, string>();
  for (const [name, shard] of Object.entries(json.weight_map)) {
    // Shards must be plain file names in the same directory: never follow a path out of it.
    if (typeof shard !== 'string' || shard !== basename(shard) || shard === '..' || shard === '.')
      throw new HfFormatError(path, `weight_map entry ${JSON.stringify(shard)} is not a file name`, name);
    weightMap.set(name, shard);
  }
  const metadata = isPlainObject(json.metadata) ? json.metadata : {};
  const saveId = metadata[SAVE_ID_KEY];
  return typeof saveId === 'string' ? { weightMap, saveId } : { weightMap };
}

export interface CheckpointWriteOptions {
  /** Largest shard in bytes (a bigger tensor gets a shard to itself); default 5 GB like transformers. */
  readonly maxShardBytes?: number;
  readonly metadata?: Readonly<Record<string, string>>;
}

/**
 * Writes tensors as a checkpoint directory (which must exist): one `model.safetensors`, or shards plus
 * an index when they exceed `maxShardBytes`. Every shard is written and synced under a temporary name
 * first, then all are renamed, and the index is written last; files of an older save that the new one
 * does not use are removed afterwards.
 */
export async function writeCheckpointDir(
  dir: string,
  tensors: readonly TensorToWrite[],
  options: CheckpointWriteOptions = {},
): Promise<void> {
  const shards = splitIntoShards(tensors, options.maxShardBytes ?? 5e9);
  const previous = await readdir(dir);
  if (shards.length <= 1) {
    const staged = await stageSafetensors(join(dir, SINGLE_FILE_NAME), tensors, {
      metadata: options.metadata ?? {},
    });
    await staged.commit();
    await removeStale(dir, previous, new Set([SINGLE_FILE_NAME]));
    return;
  }
  const saveId = randomBytes(8).toString('hex');
  const names = shards.map((_, i) => `model-${pad5(i + 1)}-of-${pad5(shards.length)}.safetensors`);
  const staged = [];
  try {
    for (const [i, shard] of shards.entries())
      staged.push(
        await stageSafetensors(join(dir, names[i]!), shard, {
          metadata: { ...options.metadata, [SAVE_ID_KEY]: saveId },
        }),
      );
  } catch (e) {
    await Promise.all(staged.map((s) => s.discard()));
    throw e;
  }
  for (const s of staged) await s.commit();
  const weightMap: Record<string, string> = {};
  let totalSize = 0;
  for (const [i, shard] of shards.entries())
    for (const t of shard) {
      weightMap[t.name] = names[i]!;
      totalSize += elementCount(t.shape) * dtypeByteSize(t.dtype);
    }
  const index = { metadata: { total_size: totalSize, [SAVE_ID_KEY]: saveId }, weight_map: weightMap };
  await writeTextFileAtomically(join(dir, INDEX_FILE_NAME), `${JSON.stringify(index, null, 2)}\n`);
  await removeStale(dir, previous, new Set([...names, INDEX_FILE_NAME]));
}

/** Greedy in order, like transformers: start a new shard when the next tensor would overflow this one. */
function splitIntoShards(tensors: readonly TensorToWrite[], maxShardBytes: number): TensorToWrite[][] {
  const shards: TensorToWrite[][] = [];
  let current: TensorToWrite[] = [];
  let currentBytes = 0;
  for (const t of tensors) {
    const bytes = elementCount(t.shape) * dtypeByteSize(t.dtype);
    if (current.length > 0 && currentBytes + bytes > maxShardBytes) {
      shards.push(current);
      current = [];
      currentBytes = 0;
    }
    current.push(t);
    currentBytes += bytes;
  }
  if (current.length > 0) shards.push(current);
  return shards;
}

/** Removes checkpoint files of an earlier save (single file, index, shards) not in `keep`. */
async function removeStale(dir: string, before: readonly string[], keep: ReadonlySet<string>): Promise<void> {
  for (const name of before)
    if (!keep.has(name) && (name === SINGLE_FILE_NAME || name === INDEX_FILE_NAME || SHARD_NAME.test(name)))
      await rm(join(dir, name), { force: true });
}

function pad5(n: number): string {
  return String(n).padStart(5, '0');
}
