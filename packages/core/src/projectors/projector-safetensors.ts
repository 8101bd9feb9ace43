// A sparse projector as safetensors tensors, for checkpoints: `<prefix>.positions` (U32 [rows, r]),
// `<prefix>.values` (F32 [rows, r]) and `<prefix>.d` (U32 [1]; d cannot be read off the positions).
// Reading accepts I32 positions too and any float values, and validates the result.
import type { TensorReader, TensorToWrite } from '../hf/index.js';
import { SparseProjector } from './sparse-projector.js';

export function sparseProjectorTensors(prefix: string, p: SparseProjector): TensorToWrite[] {
  return [
    { name: `${prefix}.positions`, dtype: 'U32', shape: [p.rows, p.r], data: p.positions },
    { name: `${prefix}.values`, dtype: 'F32', shape: [p.rows, p.r], data: p.values },
    { name: `${prefix}.d`, dtype: 'U32', shape: [1], data: Uint32Array.of(p.d) },
  ];
}

export async function readSparseProjector(reader: TensorReader, prefix: string): Promise<SparseProjector> {
  const where = `projector '${prefix}'`;
  for (const part of ['positions', 'values', 'd'])
    if (!reader.has(`${prefix}.${part}`)) throw new Error(`${where}: missing tensor '${prefix}.${part}'`);
  const positions = await reader.read(`${prefix}.positions`);
  if ((positions.dtype !== 'U32' && positions.dtype !== 'I32') || positions.shape.length !== 2)
    throw new Error(
      `${where}: positions must be U32 or I32 [rows, r], found ${positions.dtype} [${positions.shape}]`,
    );
  const [rows, r] = positions.shape as [number, number];
  const values = await reader.readFloat32(`${prefix}.values`);
  if (values.shape.join() !== positions.shape.join())
    throw new Error(`${where}: values [${values.shape}] do not match positions [${positions.shape}]`);
  const dTensor = await reader.read(`${prefix}.d`);
  if ((dTensor.dtype !== 'U32' && dTensor.dtype !== 'I32') || dTensor.data.length !== 1)
    throw new Error(`${where}: d must be one U32 or I32 value`);
  const d = Number(dTensor.data[0]);
  const signed = positions.data as Uint32Array | Int32Array;
  if (signed.some((x) => x < 0)) throw new Error(`${where}: negative position`);
  const p = new SparseProjector(rows, d, r, Uint32Array.from(signed), Float32Array.from(values.data));
  p.validate(where);
  return p;
}
