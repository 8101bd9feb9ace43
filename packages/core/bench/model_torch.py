#!/usr/bin/env python3
"""PyTorch eager reference for the model benchmark: the same LLaMA config built with transformers (random
init, no download), forward + backward (+ AdamW step) in fp32 eager (TF32 off) or bf16, timed on CUDA.

Usage: python3 model_torch.py <outdir> <config.json> <batch> <seq> [--dtype fp32|bf16] [--steps N]
Writes <outdir>/model_torch_<dtype>.json and prints a line per setting.
"""
import json
import os
import sys
import time


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if len(args) < 4:
        sys.exit("usage: model_torch.py <outdir> <config.json> <batch> <seq> [--dtype fp32|bf16] [--steps N]")
    outdir, config_path, batch, seq = args[0], args[1], int(args[2]), int(args[3])
    dtype_name = sys.argv[sys.argv.index("--dtype") + 1] if "--dtype" in sys.argv else "fp32"
    steps = int(sys.argv[sys.argv.index("--steps") + 1]) if "--steps" in sys.argv else 5
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    with open(config_path) as f:
        cfg = json.load(f)
    config = LlamaConfig(**{k: v for k, v in cfg.items() if k not in ("model_type", "architectures")})
    config._attn_implementation = "sdpa"
    dtype = torch.float32 if dtype_name == "fp32" else torch.bfloat16
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to("cuda", dtype=dtype)
    model.gradient_checkpointing_enable()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
    ids = torch.randint(0, config.vocab_size, (batch, seq), device="cuda")
    params = sum(p.numel() for p in model.parameters())
    times = []
    torch.cuda.reset_peak_memory_stats()
    for step in range(steps + 1):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = model(input_ids=ids, labels=ids)
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        if step > 0:
            times.append(time.perf_counter() - t0)
    times.sort()
    med = times[len(times) // 2]
    result = {
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(),
        "dtype": dtype_name,
        "params": params,
        "batch": batch,
        "seq": seq,
        "medianStepMs": med * 1000,
        "tokensPerSecond": batch * seq / med,
        "peakMemoryBytes": torch.cuda.max_memory_allocated(),
    }
    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, f"model_torch_{dtype_name}.json"), "w") as f:
        json.dump(result, f, indent=2)
    print(
        f"torch {dtype_name} eager, {params / 1e9:.2f}B params, {batch} x {seq}: {med * 1000:.0f} ms/step, "
        f"{batch * seq / med:.0f} tok/s, peak {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB"
    )


if __name__ == "__main__":
    main()
