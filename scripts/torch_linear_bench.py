#!/usr/bin/env python3
"""torch bf16 F.linear (cuBLAS) baseline for bitlinear's GPU check.

Same shapes and JSON-line format as crates/bitlinear-cubecl/examples/gpu_check.rs. Timing with
CUDA events: warm-up, then batches of iterations between two events, median per-iteration time.
For M=1 the weights rotate over several copies (>= 256 MiB in rotation) so they come from DRAM.
Every line also carries `b2b_us`: the per-call time of calls run back to back, queued while
`torch.cuda._sleep` holds the stream (as gpu_check.rs's back-to-back timing does with its spin
kernel), timed by events after the sleep; `b2b_host_bound` if the host had not queued every call
by the end of the sleep. For M > 16, as gpu_check.rs: ~8 ms of calls per batch (16 to 400
calls), 5 batches, and `b2b_tops`.
For M > 16 it also times cuBLAS's int8 GEMM (`torch._int_mm`, int8 x int8 -> int32, the weight
[N, K] row-major as bitlinear's): the int8 tensor-core rate a dense int8 layer reaches on this
device, next to which bitlinear's ternary GEMM shows what its decode and pipeline cost. Its
lines' impl is `cublas-int8-int-mm` (no "torch" in it: the summary's torch ratios stay bf16).
Environment overrides: TORCH_BENCH_SHAPES="1024x1024,4096x4096" (KxN), TORCH_BENCH_MS="1,2,4",
TORCH_BENCH_NO_INT8=1 (no int8 lines).
"""
import json
import os
import time

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


def time_b2b_us(fn, calls=400, batches=9):
    """Per-call time of `calls` calls run back to back behind a sleep kernel; median of batches."""
    if QUICK:
        calls, batches = min(calls, 200), 5
    fn(0)
    torch.cuda.synchronize()
    t = time.perf_counter()
    for i in range(20):
        fn(i)
    host_s = (time.perf_counter() - t) / 20
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    # The sleep's length on this device, for the host-bound test.
    cycles = 1 << 20
    start.record()
    torch.cuda._sleep(cycles)
    end.record()
    end.synchronize()
    sec_per_cycle = start.elapsed_time(end) / 1e3 / cycles
    sleep_s = max(2e-3, 2 * calls * host_s)
    cycles = int(sleep_s / sec_per_cycle)
    per_call, host_bound, counter = [], False, 1
    for _ in range(batches):
        torch.cuda._sleep(cycles)
        start.record()
        t = time.perf_counter()
        for _ in range(calls):
            fn(counter)
            counter += 1
        host_bound |= time.perf_counter() - t > 0.8 * sleep_s
        end.record()
        end.synchronize()
        per_call.append(start.elapsed_time(end) * 1e3 / calls)
    per_call.sort()
    return per_call[len(per_call) // 2], host_bound


def time_int8(dev, m, k, n):
    """cuBLAS int8 GEMM on [M, K] x [N, K]^T (int32 out): the weight as a transposed view of its
    [N, K] rows, or, where this torch's `_int_mm` refuses that layout, as [K, N] rows (copied
    once, outside the timing). One error line if neither runs."""
    copies = max(2, min(64, (256 << 20) // (n * k)))
    x = torch.randint(-127, 128, (m, k), device=dev, dtype=torch.int8)
    weights = [torch.randint(-1, 2, (n, k), device=dev, dtype=torch.int8) for _ in range(copies)]
    errors = []
    for layout in ("nk", "kn"):
        try:
            if layout == "kn":
                weights = [w.t().contiguous() for w in weights]
                call = lambda i: torch._int_mm(x, weights[i % copies])
            else:
                call = lambda i: torch._int_mm(x, weights[i % copies].t())
            us = time_us(call)
        except (RuntimeError, AttributeError) as e:
            errors.append(f"{layout}: {str(e)[:150]}")
            continue
        print(json.dumps({
            "op": "matmul", "impl": "cublas-int8-int-mm", "backend": "cuda", "m": m, "k": k,
            "n": n, "median_us": round(us, 2), "tops": round(2 * m * k * n / us / 1e6, 2),
            "weight_layout": layout, "weight_copies": copies,
        }), flush=True)
        return
    print(json.dumps({"op": "error", "what": f"torch._int_mm at {m}x{k}x{n}: {'; '.join(errors)}"}),
          flush=True)


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
                call = lambda i: F.linear(x, weights[i % copies])
                us = time_us(call)
                if m <= 16:
                    b2b = time_b2b_us(call)
                else:
                    b2b = time_b2b_us(call, calls=min(400, max(16, int(8000 / us))), batches=5)
            line = {
                "op": "linear", "impl": "torch-bf16-linear", "backend": "cuda", "m": m, "k": k, "n": n,
                "median_us": round(us, 2), "gbps": round(w_bytes / us / 1e3, 1),
                "tops": round(2 * m * k * n / us / 1e6, 2), "weight_copies": copies,
            }
            line.update({"b2b_us": round(b2b[0], 2), "b2b_host_bound": b2b[1]})
            if m <= 16:
                line["b2b_gbps"] = round(w_bytes / b2b[0] / 1e3, 1)
            else:
                line["b2b_tops"] = round(2 * m * k * n / b2b[0] / 1e6, 2)
            print(json.dumps(line), flush=True)
            if m > 16 and not os.environ.get("TORCH_BENCH_NO_INT8"):
                time_int8(dev, m, k, n)
        del weights
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
