"""PyTorch counterpart of bench/row-kernels.mjs: the same shapes and kernels in fp32 on CUDA (eager, as
Hugging Face's LLaMA / GPT-2 modules compute them), timed with CUDA events. Backward rows time only the
backward (autograd.grad over a retained graph). Usage: python bench/row-kernels_torch.py <outDir> [--small]
"""
import datetime
import json
import os
import sys

import torch
import torch.nn.functional as F

out_dir = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("--") else None
small = "--small" in sys.argv
S = (
    dict(tokens=64, hidden=96, heads=4, kvHeads=2, headDim=16, vocab=1000, reps=3)
    if small
    else dict(tokens=4096, hidden=4096, heads=32, kvHeads=8, headDim=128, vocab=32256, reps=20)
)
dev = "cuda"
torch.backends.cuda.matmul.allow_tf32 = False
T, C, V = S["tokens"], S["hidden"], S["vocab"]
rows = []


def time_ms(fn):
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(S["reps"]):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / S["reps"]


def bench(name, nbytes, fn):
    ms = time_ms(fn)
    rows.append(dict(kernel=name, ms=ms, gbps=nbytes / ms / 1e6))


def rms_norm(x, w, eps):  # LlamaRMSNorm
    var = x.pow(2).mean(-1, keepdim=True)
    return w * (x * torch.rsqrt(var + eps))


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


act = T * C * 4
x = torch.sin(torch.arange(T * C, device=dev, dtype=torch.float32) * 0.37).view(T, C)
dy = torch.cos(torch.arange(T * C, device=dev, dtype=torch.float32) * 0.11).view(T, C)
for wdt in (torch.float32, torch.float16):
    tag = "f32" if wdt == torch.float32 else "f16"
    w = (1 + 0.001 * torch.arange(C, device=dev, dtype=torch.float32)).to(wdt)
    b = torch.full((C,), 0.1, device=dev, dtype=wdt)
    with torch.no_grad():
        bench(f"rmsnorm fwd (w {tag})", 2 * act, lambda: rms_norm(x, w, 1e-6))
        # F.layer_norm needs one dtype: upcast the f16 weight as our kernel does.
        bench(f"layernorm fwd (w {tag})", 2 * act, lambda: F.layer_norm(x, (C,), w.float(), b.float(), 1e-5))
    xg = x.clone().requires_grad_(True)
    wg = w.float().clone().requires_grad_(True)
    bg = b.float().clone().requires_grad_(True)
    y = rms_norm(xg, wg, 1e-6)
    bench(f"rmsnorm bwd (w {tag})", 3 * act, lambda: torch.autograd.grad(y, (xg, wg), dy, retain_graph=True))
    y = F.layer_norm(xg, (C,), wg, bg, 1e-5)
    bench(f"layernorm bwd (w {tag})", 3 * act, lambda: torch.autograd.grad(y, (xg, wg, bg), dy, retain_graph=True))

H, KV, D = S["heads"], S["kvHeads"], S["headDim"]
inv_freq = 1.0 / (100000.0 ** (torch.arange(0, D, 2, dtype=torch.int64, device=dev).float() / D)) / 4.0
pos = (torch.arange(T, device=dev) % min(T, 1024)).float()
emb = torch.cat([pos[:, None] * inv_freq[None, :]] * 2, dim=-1)
cos, sin = emb.cos()[:, None, :], emb.sin()[:, None, :]
q = torch.randn(T, H, D, device=dev)
k = torch.randn(T, KV, D, device=dev)
qk_bytes = 2 * 4 * T * (H + KV) * D
with torch.no_grad():
    bench("rope fwd q+k", qk_bytes, lambda: (q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin))
qg, kg = q.clone().requires_grad_(True), k.clone().requires_grad_(True)
qo, ko = qg * cos + rotate_half(qg) * sin, kg * cos + rotate_half(kg) * sin
dq, dk = torch.randn_like(q), torch.randn_like(k)
bench("rope bwd dq+dk", qk_bytes, lambda: torch.autograd.grad((qo, ko), (qg, kg), (dq, dk), retain_graph=True))

ids = (torch.arange(T, device=dev) * 7919) % V
for tdt in (torch.float32, torch.float16):
    tag = "f32" if tdt == torch.float32 else "f16"
    wte = torch.zeros(V, C, device=dev, dtype=tdt)
    with torch.no_grad():
        # Our gather returns f32 rows from an f16 table: include the upcast.
        bench(f"embedding fwd ({tag} table)", act + act * (1 if tag == "f32" else 0.5), lambda: F.embedding(ids, wte).float())
    del wte
wte = torch.zeros(V, C, device=dev, requires_grad=True)
out = F.embedding(ids, wte)
bench("embedding bwd (+ clear)", 2 * act + V * C * 4, lambda: torch.autograd.grad(out, wte, dy, retain_graph=True))
del out, wte

logits = (torch.sin(torch.arange(T * V, device=dev, dtype=torch.float32) * 0.013) * 4).view(T, V)
i = torch.arange(T, device=dev)
targets = torch.where(i % 10 == 0, torch.full_like(i, -100), (i * 31) % V)
logit_bytes = T * V * 4
with torch.no_grad():
    bench("cross-entropy fwd", logit_bytes, lambda: F.cross_entropy(logits, targets, ignore_index=-100))
lg = logits.clone().requires_grad_(True)
loss = F.cross_entropy(lg, targets, ignore_index=-100)
bench("cross-entropy bwd", 2 * logit_bytes, lambda: torch.autograd.grad(loss, lg, retain_graph=True))

device_name = torch.cuda.get_device_name()
date = datetime.date.today().isoformat()
if out_dir:
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "row-kernels_torch.json"), "w") as f:
        json.dump(dict(adapter=device_name, torch=torch.__version__, date=date, shapes=S, rows=rows), f, indent=2)
print(f"row kernels with torch {torch.__version__} on {device_name} ({date}), tokens {T}, hidden {C}, vocab {V}")
print("kernel                          ms       GB/s")
for r in rows:
    print(f"{r['kernel']:<28} {r['ms']:9.3f} {r['gbps']:9.1f}")
