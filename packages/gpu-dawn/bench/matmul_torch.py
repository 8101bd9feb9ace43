"""cuBLAS reference for bench/matmul.mjs: the same LLaMA-7B shapes and layouts in PyTorch on CUDA, fp32
with TF32 off and fp16, timed with CUDA events. Writes <outDir>/matmul_torch.json and prints a table.
Usage: python3 bench/matmul_torch.py <outDir>
"""

import json
import os
import sys

import torch

# Same list as bench/matmul.mjs: (name, M, N, K, transA, transB). Transposed operands are stored
# transposed and read through a .t() view, as ours are, so cuBLAS picks the matching layout.
SHAPES = [
    ("fwd 4096->4096", 2048, 4096, 4096, False, False),
    ("fwd 4096->11008", 2048, 11008, 4096, False, False),
    ("fwd 11008->4096", 2048, 4096, 11008, False, False),
    ("dX 4096->11008 (dY.W^T)", 2048, 4096, 11008, False, True),
    ("dX 11008->4096 (dY.W^T)", 2048, 11008, 4096, False, True),
    ("dW 4096->11008 (X^T.dY)", 4096, 11008, 2048, True, False),
    ("dW 4096->4096 (X^T.dY)", 4096, 4096, 2048, True, False),
]


def bench(m, n, k, trans_a, trans_b, dtype):
    a = torch.randn((k, m) if trans_a else (m, k), device="cuda", dtype=dtype) * 0.1
    b = torch.randn((n, k) if trans_b else (k, n), device="cuda", dtype=dtype) * 0.1
    c = torch.empty((m, n), device="cuda", dtype=dtype)
    op_a = a.t() if trans_a else a
    op_b = b.t() if trans_b else b
    for _ in range(3):
        torch.matmul(op_a, op_b, out=c)
    torch.cuda.synchronize()
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    start.record()
    torch.matmul(op_a, op_b, out=c)
    end.record()
    torch.cuda.synchronize()
    once = start.elapsed_time(end)
    reps = max(3, min(200, int(100 / max(once, 0.01)) + 1))
    samples = []
    for _ in range(3):
        start.record()
        for _ in range(reps):
            torch.matmul(op_a, op_b, out=c)
        end.record()
        torch.cuda.synchronize()
        samples.append(start.elapsed_time(end) / reps)
    ms = sorted(samples)[1]
    return 2 * m * n * k / ms / 1e9


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else None
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    rows = []
    for name, m, n, k, ta, tb in SHAPES:
        row = {
            "shape": name,
            "m": m,
            "n": n,
            "k": k,
            "transA": ta,
            "transB": tb,
            "fp32": bench(m, n, k, ta, tb, torch.float32),
            "fp16": bench(m, n, k, ta, tb, torch.float16),
        }
        rows.append(row)
    device = torch.cuda.get_device_name()
    result = {"device": device, "torch": torch.__version__, "tf32": False, "rows": rows}
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "matmul_torch.json"), "w") as f:
            json.dump(result, f, indent=2)
    print(f"torch {torch.__version__} on {device}, TF32 off: TFLOP/s")
    print(f"{'shape':26} {'M':>5} {'N':>6} {'K':>6} {'fp32':>7} {'fp16':>7}")
    for r in rows:
        print(f"{r['shape']:26} {r['m']:5} {r['n']:6} {r['k']:6} {r['fp32']:7.1f} {r['fp16']:7.1f}")


if __name__ == "__main__":
    main()
