// Dynamic loss scaling on the GPU (torch.cuda.amp.GradScaler's update rule), one invocation: the scale
// and its counters never leave the GPU, so a step needs no host read to decide the next step's scale.

export const lossScaleUpdateWgsl = /* wgsl */ `
struct Params { growthFactor: f32, backoffFactor: f32, growthInterval: u32, countIndex: u32, clearCount: u32 }
@group(0) @binding(0) var<storage, read_write> count: array<u32>;
@group(0) @binding(1) var<storage, read_write> scale: array<f32>;
@group(0) @binding(2) var<storage, read_write> counters: array<u32>; // [growth tracker, skipped steps]
@group(0) @binding(3) var<uniform> p: Params;

fn isFinite(v: f32) -> bool { return (bitcast<u32>(v) & 0x7f800000u) != 0x7f800000u; }

@compute @workgroup_size(1)
fn main() {
  let found = count[p.countIndex] != 0u;
  if (p.clearCount != 0u) { count[p.countIndex] = 0u; }
  if (found) {
    scale[0] = scale[0] * p.backoffFactor;
    counters[0] = 0u;
    counters[1] = counters[1] + 1u;
    return;
  }
  let clean = counters[0] + 1u;
  if (clean >= p.growthInterval) {
    // like torch: grow only to a finite scale
    let grown = scale[0] * p.growthFactor;
    if (isFinite(grown)) { scale[0] = grown; }
    counters[0] = 0u;
  } else {
    counters[0] = clean;
  }
}
`;
