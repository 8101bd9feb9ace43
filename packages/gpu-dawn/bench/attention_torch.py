"""PyTorch reference for bench/attention.mjs: causal torch.nn.functional.scaled_dot_product_attention
(is_causal=True) forward and forward+backward on CUDA at the same shapes, fp32 (TF32 off) and fp16, timed
with CUDA events. The default row is whatever backend SDPA picks (fp32: memory-efficient attention, since
flash attention has no fp32 kernel); each backend that accepts the inputs is also timed on its own.
Tensors are created in torch's native [B, H, T, D] layout. Writes <outDir>/attention_torch.json (read by
bench/attention.mjs when run afterwards with the same folder) and prints a table.
Usage: python3 bench/attention_torch.py <outDir> [--small]
"""

import json
import os
import sys

import torch
import torch.nn.functional as F

SMALL = "--small" in sys.argv
# Same list as bench/attention.mjs: (name, batch, T, heads, kv heads, head_dim)
CONFIGS = (
    [("tiny-mha", 1, 64, 2, 2, 32), ("tiny-gqa", 1, 48, 4, 2, 16)]
    if SMALL
    else [
        ("llama7b", 1, 2048, 32, 32, 128),
        ("1b-mha", 1, 1024, 32, 32, 64),
        ("1b-gqa8", 1, 1024, 32, 8, 64),
    ]
)
DTYPES = {"f32": torch.float32, "f16": torch.float16}


def backends():
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel

        return {
            "flash": (sdpa_kernel, SDPBackend.FLASH_ATTENTION),
            "efficient": (sdpa_kernel, SDPBackend.EFFICIENT_ATTENTION),
            "cudnn": (sdpa_kernel, SDPBackend.CUDNN_ATTENTION),
            "math": (sdpa_kernel, SDPBackend.MATH),
        }
    except ImportError:  # torch < 2.3
        return {}


def attention(q, k, v, heads, kv_heads):
    if kv_heads == heads:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    try:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    except TypeError:  # torch < 2.5: no enable_gqa, expand the kv heads instead
        rep = heads // kv_heads
        return F.scaled_dot_product_attention(
            q, k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1), is_causal=True
        )


def timed(fn, reps):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    samples = []
    for _ in range(3):
        start.record()
        for _ in range(reps):
            fn()
        end.record()
        torch.cuda.synchronize()
        samples.append(start.elapsed_time(end) / reps)
    return sorted(samples)[1]


def measure(b, t, h, kvh, d, dtype, reps):
    gen = torch.Generator(device="cuda").manual_seed(0)
    q = torch.randn((b, h, t, d), device="cuda", dtype=dtype, generator=gen, requires_grad=True)
    k = torch.randn((b, kvh, t, d), device="cuda", dtype=dtype, generator=gen, requires_grad=True)
    v = torch.randn((b, kvh, t, d), device="cuda", dtype=dtype, generator=gen, requires_grad=True)
    d_o = torch.randn((b, h, t, d), device="cuda", dtype=dtype, generator=gen)

    def forward():
        return attention(q, k, v, h, kvh)

    def forward_backward():
        o = attention(q, k, v, h, kvh)
        q.grad = k.grad = v.grad = None
        o.backward(d_o)

    return timed(forward, reps), timed(forward_backward, reps)


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    out_dir = args[0] if args else None
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    reps = 2 if SMALL else 10
    rows = []
    for name, b, t, h, kvh, d in CONFIGS:
        fwd_flops = 2 * b * h * t * t * d  # causal: half of 4*B*H*T^2*D; backward 2.5x that
        for dt_name, dtype in DTYPES.items():
            fwd_ms, fwd_bwd_ms = measure(b, t, h, kvh, d, dtype, reps)
            per_backend = {}
            for backend, (ctx, which) in backends().items():
                try:
                    with ctx(which):
                        bf, bfb = measure(b, t, h, kvh, d, dtype, reps)
                    per_backend[backend] = {"fwdMs": bf, "fwdBwdMs": bfb}
                except RuntimeError as e:  # backend does not support these inputs
                    per_backend[backend] = {"error": str(e).splitlines()[0][:200]}
            rows.append(
                {
                    "config": name,
                    "batch": b,
                    "seqLen": t,
                    "nHeads": h,
                    "nKvHeads": kvh,
                    "headDim": d,
                    "dtype": dt_name,
                    "fwdMs": fwd_ms,
                    "fwdBwdMs": fwd_bwd_ms,
                    "fwdTflops": fwd_flops / fwd_ms / 1e9,
                    "fwdBwdTflops": 3.5 * fwd_flops / fwd_bwd_ms / 1e9,
                    "backends": per_backend,
                }
            )
    device = torch.cuda.get_device_name()
    result = {"device": device, "torch": torch.__version__, "tf32": False, "reps": reps, "rows": rows}
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "attention_torch.json"), "w") as f:
            json.dump(result, f, indent=2)
    print(f"torch {torch.__version__} on {device}, TF32 off: causal SDPA, ms (default backend; others)")
    print(f"{'config':8} {'dtype':5} {'fwd':>8} {'fwd+bwd':>8} {'TFLOP/s':>8}  per backend fwd+bwd")
    for r in rows:
        others = ", ".join(
            f"{k} {v['fwdBwdMs']:.2f}" for k, v in r["backends"].items() if "fwdBwdMs" in v
        )
        print(
            f"{r['config']:8} {r['dtype']:5} {r['fwdMs']:8.2f} {r['fwdBwdMs']:8.2f} "
            f"{r['fwdBwdTflops']:8.2f}  {others}"
        )


if __name__ == "__main__":
    main()
