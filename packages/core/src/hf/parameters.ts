// Every parameter of a model, under its Hugging Face name, with the shape and layout HF stores it in.
// This list is the one source of truth for parameter names and shapes: checkpoints are validated
// against it, the model code allocates from it, gradients are named by it.
import type { ModelConfig } from './model-config.js';

export type LlamaLinearType =
  'q_proj' | 'k_proj' | 'v_proj' | 'o_proj' | 'gate_proj' | 'up_proj' | 'down_proj';
/** GPT-2 has two `c_proj`s; the type says which block they belong to. */
export type Gpt2LinearType = 'attn.c_attn' | 'attn.c_proj' | 'mlp.c_fc' | 'mlp.c_proj';
export type LinearType = LlamaLinearType | Gpt2LinearType;

interface ParameterBase {
  /** The HF name, e.g. `model.layers.3.self_attn.q_proj.weight`. */
  readonly name: string;
  /** As HF stores it. */
  readonly shape: readonly number[];
  /** The transformer block, or null outside the blocks. */
  readonly layer: number | null;
}

/**
 * A linear layer's weight: the projected parameters of LSP-Offload. LLaMA's nn.Linear stores
 * out x in ('out_in'); GPT-2's Conv1D stores in x out ('in_out').
 */
export interface LinearWeightSpec extends ParameterBase {
  readonly role: 'linear';
  readonly layer: number;
  readonly linearType: LinearType;
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly layout: 'out_in' | 'in_out';
}

export interface BiasSpec extends ParameterBase {
  readonly role: 'bias';
  readonly layer: number | null;
  /** The module the bias belongs to: a linear type or a norm (GPT-2's `ln_1`, `ln_2`, `ln_f`). */
  readonly module: LinearType | NormModule;
}

export type NormModule = 'input_layernorm' | 'post_attention_layernorm' | 'norm' | 'ln_1' | 'ln_2' | 'ln_f';

export interface NormSpec extends ParameterBase {
  readonly role: 'norm';
  readonly module: NormModule;
}

export interface EmbeddingSpec extends ParameterBase {
  readonly role: 'embedding';
  readonly layer: null;
  /** Token embeddings (`embed_tokens`, `wte`: vocab x hidden) or GPT-2's positions (`wpe`). */
  readonly module: 'embed_tokens' | 'wte' | 'wpe';
}

/** Only present when the output projection is not tied to the token embedding (vocab x hidden). */
export interface LmHeadSpec extends ParameterBase {
  readonly role: 'lm_head';
  readonly layer: null;
}

export type ParameterSpec = LinearWeightSpec | BiasSpec | NormSpec | EmbeddingSpec | LmHeadSpec;
export type ParameterRole = ParameterSpec['role'];

/** All parameters in the order of transformers' `named_parameters()`. */
export function listParameters(config: ModelConfig): ParameterSpec[] {
  return config.family === 'llama' ? llamaParameters(config) : gpt2Parameters(config);
}

export function parameterCount(config: ModelConfig): number {
  return listParameters(config).reduce((sum, p) => sum + p.shape.reduce((a, b) => a * b, 1), 0);
}

function llamaParameters(c: ModelConfig): ParameterSpec[] {
  const specs: ParameterSpec[] = [
    {
      name: 'model.embed_tokens.weight',
      shape: [c.vocabSize, c.hiddenSize],
      role: 'embedding',
      layer: null,
      module: 'embed_tokens',
    },
  ];
  const qWidth = c.numHeads * c.headDim;
  const kvWidth = c.numKeyValueHeads * c.headDim;
  for (let layer = 0; layer < c.numLayers; layer++) {
    const prefix = `model.layers.${layer}`;
    const linear = (
      block: string,
      type: LlamaLinearType,
      inFeatures: number,
      outFeatures: number,
      bias: boolean,
    ): void => {
      specs.push({
        name: `${prefix}.${block}.${type}.weight`,
        shape: [outFeatures, inFeatures],
        role: 'linear',
        layer,
        linearType: type,
        inFeatures,
        outFeatures,
        layout: 'out_in',
      });
      if (bias)
        specs.push({
          name: `${prefix}.${block}.${type}.bias`,
          shape: [outFeatures],
          role: 'bias',
          layer,
          module: type,
        });
    };
    linear('self_attn', 'q_proj', c.hiddenSize, qWidth, c.attentionBias);
    linear('self_attn', 'k_proj', c.hiddenSize, kvWidth, c.attentionBias);
    linear('self_attn', 'v_proj', c.hiddenSize, kvWidth, c.attentionBias);
    linear('self_attn', 'o_proj', qWidth, c.hiddenSize, c.attentionBias);
    linear('mlp', 'gate_proj', c.hiddenSize, c.intermediateSize, c.mlpBias);
    linear('mlp', 'up_proj', c.hiddenSize, c.intermediateSize, c.mlpBias);
    linear('mlp', 'down_proj', c.intermediateSize, c.hiddenSize, c.mlpBias);
    // transformers registers the norms after the attention and MLP modules; keep its order.
    for (const module of ['input_layernorm', 'post_attention_layernorm'] as const)
      specs.push({ name: `${prefix}.${module}.weight`, shape: [c.hiddenSize], role: 'norm', layer, module });
  }
  specs.push({ name: 'model.norm.weight', shape: [c.hiddenSize], role: 'norm', layer: null, module: 'norm' });
  if (!c.tieWordEmbeddings)
    specs.push({ name: 'lm_head.weight', shape: [c.vocabSize, c.hiddenSize], role: 'lm_head', layer: null });
  return specs;
}

function gpt2Parameters(c: ModelConfig): ParameterSpec[] {
  const specs: ParameterSpec[] = [
    {
      name: 'transformer.wte.weight',
      shape: [c.vocabSize, c.hiddenSize],
      role: 'embedding',
      layer: null,
      module: 'wte',
    },
    {
      name: 'transformer.wpe.weight',
      shape: [c.maxPositions, c.hiddenSize],
      role: 'embedding',
      layer: null,
      module: 'wpe',
    },
  ];
  const layerNorm = (prefix: string, module: NormModule, layer: number | null): void => {
    specs.push({ name: `${prefix}.${module}.weight`, shape: [c.hiddenSize], role: 'norm', layer, module });
    specs.push({ name: `${prefix}.${module}.bias`, shape: [c.hiddenSize], role: 'bias', layer, module });
  };
  for (let layer = 0; layer < c.numLayers; layer++) {
    const prefix = `transformer.h.${layer}`;
    // Conv1D: weight in x out, bias out.
    const conv1d = (type: Gpt2LinearType, inFeatures: number, outFeatures: number): void => {
      specs.push({
        name: `${prefix}.${type}.weight`,
        shape: [inFeatures, outFeatures],
        role: 'linear',
        layer,
        linearType: type,
        inFeatures,
        outFeatures,
        layout: 'in_out',
      });
      specs.push({ name: `${prefix}.${type}.bias`, shape: [outFeatures], role: 'bias', layer, module: type });
    };
    layerNorm(prefix, 'ln_1', layer);
    conv1d('attn.c_attn', c.hiddenSize, 3 * c.hiddenSize);
    conv1d('attn.c_proj', c.hiddenSize, c.hiddenSize);
    layerNorm(prefix, 'ln_2', layer);
    conv1d('mlp.c_fc', c.hiddenSize, c.intermediateSize);
    conv1d('mlp.c_proj', c.intermediateSize, c.hiddenSize);
  }
  layerNorm('transformer', 'ln_f', null);
  if (!c.tieWordEmbeddings)
    specs.push({ name: 'lm_head.weight', shape: [c.vocabSize, c.hiddenSize], role: 'lm_head', layer: null });
  return specs;
}
