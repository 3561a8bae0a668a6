#!/usr/bin/env bash
# Batch-size sweep through Burn on CUDA, for the performance figures (issue: performance report).
# Run from the repository root on the GPU machine, after building here:
#   cargo build --release -p bitlinear-benches --features cuda
#   mkdir -p .gpu && strip -o .gpu/bitlinear-bench-cuda target/release/bitlinear-bench
# Then: bash scripts/gpu-sweep.sh   (results in .gpu/sweep.jsonl; ~3 minutes on an H200)
#
# Lines: deployed BitLinear, training-mode BitLinear and Burn's f32 Linear (autotune on) for
# M = 1..1024 at 1024->1024 and 4096->4096; train steps (forward + backward) at M = 512 and
# 2048; torch bf16 F.linear for the same forward shapes when python3 has CUDA torch.
set -uo pipefail
BIN=${BIN:-.gpu/bitlinear-bench-cuda}
RESULTS=${RESULTS:-.gpu/sweep.jsonl}
MS=${MS:-1,2,4,8,16,32,64,128,256,512,1024}
mkdir -p "$(dirname "$RESULTS")"
: > "$RESULTS"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -1 |
  sed 's/.*/{"op":"gpu","nvidia_smi":"&"}/' | tee -a "$RESULTS"
for s in 1024 4096; do
  timeout 240 "$BIN" --backend cuda --min-time ${MIN_TIME:-0.1} --m $MS --k $s --n $s \
    --impl burn-linear-f32,burn-bitlinear-deployed,burn-bitlinear-train-forward | tee -a "$RESULTS"
done
timeout 180 "$BIN" --backend cuda --min-time 0.3 --m ${STEP_MS:-512,2048} --k 4096 --n 4096 \
  --impl burn-linear-train-step,burn-bitlinear-train-step | tee -a "$RESULTS"
if python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
  TORCH_BENCH_SHAPES=1024x1024,4096x4096 TORCH_BENCH_MS=$MS GPU_CHECK_QUICK=1 \
    timeout 120 python3 scripts/torch_linear_bench.py | tee -a "$RESULTS"
fi
