#!/usr/bin/env python3
"""Short table of a GPU run's JSON lines (scripts/gpu-check.sh, bitlinear-bench): what the
device tool's reply shows. Usage: python3 scripts/gpu_summary.py results.jsonl [more.jsonl]

Prints failed checks and errors, the progress of long checks (half_outputs), the copy
bandwidth, then one line per (K, N, M) with every timed implementation: m: product only,
l: whole layer, ncu: device time (Nsight Compute); where torch was timed for the shape, the
fastest bitlinear product (wall; device time for M <= 16) and its speed-up over torch bf16 (the
GEMM bar asks for 1.3x; `Auto` may pick another configuration). Also b2b: the per-call time of
calls run back to back (queued behind a spin kernel, weights rotating through DRAM), ours
against torch's measured the same way; for M <= 16 as a fraction of the copy bandwidth, above
as TOPS.
Lines of ablated launches (`"ablation"`: parts of a kernel's work left out, wrong outputs) show
as `ablated:` and never count as the fastest."""
import json
import sys

rows = []
for path in sys.argv[1:]:
    try:
        for line in open(path):
            try:
                rows.append(json.loads(line))
            except ValueError:
                pass
    except OSError as e:
        print(f"! {path}: {e}")
table = {}
copy_gbps = None


def add_b2b(r, name):
    if "b2b_us" in r:
        flag = "(host-bound)" if r.get("b2b_host_bound") else ""
        table.setdefault((r.get("k"), r.get("n"), r.get("m")), []).append(
            ("b2b:" + name + flag, r["b2b_us"]))


for r in rows:
    op = r.get("op")
    if op in ("check", "error", "note") and not r.get("ok", False):
        print("!", json.dumps(r)[:300])
    elif op == "progress":
        print("ok", r.get("check"), r.get("path"), r.get("dtype"), "config", r.get("wgmma_config", 0))
    elif op == "autotune":
        # The tuned `Auto`'s choice per shape (m rounded up to a power of two) and the
        # candidates' times per launch, as measured by the tuning itself.
        times = " ".join(f"{c}={t}" for c, t in r.get("timings_us", {}).items())
        print(f"autotune {r.get('family')} m<={r.get('m_bucket')} {r.get('k')}x{r.get('n')}:",
              f"config {r.get('config')} ({times})")
    elif op == "host_cost":
        # CubeCL's host (device-thread) time per task: what a call's enqueue_us is made of.
        print(f"host {r.get('task')}: {r.get('us_per_task')} us per task")
    elif op == "copy":
        print("copy GB/s", r.get("gbps"))
        copy_gbps = r.get("gbps")
    elif op == "read_floor":
        add_b2b(r, r.get("impl", "read-floor"))
    elif op in ("matmul", "linear") and "k" in r:
        # Ablated launches (wrong outputs, diagnosis only) never count as the fastest.
        prefix = "ablated:" if r.get("ablation") else r["op"][0] + ":"
        name = prefix + r["impl"].replace("bitlinear-cuda-", "")
        table.setdefault((r["k"], r["n"], r["m"]), []).append((name, r["median_us"]))
        add_b2b(r, name)
    elif op == "device_time":
        name = "ncu:" + r["impl"].replace("bitlinear-cuda-", "")
        table.setdefault((r["k"], r["n"], r["m"]), []).append((name, r["kernel_us"]))
    elif "median_us" in r and "impl" in r:
        key = (r.get("k"), r.get("n"), r.get("m"))
        table.setdefault(key, []).append((r["impl"], r["median_us"]))
        add_b2b(r, r["impl"])
for key in sorted(table, key=str):
    print(key, " ".join(f"{a}={b}" for a, b in table[key]))
    torch = [b for a, b in table[key] if "torch" in a and not a.startswith("b2b:")]
    # GEMV wall times are host-bound (CubeCL's launch cost): compare device times there.
    prefix = "ncu:" if key[2] is not None and key[2] <= 16 else "m:"
    ours = [(b, a) for a, b in table[key]
            if a.startswith(prefix) and "read-floor" not in a and "quantize" not in a
            and "cublas" not in a]
    int8 = [b for a, b in table[key] if "cublas-int8" in a]
    if torch and ours:
        best_us, best = min(ours)
        vs_int8 = f", {min(int8) / best_us:.2f}x cuBLAS int8" if int8 else ""
        print(f"  best {best} {best_us} us: {min(torch) / best_us:.2f}x torch{vs_int8}")
    # Back to back: ours (not host-bound, not the read floor) against torch measured the same way.
    torch_b2b = [b for a, b in table[key] if a.startswith("b2b:") and "torch" in a and "host" not in a]
    for kind in ("m", "l"):
        ours_b2b = [(b, a) for a, b in table[key]
                    if a.startswith(f"b2b:{kind}:") and "host" not in a and "torch" not in a]
        if torch_b2b and ours_b2b and key[0] and key[1]:
            best_us, best = min(ours_b2b)
            packed_mb = key[0] * key[1] / 4 / 1e6
            if key[2] is not None and key[2] > 16:
                # Products: the int8 rate (TOPS), not the weights' share of the bandwidth.
                frac = f", {2 * key[0] * key[1] * key[2] / best_us / 1e6:.0f} TOPS"
            elif copy_gbps:
                frac = f", {packed_mb / best_us * 1e3 / copy_gbps:.0%} of copy BW"
            else:
                frac = ""
            print(f"  best b2b {best} {best_us} us: {min(torch_b2b) / best_us:.2f}x torch b2b{frac}")
