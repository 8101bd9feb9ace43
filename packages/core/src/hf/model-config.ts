// The model configuration every part of lsp-offload uses, normalized from a Hugging Face config.json
// (parse-model-config.ts reads it). Supported: LlamaForCausalLM ("llama") and GPT2LMHeadModel ("gpt2").
export type ModelFamily = 'llama' | 'gpt2';

export interface ModelConfig {
  readonly family: ModelFamily;
  /** The HF class the checkpoint is for. */
  readonly architecture: 'LlamaForCausalLM' | 'GPT2LMHeadModel';
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  /** Grouped-query attention: heads share key/value heads in groups of numHeads / numKeyValueHeads. */
  readonly numKeyValueHeads: number;
  /** Per head; numHeads * headDim may differ from hiddenSize (LLaMA's explicit head_dim). */
  readonly headDim: number;
  /** Width of the MLP's hidden layer. */
  readonly intermediateSize: number;
  readonly maxPositions: number;
  /** LLaMA: RMSNorm (weight only); GPT-2: LayerNorm (weight and bias). */
  readonly norm: { readonly kind: 'rmsnorm' | 'layernorm'; readonly eps: number };
  /** LLaMA: silu in a gated MLP (gate, up, down); GPT-2: gelu_new (tanh approximation), plain MLP. */
  readonly activation: 'silu' | 'gelu_new';
  readonly positions: { readonly kind: 'rope'; readonly theta: number } | { readonly kind: 'learned' };
  /** lm_head shares the token embedding (no separate lm_head.weight). */
  readonly tieWordEmbeddings: boolean;
  /** Biases on q, k, v and the attention output projection. */
  readonly attentionBias: boolean;
  /** Biases on the MLP's linears. */
  readonly mlpBias: boolean;
  readonly bosTokenIds: readonly number[];
  readonly eosTokenIds: readonly number[];
  /** The dtype the weights were saved in (config's torch_dtype / dtype), if stated. */
  readonly savedDtype?: string;
}
