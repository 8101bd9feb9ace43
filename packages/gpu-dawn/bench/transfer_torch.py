#!/usr/bin/env python3
"""PyTorch reference for bench/transfer.mjs: host <-> device copy bandwidth at 4, 64 and 256 MiB,
pinned (page-locked) and pageable host memory, on the same GPU.

Usage: python3 bench/transfer_torch.py <outDir>
Writes <outDir>/transfer_torch.json (read by bench/transfer.mjs when it runs afterwards: run this
first) and prints a short table last.
"""
import datetime
import json
import os
import statistics
import sys
import time

import torch

MIB = 1 << 20
SIZES = [4 * MIB, 64 * MIB, 256 * MIB]


def reps_for(nbytes: int) -> int:
    return 20 if nbytes <= 4 * MIB else 6 if nbytes <= 64 * MIB else 3


def measure(nbytes: int, copy) -> dict:
    """Median and best GB/s of timed runs after one warm-up; each run ends with a device sync."""
    copy()
    torch.cuda.synchronize()
    gbps = []
    for _ in range(reps_for(nbytes)):
        t0 = time.perf_counter()
        copy()
        torch.cuda.synchronize()
        gbps.append(nbytes / (time.perf_counter() - t0) / 1e9)
    return {"gbps": statistics.median(gbps), "bestGbps": max(gbps)}


def main() -> None:
    out_dir = sys.argv[1] if len(sys.argv) > 1 else None
    if not torch.cuda.is_available():
        sys.exit("transfer_torch.py: CUDA is not available")
    device = torch.device("cuda")
    rows = []
    for nbytes in SIZES:
        dev = torch.empty(nbytes, dtype=torch.uint8, device=device)
        dev.fill_(1)
        for memory in ("pinned", "pageable"):
            host = torch.empty(nbytes, dtype=torch.uint8, pin_memory=(memory == "pinned"))
            host.fill_(2)  # touch every page before timing
            non_blocking = memory == "pinned"
            d2h = measure(nbytes, lambda: host.copy_(dev, non_blocking=non_blocking))
            h2d = measure(nbytes, lambda: dev.copy_(host, non_blocking=non_blocking))
            rows.append({"direction": "d2h", "memory": memory, "bytes": nbytes, **d2h})
            rows.append({"direction": "h2d", "memory": memory, "bytes": nbytes, **h2d})
            del host
        del dev
    result = {
        "date": datetime.date.today().isoformat(),
        "device": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "rows": rows,
    }
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "transfer_torch.json"), "w") as f:
            json.dump(result, f, indent=2)
    print(f"torch copies on {result['device']}, {result['date']} (torch {result['torch']}; GB/s, median)")
    print("dir  size MiB   pinned  pageable")
    for direction in ("d2h", "h2d"):
        for nbytes in SIZES:
            pick = {r["memory"]: r["gbps"] for r in rows if r["direction"] == direction and r["bytes"] == nbytes}
            print(f"{direction}  {nbytes // MIB:8d} {pick['pinned']:8.1f} {pick['pageable']:9.1f}")


if __name__ == "__main__":
    main()
