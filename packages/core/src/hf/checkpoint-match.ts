// Matching a checkpoint's tensors to the parameter list of its config: every parameter present with
// the right shape, nothing unexplained left over. Known harmless extras are accepted: GPT-2's causal
// mask buffers, old LLaMA checkpoints' rotary inv_freq, and an lm_head.weight saved although tied.
import { HfFormatError } from './errors.js';
import { FLOAT_DTYPES, type SafetensorsDtype } from './safetensors-dtypes.js';
import type { ModelConfig } from './model-config.js';
import type { ParameterSpec } from './parameters.js';

export interface StoredTensor {
  readonly shape: readonly number[];
  readonly dtype: SafetensorsDtype;
}

export interface CheckpointProblem {
  readonly tensor: string;
  readonly problem: string;
}

/** All the ways a checkpoint differs from its config, listed together so one run shows them all. */
export class CheckpointMismatchError extends HfFormatError {
  constructor(
    source: string,
    readonly problems: readonly CheckpointProblem[],
  ) {
    const shown = problems.slice(0, 8).map((p) => `tensor "${p.tensor}": ${p.problem}`);
    if (problems.length > shown.length) shown.push(`... and ${problems.length - shown.length} more`);
    super(source, `checkpoint does not match config.json: ${shown.join('; ')}`);
  }
}

const GPT2_PREFIX = 'transformer.';
const IGNORED_BUFFERS: Record<ModelConfig['family'], RegExp> = {
  gpt2: /^(transformer\.)?h\.\d+\.attn\.(bias|masked_bias)$/,
  llama: /^model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq$/,
};

/**
 * Returns, for every parameter, the name its tensor is stored under (GPT-2 checkpoints saved from the
 * base model lack the `transformer.` prefix). Throws CheckpointMismatchError listing every missing
 * tensor, unexpected tensor, shape mismatch and non-float dtype.
 */
export function matchCheckpoint(
  config: ModelConfig,
  parameters: readonly ParameterSpec[],
  stored: ReadonlyMap<string, StoredTensor>,
  source: string,
): Map<string, string> {
  const problems: CheckpointProblem[] = [];
  const storedNameOf = new Map<string, string>();
  const used = new Set<string>();
  for (const p of parameters) {
    const candidates = [p.name];
    if (config.family === 'gpt2' && p.name.startsWith(GPT2_PREFIX))
      candidates.push(p.name.slice(GPT2_PREFIX.length));
    const storedName = candidates.find((n) => stored.has(n));
    if (storedName === undefined) {
      problems.push({
        tensor: p.name,
        problem: `missing (config.json implies shape [${p.shape.join(', ')}])`,
      });
      continue;
    }
    used.add(storedName);
    storedNameOf.set(p.name, storedName);
    const tensor = stored.get(storedName)!;
    if (!sameShape(tensor.shape, p.shape))
      problems.push({
        tensor: storedName,
        problem: `shape mismatch: [${tensor.shape.join(', ')}] in the checkpoint, [${p.shape.join(', ')}] from config.json`,
      });
    else if (!FLOAT_DTYPES.includes(tensor.dtype))
      problems.push({ tensor: storedName, problem: `dtype ${tensor.dtype} is not a float type` });
  }
  for (const name of stored.keys()) {
    if (used.has(name) || IGNORED_BUFFERS[config.family].test(name)) continue;
    if (name === 'lm_head.weight' && config.tieWordEmbeddings) continue;
    problems.push({
      tensor: name,
      problem: `unexpected: no parameter of this ${config.architecture} has this name`,
    });
  }
  if (problems.length > 0) throw new CheckpointMismatchError(source, problems);
  return storedNameOf;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
