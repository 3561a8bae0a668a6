#!/usr/bin/env bash
# One lent-GPU session's measurements in one call (BENCHMARKS.md, "Next GPU session: the plan"):
# run on the GPU machine from the repository root with the binaries built here and carried
# gzipped in .gpu/carry (git-ignored):
#   cargo build --release -p bitlinear-cubecl --features cuda --example gpu_check
#   cargo build --release -p bitlinear-benches --features cuda
#   mkdir -p .gpu/carry && strip -o .gpu/gpu_check target/release/examples/gpu_check \
#     && gzip -c .gpu/gpu_check > .gpu/carry/gpu_check.gz \
#     && strip -o .gpu/bitlinear-bench-cuda target/release/bitlinear-bench \
#     && gzip -c .gpu/bitlinear-bench-cuda > .gpu/carry/bench.gz
# and for `burn`, the main example on CUDA (optional, 12 MB gzipped):
#   cargo build --release -p bitlinear-examples --features cuda --bin digits \
#     && strip -o .gpu/digits-cuda target/release/digits && gzip -c .gpu/digits-cuda > .gpu/carry/digits.gz
# then (device tool, carry [".gpu/carry"], timeout_s 600): bash scripts/gpu-session.sh $OUT STEP
#
# Everything is written straight to the output folder (a machine that stops answering returns
# nothing, and files left elsewhere never come back); each step is bounded, and the last lines
# printed are a short table of the results (scripts/gpu_summary.py).
# Steps, one per call (each ends within 9.5 minutes; a machine stays warm only 30 s, so start
# the next at once): `diagnose` (≤ 9.5 min: what bounds the large-M GEMM, see below), `kernels` (~7-9 min: ptxas's registers and spills per configuration,
# checks of the wgmma configurations, wall timings at M = 512 and 2048 with torch, the default
# kernel's stall reasons), `gemv` (~4 min: the dp4a
# GEMV's block shapes and the fused layer at M = 1 with device times and registers, and back to
# back (b2b: calls queued behind a spin kernel, as a model's consecutive layers run) against
# torch measured the same way, then the f16/bf16 outputs of every path; M64=1 adds session 8's
# M = 64 timings), `gemm` (~4 min: the GEMM bar's eight points timed back to back as well,
# ours and torch's), `sweep` (~4 min: session 13's K sweep under Nsight Compute), `burn` (~8
# min: Burn's f32 and bf16 Linear against deployed and training BitLinear, then the digits
# example; Burn's f32 baseline autotunes for minutes on a fresh machine: 360 s covered M = 1 and
# half of M = 2048 in session 16).
set -uo pipefail
O=${1:?output folder}
STEP=${2:?step: diagnose, kernels, gemv, gemm, sweep or burn}
mkdir -p .gpu
[ -f .gpu/carry/gpu_check.gz ] && gunzip -c .gpu/carry/gpu_check.gz > .gpu/gpu_check && chmod +x .gpu/gpu_check
[ -f .gpu/carry/bench.gz ] && gunzip -c .gpu/carry/bench.gz > .gpu/bitlinear-bench-cuda && chmod +x .gpu/bitlinear-bench-cuda
[ -f .gpu/carry/digits.gz ] && gunzip -c .gpu/carry/digits.gz > .gpu/digits-cuda && chmod +x .gpu/digits-cuda
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu --format=csv > "$O/smi.txt" 2>&1

if [ "$STEP" = diagnose ]; then
  # What bounds the 256-row warp-specialized kernel (32, `Auto` from M = 1024 since session 9)?
  # Session 8's times (BENCHMARKS.md, session 9): the same time per stage with half the SMs
  # idle (so something inside each SM), and ~13 µs per tile besides ~0.76 µs per stage.
  # Checked first, then timed at M = 512 and 2048: 39, 40, 41 (32, 10 and 11 as persistent
  # grids: one tile's epilogue under the next one's loads), 38 (32 multicast in 2-block clusters: half the
  # activation reads); WGMMA_CONFIGS=39,40,41,38,22,21,23 adds 22, 21, 23 (20 multicast; 256
  # weight x 128 activation rows, and that multicast; not timed since session 6, when their
  # wgmma were serialized), left out by default since session 12 to make room for the
  # autotuning check (~10 compiles). Timed without a
  # second check (exact on an H100 in session 8): 32, 20, 10, 11, 35, 36; and 32 and 11 with parts of their work left out (GPU_CHECK_ABLATE: no copies, no wgmma, no decode, the
  # wgmma alone, the copies alone; wrong outputs, timed only). Those `Auto` picks or may pick
  # (32, 33, 11, 35, 36, 39-41) are timed with bf16 outputs too, as torch writes: the
  # like-for-like figures (session 6: 2-8% faster than f32). Also `Auto`: autotuned (session 12:
  # the `wgmma` lines; `"op":"autotune"` lines give each shape's choice and its candidates'
  # times; the check `wgmma_gemm_autotuned` runs tuned launches exact first) and its static
  # choice (`wgmma-static`, whose check `wgmma_gemm` covers the choices: M = 2100 takes 32,
  # M = 600 at N = 11008 takes 20, M = 48 at K = N = 4100 takes 33), torch bf16 and cuBLAS int8. (The epilogue, shared by every
  # configuration, changed in session 9: exact in the CPU emulation for all of them, and here
  # through the checks of the default path and of the new configurations.)
  # The SM clock and power every 200 ms: does the int8 load throttle the clock (the peak's
  # 1979 TOPS assume 1.83 GHz)?
  nvidia-smi --query-gpu=timestamp,clocks.sm,power.draw,temperature.gpu,clocks_throttle_reasons.active \
    --format=csv -lms 200 > "$O/clocks.csv" 2>&1 &
  sampler=$!
  # torch bf16 and cuBLAS int8 first, into their own file (gpu-check.sh starts results.jsonl
  # afresh): a step cut short by its time limit still has the baseline.
  TORCH_BENCH_MS=512,2048 GPU_CHECK_QUICK=1 timeout 80 python3 scripts/torch_linear_bench.py \
    > "$O/torch.jsonl" 2> "$O/torch.stderr"
  RESULTS=$O/results.jsonl GPU_CHECK_LIST="wgmma_gemm wgmma_gemm_autotuned wgmma_gemm_configs" GPU_CHECK_NO_TORCH=1 \
    GPU_CHECK_MS=512,2048 GPU_CHECK_NO_MMA=1 GPU_CHECK_NO_CMMA_TILED=1 GPU_CHECK_NO_LOGS=1 \
    GPU_CHECK_QUICK=1 GPU_CHECK_WGMMA_CONFIGS=${WGMMA_CONFIGS:-39,40,41,38} \
    GPU_CHECK_WGMMA_CHECKED=${WGMMA_CHECKED:-32,20,10,11,35,36} GPU_CHECK_ABLATE=1 \
    GPU_CHECK_TIMINGS_TIMEOUT=200 GPU_CHECK_NO_NCU=1 GPU_CHECK_CHECK_TIMEOUT=60 \
    timeout -k 5 380 bash scripts/gpu-check.sh > "$O/gpu-check.out" 2>&1
  echo "{\"op\":\"note\",\"what\":\"gpu-check exited with $?\"}" >> "$O/results.jsonl"
  # Time per tile against its k-steps at one N and M (session 8's shapes suggest ~13 µs fixed
  # per 256-row tile plus ~0.77 µs per 128-deep stage; a fixed share that large would point at
  # the prologue and epilogue), for 32, 11, 39, 40 and the ablations: K = 1024 ... 16384, N = 4096.
  # 39 and 40 only if they passed their checks above.
  sweep=32,11
  for c in 39 40; do
    grep -q "\"name\":\"wgmma_gemm_configs $c\",\"ok\":true" "$O/results.jsonl" && sweep=$sweep,$c
  done
  GPU_CHECK_SKIP_CHECKS=1 GPU_CHECK_SHAPES=1024x4096,2048x4096,4096x4096,8192x4096,16384x4096 \
    GPU_CHECK_MS=2048 GPU_CHECK_QUICK=1 GPU_CHECK_NO_MMA=1 GPU_CHECK_NO_CMMA_TILED=1 \
    GPU_CHECK_WGMMA_CONFIGS=$sweep GPU_CHECK_ABLATE=1 GPU_CHECK_NO_BF16=1 \
    timeout -k 5 ${SWEEP_TIMEOUT:-90} .gpu/gpu_check 2>> "$O/sweep.stderr" | grep -v '"op":"device"' >> "$O/results.jsonl"
  echo "{\"op\":\"note\",\"what\":\"K sweep exited with ${PIPESTATUS[0]}\"}" >> "$O/results.jsonl"
  kill "$sampler" 2>/dev/null
  # The clock range while the timings ran (lines with a numeric clock).
  awk -F', ' '$2 ~ /^[0-9]+ MHz$/ {c = $2 + 0; if (!n || c < lo) lo = c; if (c > hi) hi = c; n++}
    END {if (n) printf "{\"op\":\"note\",\"what\":\"SM clock %d-%d MHz over %d samples\"}\n", lo, hi, n}' \
    "$O/clocks.csv" >> "$O/results.jsonl"
  tail -c 6000 .gpu/gpu_check.stderr > "$O/stderr_tail.txt" 2>/dev/null
fi

if [ "$STEP" = kernels ]; then
  # Registers, spills and wgmma serialization of every configuration, by this machine's NVRTC
  # and ptxas (CUDA 13.0, as the driver's own JIT; session 8 read them with 13.5's, no GPU).
  GPU_CHECK_ONLY=dump_sources GPU_CHECK_DUMP_DIR=.gpu/sources .gpu/gpu_check > /dev/null 2>&1 &&
    timeout 90 python3 scripts/ptxas_report.py .gpu/sources > "$O/ptxas.jsonl" 2>&1
  tail -1 "$O/ptxas.jsonl"
  # Each configuration is checked (exact i32) before it is timed. The warp-specialized TMA
  # kernels first (20, 32, 34, and 35-37: the same in stream-K over all tiles): their consumers
  # now get 232 registers (setmaxnreg); in session 6 ptxas serialized 20's wgmma.
  RESULTS=$O/results.jsonl GPU_CHECK_LIST="wgmma_gemm_configs" \
    GPU_CHECK_MS=512,2048 GPU_CHECK_NO_MMA=1 GPU_CHECK_NO_CMMA_TILED=1 GPU_CHECK_NO_LOGS=1 \
    GPU_CHECK_QUICK=1 GPU_CHECK_WGMMA_CONFIGS=${WGMMA_CONFIGS:-10,11,20,35,32,36,34,37,28,29,26} \
    GPU_CHECK_TIMINGS_TIMEOUT=240 GPU_CHECK_NO_NCU=1 GPU_CHECK_CHECK_TIMEOUT=60 \
    GPU_CHECK_NCU_DETAIL=${NCU_DETAIL:-gemm_wgmma.*bm256} GPU_CHECK_NCU_DETAIL_MS=2048 \
    TORCH_BENCH_MS=512,2048 \
    timeout -k 5 540 bash scripts/gpu-check.sh > "$O/gpu-check.out" 2>&1
  echo "{\"op\":\"note\",\"what\":\"gpu-check exited with $?\"}" >> "$O/results.jsonl"
  cp .gpu/ncu_detail.txt .gpu/ncu_stalls.txt .gpu/ncu.csv "$O/" 2>/dev/null
  # If time is left: the same stall reasons for the warp-specialized kernel with TMA (20,
  # M = 2048; its consumers with 232 registers now), registers per thread included
  # (LaunchStats): is the tensor pipe busier without copies and block barriers on its warps?
  left=$((560 - SECONDS))
  if [ "$left" -gt 60 ] && command -v ncu >/dev/null 2>&1; then
    GPU_CHECK_MS=2048 GPU_CHECK_PROFILE=1 GPU_CHECK_SKIP_CHECKS=1 GPU_CHECK_WGMMA_CONFIGS=20 \
      timeout -k 5 $((left - 10)) ncu --clock-control none --kernel-name 'regex:gemm_wgmma_ws' \
      --launch-count 1 --section SpeedOfLight --section LaunchStats --section WarpStateStats \
      --metrics 'regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio' \
      .gpu/gpu_check > "$O/ncu_ws_tma.txt" 2>&1
    echo "{\"op\":\"note\",\"what\":\"ncu on the ws TMA kernel exited with $? ($O/ncu_ws_tma.txt)\"}" >> "$O/results.jsonl"
  fi
  tail -c 6000 .gpu/gpu_check.stderr > "$O/stderr_tail.txt" 2>/dev/null
fi

if [ "$STEP" = gemv ]; then
  # The dp4a GEMV on codes copies each round's codes into shared memory since session 11 (the
  # SASS had four L2 round trips in a row per round after the weights arrived): its `dp4a`
  # ncu rows against session 8's 8.2 us at 4096->11008 (read floor 6.7; the 5x-torch bar needs
  # <= 7.2).
  # GPU_CHECK_READ_SWEEP: read floors with 1-16 loads per thread besides the usual 4: does any
  # read of 11.3 MB (4096->11008) reach the bar's 80% of the copy bandwidth (5.3 us)? The
  # usual one took 6.7 us (63%).
  # fused_linear: the fused layer (quantize + GEMV in one launch) with its session-10 prologue
  # (the input by cp.async, one memory round trip: session 8's took 14.5 us of device time at
  # 4096->11008 against 8.2 for the GEMV alone) and with 2 and 4 tiles per block (8, 9), whose
  # GEMV-only forms `dp4a_gemv_configs` checks, and 1 and 9 with the fused bounds on M and K
  # lifted (`fused_linear_configs`: 8, 9 and the widened ones; its failure keeps only them out of
  # the timings); the ncu rows `fused-linear*` time them (`-wide`: 8192->28672 at M = 1, fused).
  # `dp4a-bf16` (session 16): the GEMV with bf16 outputs and the layer with bf16 inputs (two
  # launches: quantize, GEMV). Through Burn the bf16 layer took 112.5 µs at M = 1, 4096² against
  # 47.3 in f32 (session 16, H100): these rows say whether the kernels or the Burn side cost it.
  RESULTS=$O/results.jsonl GPU_CHECK_LIST="dp4a_gemv dp4a_gemv_configs fused_linear fused_linear_configs" \
    GPU_CHECK_MS=1 GPU_CHECK_READ_SWEEP=1 \
    GPU_CHECK_NO_LOGS=1 GPU_CHECK_QUICK=1 GPU_CHECK_TIMINGS_TIMEOUT=120 GPU_CHECK_NCU_TIMEOUT=120 \
    TORCH_BENCH_MS=1 timeout -k 5 360 bash scripts/gpu-check.sh > "$O/gpu-check.out" 2>&1
  echo "{\"op\":\"note\",\"what\":\"gpu-check exited with $?\"}" >> "$O/results.jsonl"
  # M = 64 (batched decoding; measured in session 8, `Auto` set from it in session 9): only with
  # M64=1. 128-row tiles leave most SMs idle at 4096 outputs (32 blocks on 132 SMs); stream-K
  # over all tiles spreads the k-steps.
  if [ -n "${M64:-}" ]; then
    GPU_CHECK_SKIP_CHECKS=1 GPU_CHECK_MS=64 GPU_CHECK_QUICK=1 GPU_CHECK_NO_MMA=1 \
      GPU_CHECK_NO_CMMA_TILED=1 GPU_CHECK_WGMMA_CONFIGS=${M64_CONFIGS:-11,27,29,31,33,37} \
      timeout -k 5 100 .gpu/gpu_check 2>> "$O/m64.stderr" | grep -v '"op":"device"' >> "$O/results.jsonl"
    echo "{\"op\":\"note\",\"what\":\"M = 64 timings exited with ${PIPESTATUS[0]}\"}" >> "$O/results.jsonl"
  fi
  # f16/bf16 outputs of every path, bit for bit against the f32 output rounded (all passed on
  # an H100 in session 8; the epilogue and the GEMV changed since): last, so the timings come
  # first. One progress line per path, dtype and configuration, the hand-written CUDA paths
  # first.
  GPU_CHECK_ONLY=half_outputs timeout -k 5 ${HALF_TIMEOUT:-170} .gpu/gpu_check 2>> "$O/half_outputs.stderr" \
    | grep -v '"op":"device"' >> "$O/results.jsonl"
  echo "{\"op\":\"note\",\"what\":\"half_outputs exited with ${PIPESTATUS[0]}\"}" >> "$O/results.jsonl"
  cp .gpu/ncu.csv .gpu/profile_launches.jsonl "$O/" 2>/dev/null
  tail -c 6000 .gpu/gpu_check.stderr > "$O/stderr_tail.txt" 2>/dev/null
fi

if [ "$STEP" = gemm ]; then
  # The GEMM bar (1.3x torch bf16 at M = 512 and 2048) read in throughput as well as in wall
  # time: every timing line carries `b2b_us` (session 14), calls queued behind a spin kernel so
  # that CubeCL's host launch path (12-28 µs per call on the H200) is off the critical path,
  # against torch bf16 measured the same way (`torch.cuda._sleep`). Where `b2b_us` falls well
  # below `median_us`, the wall time was partly the host's; where they agree, the kernel. Auto
  # (autotuned), its static choice (20 at M = 512 for the three large shapes since session 16),
  # bf16 outputs (and Auto's bf16 layer, bf16 in and out, as torch's), and the configurations
  # Auto chooses from (11, 20, 32, 33, 35: timed without a check, all passed on an H200 in
  # session 13). Checked first, then timed if exact, for the
  # point still missed at 4096², M = 512, where 256-row blocks leave half the SMs idle: the
  # 128-row warp-specialized kernels 34 (TMA, three fragment sets), 17 (cp.async producer) and
  # 37 (34 in stream-K over all tiles), and 44 (256 weight × 64 activation rows: 11's tile
  # count, a fifth less fill per MAC, twice the decode). Session 14's producer change (one
  # source pointer, no spills) made 20 and 32 14-21% faster (session 16); 34 took 30.7 µs there
  # in session 8, before it, against 25.7 for 11 (24.9 in session 16). Session 16 ran 42, 21
  # and 43 here (all slower). ~4-5 min.
  TORCH_BENCH_MS=512,2048 GPU_CHECK_QUICK=1 timeout 100 python3 scripts/torch_linear_bench.py \
    > "$O/torch.jsonl" 2> "$O/torch.stderr"
  RESULTS=$O/results.jsonl GPU_CHECK_LIST="quantize_activations wgmma_gemm_configs" \
    GPU_CHECK_NO_TORCH=1 GPU_CHECK_MS=512,2048 GPU_CHECK_NO_MMA=1 GPU_CHECK_NO_CMMA_TILED=1 \
    GPU_CHECK_NO_LOGS=1 GPU_CHECK_QUICK=1 GPU_CHECK_NO_NCU=1 GPU_CHECK_CHECK_TIMEOUT=60 \
    GPU_CHECK_WGMMA_CONFIGS=${WGMMA_CONFIGS:-34,44,17,37} \
    GPU_CHECK_WGMMA_CHECKED=${WGMMA_CHECKED:-11,20,32,33,35} \
    GPU_CHECK_TIMINGS_TIMEOUT=${TIMINGS_TIMEOUT:-300} timeout -k 5 360 bash scripts/gpu-check.sh \
    > "$O/gpu-check.out" 2>&1
  echo "{\"op\":\"note\",\"what\":\"gpu-check exited with $?\"}" >> "$O/results.jsonl"
  tail -c 6000 .gpu/gpu_check.stderr > "$O/stderr_tail.txt" 2>/dev/null
fi

if [ "$STEP" = sweep ]; then
  # Session 13's K sweep (diagnose) found a fixed ~9-15 µs per launch in wall time, the same for
  # 1.9 and 3.9 waves of tiles and with the host's enqueue at 12-18 µs per call: is it on the
  # device (prologue, drain) or the host's launch path? The same sweep under Nsight Compute
  # (device time per launch, `"op":"device_time"` lines), with the new activation quantization
  # at M = 2048 (`quantize` rows) against its floor. No checks (the configurations passed on an
  # H200 in session 13), no torch. ~4 min.
  RESULTS=$O/results.jsonl GPU_CHECK_LIST=" " GPU_CHECK_SKIP_BENCH=1 GPU_CHECK_NO_TORCH=1 \
    GPU_CHECK_NO_LOGS=1 GPU_CHECK_QUICK=1 GPU_CHECK_MS=2048 GPU_CHECK_NO_MMA=1 \
    GPU_CHECK_NO_CMMA_TILED=1 GPU_CHECK_NO_CMMA=1 GPU_CHECK_NO_AUTOTUNE=1 GPU_CHECK_NO_BF16=1 \
    GPU_CHECK_SHAPES=${SWEEP_SHAPES:-1024x4096,2048x4096,4096x4096,8192x4096,16384x4096} \
    GPU_CHECK_WGMMA_CONFIGS=${WGMMA_CONFIGS:-32,11,20} GPU_CHECK_ABLATE=1 \
    GPU_CHECK_NCU_TIMEOUT=${NCU_TIMEOUT:-200} timeout -k 5 300 bash scripts/gpu-check.sh \
    > "$O/gpu-check.out" 2>&1
  echo "{\"op\":\"note\",\"what\":\"gpu-check exited with $?\"}" >> "$O/results.jsonl"
  cp .gpu/ncu.csv .gpu/profile_launches.jsonl "$O/" 2>/dev/null
  tail -c 6000 .gpu/gpu_check.stderr > "$O/stderr_tail.txt" 2>/dev/null
fi

if [ "$STEP" = burn ]; then
  # Burn's f32 baseline autotunes for minutes on a fresh machine (session 16: 360 s were not
  # enough for both M).
  timeout -k 5 ${BURN_TIMEOUT:-470} .gpu/bitlinear-bench-cuda --backend cuda --m 1,2048 --k 4096 --n 4096 \
    --min-time 0.2 --impl burn-linear-f32,burn-bitlinear-deployed,burn-linear-bf16,burn-bitlinear-deployed-bf16,burn-linear-train-step,burn-bitlinear-train-step \
    > "$O/burn.jsonl" 2> "$O/burn.stderr"
  echo "burn bench exited with $?"
  # The main example end to end on CUDA (never run there): training with autodiff, from_linear,
  # deploy, the deployed predictions equal to the eval ones (asserted), a safetensors round
  # trip, and inference times. Carried only if built (see the header).
  if [ -x .gpu/digits-cuda ]; then
    timeout -k 5 ${DIGITS_TIMEOUT:-100} .gpu/digits-cuda --backend cuda 2>&1 | tr '\r' '\n' \
      > "$O/digits-cuda.txt"
    echo "digits on CUDA exited with ${PIPESTATUS[0]}"
    tail -12 "$O/digits-cuda.txt"
  fi
fi

python3 scripts/gpu_summary.py "$O/results.jsonl" "$O/torch.jsonl" "$O/burn.jsonl" 2>/dev/null
