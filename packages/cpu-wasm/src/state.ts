// Optimizer state <-> safetensors bytes. Tensors: "<name>.param" (classic only), "<name>.exp_avg",
// "<name>.exp_avg_sq", all F32 and flat. Metadata "lsp_offload_adamw" holds a JSON string with the step
// counts, kinds and group hyper-parameters. Loading validates everything before writing a byte.
import type { HyperParams } from './hyper.js';
import { validateHyperParams } from './hyper.js';
import {
  bytesSource,
  encodeSafetensors,
  readSafetensorsHeader,
  type ByteSource,
  type SafetensorsTensor,
} from './safetensors.js';
import { bytesView, type Dtype, type Segment, type TensorKind, type TensorRecord } from './tensors.js';

export const STATE_FORMAT = 'lsp-offload-cpu-wasm/adamw@1';
const META_KEY = 'lsp_offload_adamw';

type ArrayName = 'param' | 'expAvg' | 'expAvgSq';
const SUFFIX: Record<ArrayName, string> = { param: 'param', expAvg: 'exp_avg', expAvgSq: 'exp_avg_sq' };

function arraysOf(kind: TensorKind): ArrayName[] {
  return kind === 'param' ? ['param', 'expAvg', 'expAvgSq'] : ['expAvg', 'expAvgSq'];
}

interface SavedTensor {
  kind: TensorKind;
  group: string;
  length: number;
  steps: number;
  gradDtype: Dtype;
  outDtype: Dtype;
}

interface SavedState {
  format: string;
  step: number;
  groups: Record<string, HyperParams>;
  tensors: Record<string, SavedTensor>;
}

export interface OptimizerState {
  step: number;
  groups: ReadonlyMap<string, HyperParams>;
}

/** The state as safetensors parts (header, then views straight into shared memory). */
export function encodeState(records: readonly TensorRecord[], state: OptimizerState): Uint8Array[] {
  const saved: SavedState = { format: STATE_FORMAT, step: state.step, groups: {}, tensors: {} };
  for (const [g, hp] of state.groups) saved.groups[g] = hp;
  const tensors = new Map<string, SafetensorsTensor>();
  for (const r of records) {
    const { kind, group, length, steps, gradDtype, outDtype } = r;
    saved.tensors[r.name] = { kind, group, length, steps, gradDtype, outDtype };
    for (const a of arraysOf(r.kind)) {
      const data = r.segments.map((s: Segment) => bytesView(s, s[a], 4));
      tensors.set(`${r.name}.${SUFFIX[a]}`, { dtype: 'F32', shape: [r.length], data });
    }
  }
  return encodeSafetensors(tensors, { format: STATE_FORMAT, [META_KEY]: JSON.stringify(saved) });
}

/** A validated load, ready to apply: nothing has been written yet. */
export interface PendingLoad {
  step: number;
  groups: Map<string, HyperParams>;
  apply(): void;
}

function isSource(x: unknown): x is ByteSource {
  const s = x as ByteSource;
  return (
    typeof x === 'object' &&
    x !== null &&
    typeof s.byteLength === 'number' &&
    typeof s.readInto === 'function'
  );
}

/**
 * Parse and check the state (bytes, or a ByteSource such as a file) against the registered tensors and
 * groups. Throws before any write; apply() then copies each tensor straight into shared memory.
 */
export function decodeState(
  input: Uint8Array | ByteSource,
  records: readonly TensorRecord[],
  groups: ReadonlySet<string>,
): PendingLoad {
  const fail = (why: string): never => {
    throw new RangeError(`loadStateDict: ${why}`);
  };
  let source: ByteSource;
  if (input instanceof Uint8Array) source = bytesSource(input);
  else if (isSource(input)) source = input;
  else return fail('expected a Uint8Array of safetensors bytes or a ByteSource');
  const file = readSafetensorsHeader(source);
  const raw = file.metadata[META_KEY];
  if (file.metadata['format'] !== STATE_FORMAT || raw === undefined)
    fail(
      `not a state dict of this optimizer (metadata format "${file.metadata['format']}", want "${STATE_FORMAT}")`,
    );
  let saved: SavedState;
  try {
    saved = JSON.parse(raw as string) as SavedState;
  } catch {
    return fail('the optimizer metadata is not valid JSON');
  }
  if (!Number.isSafeInteger(saved.step) || saved.step < 0) fail(`invalid step count ${saved.step}`);
  const newGroups = new Map<string, HyperParams>();
  for (const [g, hp] of Object.entries(saved.groups ?? {})) {
    if (!groups.has(g)) fail(`group "${g}" is not defined in this optimizer`);
    validateHyperParams(hp, `loadStateDict: group "${g}"`);
    newGroups.set(g, {
      lr: hp.lr,
      betas: [hp.betas[0], hp.betas[1]],
      eps: hp.eps,
      weightDecay: hp.weightDecay,
    });
  }
  const registered = new Set(records.map((r) => r.name));
  const extra = Object.keys(saved.tensors ?? {}).filter((n) => !registered.has(n));
  if (extra.length > 0)
    fail(`the state has tensors that are not registered: ${extra.slice(0, 8).join(', ')}`);
  const copies: Array<() => void> = [];
  const steps: Array<[TensorRecord, number]> = [];
  let expectedKeys = 0;
  for (const r of records) {
    const s = saved.tensors[r.name];
    if (!s) return fail(`tensor "${r.name}" is registered but not in the state`);
    if (s.kind !== r.kind) fail(`tensor "${r.name}" is '${r.kind}' here but '${s.kind}' in the state`);
    if (s.length !== r.length)
      fail(`tensor "${r.name}" has ${r.length} elements here but ${s.length} in the state`);
    if (!Number.isSafeInteger(s.steps) || s.steps < 0) fail(`tensor "${r.name}" has an invalid step count`);
    steps.push([r, s.steps]);
    for (const a of arraysOf(r.kind)) {
      const key = `${r.name}.${SUFFIX[a]}`;
      const t = file.tensors.get(key);
      if (!t) return fail(`"${key}" is missing`);
      if (t.dtype !== 'F32' || t.shape.length !== 1 || t.shape[0] !== r.length)
        fail(`"${key}" is ${t.dtype}[${t.shape}], expected F32[${r.length}]`);
      expectedKeys++;
      for (const seg of r.segments)
        copies.push(() => source.readInto(t.begin + seg.start * 4, bytesView(seg, seg[a], 4)));
    }
  }
  if (file.tensors.size !== expectedKeys)
    fail(`the state holds ${file.tensors.size - expectedKeys} unexpected tensors`);
  return {
    step: saved.step,
    groups: newGroups,
    apply() {
      for (const c of copies) c();
      for (const [r, n] of steps) r.steps = n;
    },
  };
}
