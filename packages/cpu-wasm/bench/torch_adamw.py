#!/usr/bin/env python3
"""PyTorch's CPU AdamW at the sizes and thread counts of bench/run.mjs, for a side-by-side table.

Measures torch.optim.AdamW(fused=True) on fp32 CPU tensors (one tensor of n elements) and a tensor copy
(dst.copy_(src), the memory-bandwidth roofline) at 1, 2, 4, ... N threads (torch.set_num_threads).
Prints a short table last and writes <outDir>/torch-adamw-bench.json.

Usage: python3 packages/cpu-wasm/bench/torch_adamw.py <outDir> [--sizes 1M,16M,64M] [--threads 1,2,4,8,16]
                                                     [--min-ms 400]
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import time

import torch

BYTES_PER_ELEMENT = 28  # AdamW reads p, g, m, v and writes p, m, v (fp32)


def parse_count(s):
    s = s.strip()
    mult = 2 ** 20 if s[-1] in "mM" else 2 ** 10 if s[-1] in "kK" else 1
    return int(float(s.rstrip("mMkK")) * mult)


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def median_time(fn, min_reps=3, min_s=0.4):
    fn()
    times = []
    start = time.perf_counter()
    while len(times) < min_reps or (time.perf_counter() - start < min_s and len(times) < 50):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    cores = os.cpu_count() or 1
    ap = argparse.ArgumentParser()
    ap.add_argument("out_dir")
    ap.add_argument("--sizes", default="1M,16M,64M")
    ap.add_argument("--threads", default=None)
    ap.add_argument("--min-ms", type=float, default=400)
    a = ap.parse_args()
    min_s = a.min_ms / 1000
    sizes = [parse_count(s) for s in a.sizes.split(",")]
    if a.threads:
        threads = [int(t) for t in a.threads.split(",")]
    else:
        threads = sorted({t for t in [1, 2, 4, 8, 16, 32, 64, 128, cores] if t <= cores})
    rows = []
    for n in sizes:
        gen = torch.Generator().manual_seed(0)
        p = torch.nn.Parameter(torch.rand(n, generator=gen) * 2 - 1)
        p.grad = torch.rand(n, generator=gen) * 2 - 1
        opt = torch.optim.AdamW([p], lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01, fused=True)
        src = torch.rand(n, generator=gen)
        dst = torch.empty_like(src)
        for t in threads:
            torch.set_num_threads(t)
            adamw_s = median_time(opt.step, min_s=min_s)
            copy_s = median_time(lambda: dst.copy_(src), min_s=min_s)
            rows.append({
                "elements": n,
                "threads": t,
                "fusedMs": adamw_s * 1e3,
                "copyMs": copy_s * 1e3,
                "fusedGelemPerS": n / adamw_s / 1e9,
                "fusedGBps": BYTES_PER_ELEMENT * n / adamw_s / 1e9,
                "copyGBps": 8 * n / copy_s / 1e9,
            })
            print("size %d, %d thread(s) done" % (n, t), flush=True)
        del opt, p, src, dst
    result = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "machine": {"cpu": cpu_model(), "cores": cores,
                    "torch": torch.__version__, "python": platform.python_version()},
        "bytesPerElement": BYTES_PER_ELEMENT,
        "rows": rows,
    }
    os.makedirs(a.out_dir, exist_ok=True)
    path = os.path.join(a.out_dir, "torch-adamw-bench.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
    print("wrote %s" % path)
    print("torch %s fused CPU AdamW, %s, %s, %d cores" % (torch.__version__, result["date"][:10], cpu_model(), cores))
    print("elements  threads  fused Gel/s  fused GB/s  copy GB/s  % of copy")
    for r in rows:
        print("%8d %8d %11.3f %11.1f %10.1f %10.0f" % (
            r["elements"], r["threads"], r["fusedGelemPerS"], r["fusedGBps"], r["copyGBps"],
            100 * r["fusedGBps"] / r["copyGBps"]))


if __name__ == "__main__":
    main()
