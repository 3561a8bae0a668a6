#!/usr/bin/env bash
# GPU check for bitlinear-cubecl on a CUDA machine (H100/H200). Run from the repository root.
#
# Build on any machine (no CUDA toolkit needed; CUDA is loaded at run time):
#   cargo build --release -p bitlinear-cubecl --features cuda --example gpu_check
#   mkdir -p .gpu && cp target/release/examples/gpu_check .gpu/gpu_check
# Then on the GPU machine:
#   bash scripts/gpu-check.sh            # results also saved to .gpu/results.jsonl
#
# Prints JSON lines: device info, correctness checks of every kernel ("op":"check"; the tensor-core
# path is forced), copy bandwidth, then bitlinear GEMV/GEMM timings and torch bf16 F.linear
# timings for the same shapes. Total runtime is kept to a few minutes; GPU_CHECK_QUICK=1 shortens it.
# Other knobs (all optional): GPU_CHECK_LIST="dp4a_gemv mma_gemm ..." runs only those checks;
# GPU_CHECK_MS=1,2048 times only those batch sizes; GPU_CHECK_NO_NCU=1, GPU_CHECK_NO_TORCH=1 and
# GPU_CHECK_NO_LOGS=1 skip the Nsight Compute device times, the torch baseline and the dumps of
# generated kernel sources. The session-3 runs that fill BENCHMARKS.md's H100 section used these.
# GPU_CHECK_NCU_DETAIL=<kernel-name regex> adds Nsight Compute's detailed sections (stall reasons
# included) for one launch of that kernel (at the batch sizes GPU_CHECK_NCU_DETAIL_MS, default
# GPU_CHECK_MS: the first matching launch is profiled). GPU_CHECK_WGMMA_CONFIGS=15,19 checks and times only
# those wgmma configurations besides the default (wgmma_gemm_config_override numbers); each is
# checked in its own process, and one that fails is left out of the timings;
# GPU_CHECK_WGMMA_CHECKED=32,20 adds configurations to the timings without checking them again
# (checked exact on this kind of GPU before, with the same source).
# GPU_CHECK_TIMINGS_TIMEOUT and GPU_CHECK_NCU_TIMEOUT (seconds, default 300 and 150) bound the
# timing and Nsight Compute passes (each configuration is compiled once by NVRTC first);
# GPU_CHECK_CHECK_TIMEOUT (default 120) bounds each correctness process (a kernel that hangs).
set -uo pipefail

BIN=${BIN:-.gpu/gpu_check}
RESULTS=${RESULTS:-.gpu/results.jsonl}
mkdir -p "$(dirname "$RESULTS")"
: > "$RESULTS"
: > .gpu/gpu_check.stderr

if command -v nvidia-smi >/dev/null 2>&1; then
  name=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -1)
  echo "{\"op\":\"gpu\",\"nvidia_smi\":\"${name}\"}" | tee -a "$RESULTS"
fi

# torch bf16 F.linear on the same shapes, right after bitlinear's timings (before the Nsight
# Compute passes, so a step cut short by its time limit still has both sides of the comparison).
# GPU_CHECK_NO_TORCH=1 skips it (e.g. when it was just measured on this kind).
run_torch() {
  if [ -n "${GPU_CHECK_NO_TORCH:-}" ]; then
    :
  elif command -v python3 >/dev/null 2>&1 && python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
    timeout 120 python3 scripts/torch_linear_bench.py | tee -a "$RESULTS"
  else
    echo '{"op":"error","what":"python3 with CUDA-enabled torch not available"}' | tee -a "$RESULTS"
  fi
}

status=0
if [ -x "$BIN" ]; then
  # Each correctness check in its own process: a kernel that fails to compile poisons the
  # CubeCL server for everything after it in the same process.
  no_cmma=""
  # GPU_CHECK_LIST overrides the list (e.g. only the kernels changed since the last run).
  checks=${GPU_CHECK_LIST:-wgmma_probe wgmma_gemm wgmma_gemm_autotuned wgmma_gemm_configs half_outputs dp4a_gemv dp4a_gemv_configs fused_linear fused_linear_configs mma_gemm mma_gemm_256 quantize_activations pack_weights gemv gemv_plane gemv_stream tiled_gemm cmma_gemm cmma_gemm_k4 cmma_tiled_gemm grad_input}
  for check in $checks; do
    if [ "$check" = wgmma_gemm_configs ]; then
      # One process per configuration (one that fails to compile would poison the others);
      # only those that pass are timed.
      count=$(GPU_CHECK_ONLY=wgmma_config_count "$BIN" 2>/dev/null || echo 0)
      configs=${GPU_CHECK_WGMMA_CONFIGS:-$(seq -s, 1 "$count")}
      passed=""
      hung=" "  # kernel files with a configuration that ran into the timeout (a deadlock)
      for config in ${configs//,/ }; do
        file=$(GPU_CHECK_ONLY=wgmma_config_file GPU_CHECK_WGMMA_CONFIGS=$config "$BIN" 2>/dev/null)
        if [ -n "$file" ] && [[ "$hung" == *" $file "* ]]; then
          echo "{\"op\":\"error\",\"what\":\"wgmma config $config skipped: another configuration of $file hung\"}" | tee -a "$RESULTS"
          status=1
          continue
        fi
        GPU_CHECK_ONLY=$check GPU_CHECK_WGMMA_CONFIGS=$config timeout -k 5 "${GPU_CHECK_CHECK_TIMEOUT:-120}" "$BIN" 2>> .gpu/gpu_check.stderr | grep -v '"op":"device"' | sed "s/\"name\":\"$check\"/\"name\":\"$check $config\"/" | tee -a "$RESULTS"
        rc=${PIPESTATUS[0]}
        if [ "$rc" -eq 0 ]; then
          passed="$passed${passed:+,}$config"
        else
          echo "{\"op\":\"error\",\"what\":\"wgmma config $config failed (exit $rc): left out of the timings\"}" | tee -a "$RESULTS"
          status=1
          # 124/137: the timeout. The same file's other configurations would likely hang too.
          { [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; } && hung="$hung$file "
        fi
      done
      # GPU_CHECK_WGMMA_CHECKED: configurations checked exact on this kind of GPU before, with
      # the same source, timed without a second check.
      passed="$passed${passed:+${GPU_CHECK_WGMMA_CHECKED:+,}}${GPU_CHECK_WGMMA_CHECKED:-}"
      export GPU_CHECK_WGMMA_CONFIGS=${passed:-0}
      continue
    fi
    GPU_CHECK_ONLY=$check timeout -k 5 "${GPU_CHECK_CHECK_TIMEOUT:-120}" "$BIN" 2>> .gpu/gpu_check.stderr | grep -v '"op":"device"' | tee -a "$RESULTS"
    rc=${PIPESTATUS[0]}
    if [ "$rc" -ne 0 ]; then
      echo "{\"op\":\"error\",\"what\":\"check $check exited with $rc\"}" | tee -a "$RESULTS"
      status=1
      [ "$check" = cmma_gemm ] && no_cmma=1
      # A streaming GEMV that fails would poison the timing process: time the plane GEMV only.
      { [ "$check" = gemv ] || [ "$check" = gemv_stream ]; } && export GPU_CHECK_NO_STREAM=1
      # The large-tile tensor-core kernel (MatmulPath::CmmaTiledGemm) stays out of the timings.
      [ "$check" = cmma_tiled_gemm ] && export GPU_CHECK_NO_CMMA_TILED=1
      # A hand-written kernel that fails stays out of the timings.
      [ "$check" = dp4a_gemv ] && export GPU_CHECK_NO_DP4A=1
      [ "$check" = mma_gemm ] && export GPU_CHECK_NO_MMA=1
      [ "$check" = dp4a_gemv_configs ] && export GPU_CHECK_NO_DP4A_CONFIGS=1
      [ "$check" = fused_linear ] && export GPU_CHECK_NO_FUSED=1
      [ "$check" = fused_linear_configs ] && export GPU_CHECK_NO_FUSED_CONFIGS=1
      [ "$check" = mma_gemm_256 ] && export GPU_CHECK_NO_MMA_256=1
      [ "$check" = wgmma_gemm ] && export GPU_CHECK_NO_WGMMA=1
      # Autotuning that fails (a wrong output, an error, a hang) stays off in the timings.
      [ "$check" = wgmma_gemm_autotuned ] && export GPU_CHECK_NO_AUTOTUNE=1
      [ "$check" = cmma_gemm_k4 ] && echo '{"op":"note","what":"cmma-k4 failed: ignore its timings"}' | tee -a "$RESULTS"
    fi
  done
  if [ -n "$no_cmma" ]; then export GPU_CHECK_NO_CMMA=1; fi
  GPU_CHECK_SKIP_CHECKS=1 timeout "${GPU_CHECK_TIMINGS_TIMEOUT:-300}" "$BIN" 2>> .gpu/gpu_check.stderr | tee -a "$RESULTS"
  rc=${PIPESTATUS[0]}
  if [ "$rc" -ne 0 ]; then
    echo "{\"op\":\"error\",\"what\":\"gpu_check timings exited with $rc\"}" | tee -a "$RESULTS"
    status=1
  fi
  grep -h -A3 "error:" .gpu/gpu_check.stderr | head -40 >&2
  run_torch

  # Generated CUDA source of the GEMV and tensor-core kernels (look for local arrays / spills).
  # GPU_CHECK_NO_LOGS=1 skips this.
  [ -z "${GPU_CHECK_NO_LOGS:-}" ] && CUBECL_DEBUG_LOG=.gpu/cubecl_kernels.log GPU_CHECK_ONLY=gemv_stream timeout 120 "$BIN" > /dev/null 2>&1
  [ -z "${GPU_CHECK_NO_LOGS:-}" ] && [ -z "$no_cmma" ] && CUBECL_DEBUG_LOG=.gpu/cubecl_kernels.log GPU_CHECK_ONLY=cmma_gemm timeout 120 "$BIN" > /dev/null 2>&1
  # The large-tile tensor-core kernel on its own (look for local arrays and its shared memory).
  [ -z "${GPU_CHECK_NO_LOGS:-}" ] && [ -z "$no_cmma" ] && CUBECL_DEBUG_LOG=.gpu/cubecl_kernels_cmma_tiled.log GPU_CHECK_ONLY=cmma_tiled_gemm timeout 120 "$BIN" > /dev/null 2>&1

  # Device-side kernel durations through Nsight Compute (cold caches: ncu flushes them before
  # each kernel), free of CubeCL's host launch cost. Optional: skipped where ncu is missing or
  # cannot read the GPU (seen failing under gVisor).
  if command -v ncu >/dev/null 2>&1 && [ -z "${GPU_CHECK_NO_NCU:-}" ]; then
    GPU_CHECK_PROFILE=1 GPU_CHECK_SKIP_CHECKS=1 timeout "${GPU_CHECK_NCU_TIMEOUT:-150}" ncu --clock-control none \
      --metrics gpu__time_duration.sum,launch__registers_per_thread,dram__throughput.avg.pct_of_peak_sustained_elapsed --csv --log-file .gpu/ncu.csv "$BIN" \
      > .gpu/profile_launches.jsonl 2>> .gpu/gpu_check.stderr
    echo "{\"op\":\"note\",\"what\":\"ncu exited with $?\"}" | tee -a "$RESULTS"
    python3 - <<'PY' | tee -a "$RESULTS"
import csv, json, statistics
launches = []
for line in open(".gpu/profile_launches.jsonl"):
    try:
        o = json.loads(line)
    except ValueError:
        continue
    if o.get("op") == "launch":
        launches.append(o)
rows = {}
regs = {}
try:
    lines = [l for l in open(".gpu/ncu.csv") if l.startswith('"')]
    for r in csv.DictReader(lines):
        if r.get("Metric Name") == "launch__registers_per_thread":
            regs[int(r["ID"])] = r["Metric Value"]
        if r.get("Metric Name") != "gpu__time_duration.sum":
            continue
        v = float(r["Metric Value"].replace(",", ""))
        unit = r.get("Metric Unit", "")
        scale = {"ns": 1e-3, "nsecond": 1e-3, "us": 1.0, "usecond": 1.0, "ms": 1e3, "msecond": 1e3, "s": 1e6, "second": 1e6}.get(unit, 1.0)
        rows[int(r["ID"])] = (v * scale, r.get("Kernel Name", "")[:40], r.get("Grid Size", ""), r.get("Block Size", ""))
except Exception as e:
    print(json.dumps({"op": "error", "what": f"ncu parse: {e}"}))
ids = sorted(rows)
if len(ids) != len(launches):
    print(json.dumps({"op": "note", "what": f"ncu rows {len(ids)} vs launches {len(launches)}: join by order may be off"}))
groups = {}
for i, l in zip(ids, launches):
    key = (l["what"], l["m"], l["k"], l["n"])
    groups.setdefault(key, []).append(rows[i] + (regs.get(i, ""),))
for (what, m, k, n), rs in groups.items():
    us = statistics.median(r[0] for r in rs)
    packed = -(-n // 16) * -(-k // 16) * 64
    print(json.dumps({"op": "device_time", "impl": what, "m": m, "k": k, "n": n,
                      "kernel_us": round(us, 2), "packed_gbps": round(packed / us / 1e3, 1),
                      "tops": round(2 * m * k * n / us / 1e6, 2), "kernel": rs[0][1],
                      "grid": rs[0][2], "block": rs[0][3], "regs": rs[0][4]}))
PY
  fi

  # GPU_CHECK_NCU_DETAIL=<regex>: Nsight Compute's throughput, scheduler, stall and source
  # sections for the first launch whose kernel name matches (e.g. gemm_wgmma.*bm256, or
  # gemv_dp4a), in .gpu/ncu_detail.txt: where a kernel's time goes, one launch, ~20 s.
  if command -v ncu >/dev/null 2>&1 && [ -n "${GPU_CHECK_NCU_DETAIL:-}" ]; then
    # GPU_CHECK_NCU_DETAIL_MS: the batch sizes of this pass (the first matching launch wins).
    GPU_CHECK_MS=${GPU_CHECK_NCU_DETAIL_MS:-${GPU_CHECK_MS:-}} GPU_CHECK_PROFILE=1 GPU_CHECK_SKIP_CHECKS=1 timeout 120 ncu --clock-control none \
      --kernel-name "regex:${GPU_CHECK_NCU_DETAIL}" --launch-count 1 \
      --section SpeedOfLight --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis \
      --section SchedulerStats --section WarpStateStats --section LaunchStats --section Occupancy \
      --section SourceCounters "$BIN" > .gpu/ncu_detail.txt 2>> .gpu/gpu_check.stderr
    echo "{\"op\":\"note\",\"what\":\"ncu detail for ${GPU_CHECK_NCU_DETAIL} exited with $? (.gpu/ncu_detail.txt)\"}" | tee -a "$RESULTS"
    # The stall reasons as numbers (the WarpStateStats section prints only its header on the
    # command line: session 4's detail had none): warps stalled per issued instruction, by
    # reason. A pass of its own, so a metric name this ncu lacks cannot cost the sections above.
    GPU_CHECK_MS=${GPU_CHECK_NCU_DETAIL_MS:-${GPU_CHECK_MS:-}} GPU_CHECK_PROFILE=1 GPU_CHECK_SKIP_CHECKS=1 timeout 90 ncu --clock-control none \
      --kernel-name "regex:${GPU_CHECK_NCU_DETAIL}" --launch-count 1 \
      --metrics 'regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio,smsp__issue_active.avg.per_cycle_active,sm__cycles_active.avg' \
      "$BIN" > .gpu/ncu_stalls.txt 2>> .gpu/gpu_check.stderr
    echo "{\"op\":\"note\",\"what\":\"ncu stall reasons for ${GPU_CHECK_NCU_DETAIL} exited with $? (.gpu/ncu_stalls.txt)\"}" | tee -a "$RESULTS"
  fi
else
  echo "{\"op\":\"error\",\"what\":\"$BIN not found or not executable\"}" | tee -a "$RESULTS"
  status=1
  run_torch
fi

exit $status
