// Which layers share a projector pair. The paper's option: one pair per layer, or one pair per layer type
// (all q_proj share one, all gate_proj another; GPT-2: attn.c_attn, ...), which fits nearly as well at
// 1/n_layers of the fitting time and memory.
import type { ParameterSpec } from '../hf/index.js';

/** A projected linear layer: its gradient is rows x cols in the weight's stored layout. */
export interface ProjectedLayerInfo {
  /** HF parameter name, e.g. `model.layers.3.self_attn.q_proj.weight`. */
  name: string;
  /** The layer type shared pairs are keyed by, e.g. `q_proj` or `attn.c_attn`. */
  type: string;
  rows: number;
  cols: number;
}

export type ProjectorSharing = 'layer' | 'type';

/** Layers with one pair: left rows x d, right cols x d. */
export interface ProjectorGroup {
  /** The type (shared) or the layer name (per layer). */
  key: string;
  rows: number;
  cols: number;
  layers: ProjectedLayerInfo[];
}

/** The projected layers of a model: every linear weight in the blocks, in parameter order. */
export function projectedLayersOf(specs: readonly ParameterSpec[]): ProjectedLayerInfo[] {
  const out: ProjectedLayerInfo[] = [];
  for (const s of specs) {
    if (s.role !== 'linear') continue;
    const [rows, cols] = s.shape as [number, number];
    out.push({ name: s.name, type: s.linearType, rows, cols });
  }
  return out;
}

/** Groups in first-appearance order; layers that share a pair must have the same shape. */
export function groupLayers(
  layers: readonly ProjectedLayerInfo[],
  sharing: ProjectorSharing,
): ProjectorGroup[] {
  const groups = new Map<string, ProjectorGroup>();
  const names = new Set<string>();
  for (const layer of layers) {
    if (names.has(layer.name)) throw new Error(`projected layer '${layer.name}' is listed twice`);
    names.add(layer.name);
    const key = sharing === 'type' ? layer.type : layer.name;
    const group = groups.get(key);
    if (!group) {
      groups.set(key, { key, rows: layer.rows, cols: layer.cols, layers: [layer] });
      continue;
    }
    if (group.rows !== layer.rows || group.cols !== layer.cols)
      throw new Error(
        `layers of type '${key}' cannot share projectors: '${group.layers[0]!.name}' is ${group.rows} x ${group.cols}, '${layer.name}' is ${layer.rows} x ${layer.cols}`,
      );
    group.layers.push(layer);
  }
  return [...groups.values()];
}
