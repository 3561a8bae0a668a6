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

status=0
if [ -x "$BIN" ]; then
  # Each correctness check in its own process: a kernel that fails to compile poisons the
  # CubeCL server for everything after it in the same process.
  no_cmma=""
  for check in quantize_activations pack_weights gemv tiled_gemm cmma_gemm grad_input; do
    GPU_CHECK_ONLY=$check timeout 120 "$BIN" 2>> .gpu/gpu_check.stderr | grep -v '"op":"device"' | tee -a "$RESULTS"
    rc=${PIPESTATUS[0]}
    if [ "$rc" -ne 0 ]; then
      echo "{\"op\":\"error\",\"what\":\"check $check exited with $rc\"}" | tee -a "$RESULTS"
      status=1
      [ "$check" = cmma_gemm ] && no_cmma=1
    fi
  done
  if [ -n "$no_cmma" ]; then export GPU_CHECK_NO_CMMA=1; fi
  GPU_CHECK_SKIP_CHECKS=1 timeout 300 "$BIN" 2>> .gpu/gpu_check.stderr | tee -a "$RESULTS"
  rc=${PIPESTATUS[0]}
  if [ "$rc" -ne 0 ]; then
    echo "{\"op\":\"error\",\"what\":\"gpu_check timings exited with $rc\"}" | tee -a "$RESULTS"
    status=1
  fi
  grep -h -A3 "error:" .gpu/gpu_check.stderr | head -40 >&2
else
  echo "{\"op\":\"error\",\"what\":\"$BIN not found or not executable\"}" | tee -a "$RESULTS"
  status=1
fi

if command -v python3 >/dev/null 2>&1 && python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
  timeout 120 python3 scripts/torch_linear_bench.py | tee -a "$RESULTS"
else
  echo '{"op":"error","what":"python3 with CUDA-enabled torch not available"}' | tee -a "$RESULTS"
fi

exit $status
