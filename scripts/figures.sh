#!/usr/bin/env bash
# Regenerates the performance figures (docs/figures/*.svg) from a fresh CPU benchmark run plus
# the CUDA results already in benches/results (those need a GPU machine: scripts/gpu-sweep.sh).
#   bash scripts/figures.sh              # CPU sweep (~25 min on 2 cores), then the figures
#   bash scripts/figures.sh --plot-only  # figures from the JSON already in benches/results
# Run on an otherwise idle machine: the CPU figures are timings.
set -euo pipefail
cd "$(dirname "$0")/.."
RES=benches/results
THREADS=${THREADS:-$(nproc)}
if [ "${1:-}" != "--plot-only" ]; then
  cargo build --release -p bitlinear-benches -p bitlinear-plot
  BENCH=target/release/bitlinear-bench
  MS=1,2,4,8,16,32,64,128,256,512,1024
  {
    $BENCH --threads "$THREADS" --impl membw,int8-peak --m 1 --k 64 --n 64
    for shape in 1024x1024 4096x4096 4096x11008 8192x28672 2560x6912; do
      $BENCH --impl memory --k "${shape%x*}" --n "${shape#*x}"
    done
  } > $RES/cpu-sweep-ceilings.jsonl
  for s in 1024 4096; do
    # Every SIMD kernel the CPU has (the others are skipped with a note on stderr), the f32
    # baselines, and the layer through Burn.
    impls=bitlinear-avx2,bitlinear-avxvnni,bitlinear-neon,bitlinear-neondot,bitlinear-avx512vnni
    $BENCH --threads "$THREADS" --min-time 0.2 --m $MS --k $s --n $s \
      --impl "f32-matmul,$impls,burn-linear-f32,burn-bitlinear-deployed,burn-bitlinear-train-forward" \
      > $RES/cpu-sweep-$s.jsonl
    # The scalar reference kernel at small batches only (it is the test oracle, not a fast path).
    $BENCH --threads "$THREADS" --min-time 0.2 --m 1,2,4,8,16 --k $s --n $s --impl bitlinear-scalar \
      >> $RES/cpu-sweep-$s.jsonl
  done
fi
cargo run --release -q -p bitlinear-plot -- --out docs/figures \
  $RES/cpu-sweep-ceilings.jsonl $RES/cpu-sweep-1024.jsonl $RES/cpu-sweep-4096.jsonl \
  $RES/cpu-gemv-cold.jsonl \
  $RES/h200-gpu-check.jsonl $RES/h200-burn-cuda-sweep.jsonl
