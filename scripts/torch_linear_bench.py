#!/usr/bin/env python3
"""torch bf16 F.linear (cuBLAS) baseline for bitlinear's GPU check.

Same shapes and JSON-line format as crates/bitlinear-cubecl/examples/gpu_check.rs. Timing with
CUDA events: warm-up, then batches of iterations between two events, median per-iteration time.
For M=1 the weights rotate over several copies (>= 256 MiB in rotation) so they come from DRAM.
Environment overrides: TORCH_BENCH_SHAPES="1024x1024,4096x4096" (KxN), TORCH_BENCH_MS="1,2,4".
"""
import json
import os

import torch
import torch.nn.functional as F

SHAPES = [(4096, 4096), (4096, 11008), (8192, 28672), (2560, 6912)]
MS = [1, 512, 2048]
if os.environ.get("TORCH_BENCH_SHAPES"):
    SHAPES = [tuple(int(v) for v in s.split("x")) for s in os.environ["TORCH_BENCH_SHAPES"].split(",")]
if os.environ.get("TORCH_BENCH_MS"):
    MS = [int(v) for v in os.environ["TORCH_BENCH_MS"].split(",")]
QUICK = bool(os.environ.get("GPU_CHECK_QUICK"))


def time_us(fn):
    for i in range(3):
        fn(i)
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn(3)
    end.record()
    end.synchronize()
    one = max(start.elapsed_time(end) / 1e3, 1e-6)
    iters = max(1, min(2000, int((0.01 if QUICK else 0.03) / one)))
    batches = 5 if QUICK else 11
    per_iter, counter = [], 4
    for _ in range(batches):
        start.record()
        for _ in range(iters):
            fn(counter)
            counter += 1
        end.record()
        end.synchronize()
        per_iter.append(start.elapsed_time(end) * 1e3 / iters)
    per_iter.sort()
    return per_iter[len(per_iter) // 2]


def main():
    dev = torch.device("cuda")
    print(json.dumps({"op": "device", "backend": "torch", "name": torch.cuda.get_device_name(0),
                      "torch": torch.__version__}), flush=True)
    torch.manual_seed(0)
    for k, n in SHAPES:
        w_bytes = n * k * 2
        copies = max(2, min(64, (256 << 20) // w_bytes))
        weights = [torch.randn(n, k, device=dev, dtype=torch.bfloat16) for _ in range(copies)]
        for m in MS:
            x = torch.randn(m, k, device=dev, dtype=torch.bfloat16)
            with torch.no_grad():
                us = time_us(lambda i: F.linear(x, weights[i % copies]))
            print(json.dumps({
                "op": "linear", "impl": "torch-bf16-linear", "backend": "cuda", "m": m, "k": k, "n": n,
                "median_us": round(us, 2), "gbps": round(w_bytes / us / 1e3, 1),
                "tops": round(2 * m * k * n / us / 1e6, 2), "weight_copies": copies,
            }), flush=True)
        del weights
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
