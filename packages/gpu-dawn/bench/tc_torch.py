"""PyTorch side of bench/tc-tune.mjs: cuBLAS fp16 (and fp32 without TF32 for the 7B table) on the matmul
shapes of bench/tc-shapes.json, and causal scaled_dot_product_attention with the flash backend in bf16
(and fp16), forward and forward+backward, on its attention shapes; CUDA events, median of 3 batches.
Writes <outDir>/tc_torch.json and prints a table. --small: the first few shapes only (a smoke run).
Usage: python3 bench/tc_torch.py <outDir> [--small]
"""

import json
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
SMALL = "--small" in sys.argv


def timed(fn, budget_ms=60.0):
    for _ in range(2):
        fn()
    torch.cuda.synchronize()
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    torch.cuda.synchronize()
    once = max(start.elapsed_time(end), 0.005)
    reps = max(3, min(500, int(budget_ms / once)))
    samples = []
    for _ in range(3):
        start.record()
        for _ in range(reps):
            fn()
        end.record()
        torch.cuda.synchronize()
        samples.append(start.elapsed_time(end) / reps)
    return sorted(samples)[1]


def matmul_tflops(m, n, k, ta, tb, dtype):
    a = torch.randn((k, m) if ta else (m, k), device="cuda", dtype=dtype) * 0.1
    b = torch.randn((n, k) if tb else (k, n), device="cuda", dtype=dtype) * 0.1
    c = torch.empty((m, n), device="cuda", dtype=dtype)
    op_a = a.t() if ta else a
    op_b = b.t() if tb else b
    ms = timed(lambda: torch.matmul(op_a, op_b, out=c))
    return 2 * m * n * k / ms / 1e9


def attention_ms(b, t, h, kvh, d, dtype, backend):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    gen = torch.Generator(device="cuda").manual_seed(0)
    q = torch.randn((b, h, t, d), device="cuda", dtype=dtype, generator=gen, requires_grad=True)
    k = torch.randn((b, kvh, t, d), device="cuda", dtype=dtype, generator=gen, requires_grad=True)
    v = torch.randn((b, kvh, t, d), device="cuda", dtype=dtype, generator=gen, requires_grad=True)
    d_o = torch.randn((b, h, t, d), device="cuda", dtype=dtype, generator=gen)
    which = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION}[backend]
    gqa = {} if kvh == h else {"enable_gqa": True}

    def fwd():
        with sdpa_kernel(which):
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, **gqa)

    def fwd_bwd():
        o = fwd()
        q.grad = k.grad = v.grad = None
        o.backward(d_o)

    return timed(fwd), timed(fwd_bwd)


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    out_dir = args[0] if args else None
    torch.backends.cuda.matmul.allow_tf32 = False
    with open(os.path.join(HERE, "tc-shapes.json")) as f:
        shapes = json.load(f)
    mm = shapes["matmul"][:2] if SMALL else shapes["matmul"]
    rows = []
    for s in mm:
        row = dict(s)
        row["fp16"] = matmul_tflops(s["m"], s["n"], s["k"], s["transA"], s["transB"], torch.float16)
        if s["table"] == "7b":
            row["fp32"] = matmul_tflops(s["m"], s["n"], s["k"], s["transA"], s["transB"], torch.float32)
        rows.append(row)
        print(f"{s['name']:34} fp16 {row['fp16']:7.1f}" + (f"  fp32 {row['fp32']:6.1f}" if "fp32" in row else ""))
    att = []
    for s in shapes["attention"][:1] if SMALL else shapes["attention"]:
        flops = 2 * s["batch"] * s["nHeads"] * s["seqLen"] ** 2 * s["headDim"]  # causal forward
        row = dict(s)
        for dt_name, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
            for backend in ("flash", "cudnn"):
                try:
                    f_ms, fb_ms = attention_ms(
                        s["batch"], s["seqLen"], s["nHeads"], s["nKvHeads"], s["headDim"], dtype, backend
                    )
                    row[f"{backend}_{dt_name}"] = {
                        "fwdMs": f_ms,
                        "fwdBwdMs": fb_ms,
                        "fwdTflops": flops / f_ms / 1e9,
                        "fwdBwdTflops": 3.5 * flops / fb_ms / 1e9,
                    }
                except Exception as e:  # backend missing or refusing these inputs
                    row[f"{backend}_{dt_name}"] = {"error": str(e).splitlines()[0][:200]}
        att.append(row)
        fl = row["flash_bf16"]
        print(f"{s['name']:34} SDPA flash bf16 fwd {fl.get('fwdMs', float('nan')):.3f} ms fwd+bwd {fl.get('fwdBwdMs', float('nan')):.3f} ms")
    result = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "matmul": rows,
        "attention": att,
    }
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "tc_torch.json"), "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
