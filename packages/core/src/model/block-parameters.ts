// The model's parameters resolved once from the one parameter list (hf/parameters.ts): per block, each
// linear (spec, weight, bias) by its type and each norm (weight, bias) by its module; outside the blocks,
// the embeddings, the final norm and the LM head. The model code reads these instead of building HF
// names again and looking each one up on every call.
import type { Tensor } from '@lsp-offload/gpu-dawn';
import type { LinearType, LinearWeightSpec, NormModule, ParameterSpec } from '../hf/index.js';

export interface ResolvedParameter {
  spec: ParameterSpec;
  tensor: Tensor;
}

export interface ResolvedLinear {
  spec: LinearWeightSpec;
  weight: Tensor;
  bias?: ResolvedParameter;
}

export interface ResolvedNorm {
  weight: ResolvedParameter;
  /** LayerNorm only. */
  bias?: ResolvedParameter;
}

/** One transformer block's linears and norms. */
export class BlockParameters {
  constructor(
    readonly layer: number,
    private readonly linears: ReadonlyMap<LinearType, ResolvedLinear>,
    private readonly norms: ReadonlyMap<NormModule, ResolvedNorm>,
  ) {}

  linear(type: LinearType): ResolvedLinear {
    const l = this.linears.get(type);
    if (!l) throw new Error(`block ${this.layer} has no ${type} linear`);
    return l;
  }

  norm(module: NormModule): ResolvedNorm {
    const n = this.norms.get(module);
    if (!n) throw new Error(`block ${this.layer} has no ${module} norm`);
    return n;
  }
}

/** The parameters outside the blocks. */
export interface OuterParameters {
  /** Token embeddings. */
  embed: ResolvedParameter;
  /** GPT-2's learned positions. */
  positions?: ResolvedParameter;
  finalNorm: ResolvedNorm;
  /** lm_head, or the token embeddings when tied. */
  lmHead: ResolvedParameter;
}

export interface ResolvedModelParameters {
  blocks: BlockParameters[];
  outer: OuterParameters;
}

/** Sorts every parameter into its block's linears and norms or the outer parameters. */
export function resolveParameters(
  specs: readonly ParameterSpec[],
  numLayers: number,
  tensorOf: (name: string) => Tensor,
): ResolvedModelParameters {
  const linears = Array.from({ length: numLayers }, () => new Map<LinearType, ResolvedLinear>());
  const norms = Array.from({ length: numLayers + 1 }, () => new Map<NormModule, ResolvedNorm>());
  // outside the blocks: index numLayers
  const normsOf = (layer: number | null) => norms[layer ?? numLayers]!;
  const biases: { spec: ParameterSpec & { role: 'bias' }; tensor: Tensor }[] = [];
  let embed: ResolvedParameter | undefined;
  let positions: ResolvedParameter | undefined;
  let lmHead: ResolvedParameter | undefined;
  for (const spec of specs) {
    const tensor = tensorOf(spec.name);
    switch (spec.role) {
      case 'linear':
        linears[spec.layer]!.set(spec.linearType, { spec, weight: tensor });
        break;
      case 'norm':
        normsOf(spec.layer).set(spec.module, { weight: { spec, tensor } });
        break;
      case 'bias':
        biases.push({ spec, tensor });
        break;
      case 'embedding':
        if (spec.module === 'wpe') positions = { spec, tensor };
        else embed = { spec, tensor };
        break;
      case 'lm_head':
        lmHead = { spec, tensor };
        break;
    }
  }
  // a bias belongs to the linear or the norm its module names (the two sets of names are disjoint)
  for (const b of biases) {
    const linear =
      b.spec.layer === null ? undefined : linears[b.spec.layer]!.get(b.spec.module as LinearType);
    const owner = linear ?? normsOf(b.spec.layer).get(b.spec.module as NormModule);
    if (!owner) throw new Error(`bias '${b.spec.name}' belongs to no linear or norm of the model`);
    owner.bias = b;
  }
  const outerNorms = [...normsOf(null).values()];
  if (!embed || outerNorms.length !== 1)
    throw new Error('the parameter list lacks the token embeddings or the one final norm');
  const outer: OuterParameters = {
    embed,
    ...(positions && { positions }),
    finalNorm: outerNorms[0]!,
    lmHead: lmHead ?? embed,
  };
  return { blocks: linears.map((l, layer) => new BlockParameters(layer, l, norms[layer]!)), outer };
}
