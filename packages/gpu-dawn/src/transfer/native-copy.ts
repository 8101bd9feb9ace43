// Loads the native parallel copy (native/host-copy.c, built to dist/native/host-copy.node): a memcpy split
// over native threads, synchronously or off the main thread. A mapped staging range cannot reach worker
// threads, so this is the one way to copy it with more than the main thread. Where the addon was not
// built (no C compiler, another platform) the rings keep their main-thread copy.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

export interface NativeHostCopy {
  /** Copy `src` into `dst` (equal lengths) on up to `threads` threads; returns when done. */
  copy(dst: Uint8Array, src: Uint8Array, threads: number): void;
  /** The same on a libuv thread plus helpers; the caller keeps both ranges valid until it settles. */
  copyAsync(dst: Uint8Array, src: Uint8Array, threads: number): Promise<void>;
  readonly maxThreads: number;
}

let loaded: { addon: NativeHostCopy | null; reason: string } | undefined;

function load(): { addon: NativeHostCopy | null; reason: string } {
  if (loaded) return loaded;
  // dist/transfer/ -> dist/native/ when built; src/transfer/ -> dist/native/ when tests run the sources
  const candidates = ['../native/host-copy.node', '../../dist/native/host-copy.node'].map((p) =>
    fileURLToPath(new URL(p, import.meta.url)),
  );
  const file = candidates.find((f) => existsSync(f));
  if (!file) {
    loaded = {
      addon: null,
      reason: `native host copy not built (no ${candidates[0]}; build the package with a C compiler)`,
    };
    return loaded;
  }
  try {
    loaded = { addon: createRequire(import.meta.url)(file) as NativeHostCopy, reason: `loaded ${file}` };
  } catch (e) {
    loaded = { addon: null, reason: `native host copy ${file} failed to load: ${(e as Error).message}` };
  }
  return loaded;
}

/** The addon, or null where it is not available (see nativeHostCopyStatus for why). */
export function nativeHostCopy(): NativeHostCopy | null {
  return load().addon;
}

export function nativeHostCopyStatus(): { available: boolean; reason: string } {
  const { addon, reason } = load();
  return { available: addon !== null, reason };
}

/** The addon, or an error saying why a method that needs it cannot run. */
export function requireNativeHostCopy(what: string): NativeHostCopy {
  const { addon, reason } = load();
  if (!addon) throw new Error(`${what} needs the native host copy: ${reason}`);
  return addon;
}
