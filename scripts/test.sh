#!/usr/bin/env bash
# Runs every test of the workspace: x86-64 kernels natively, Wgpu kernels on Mesa lavapipe,
# and the NEON kernels cross-compiled for aarch64 under qemu-user.
# Installs what is missing when run as root (Debian/Ubuntu); otherwise says what to install.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
[ -e /usr/share/vulkan/icd.d/lvp_icd.x86_64.json ] || ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1 || need_pkgs+=(mesa-vulkan-drivers)
command -v qemu-aarch64 >/dev/null || need_pkgs+=(qemu-user)
command -v aarch64-linux-gnu-gcc >/dev/null || need_pkgs+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
# C++20 with AddressSanitizer, for the CPU emulation of the Hopper wgmma kernel.
command -v "${CXX:-c++}" >/dev/null || need_pkgs+=(g++)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing ${need_pkgs[*]}"
    apt-get update -qq || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}"
  else
    echo "missing system packages: ${need_pkgs[*]} (apt-get install -y ${need_pkgs[*]})" >&2
    exit 1
  fi
fi
rustup target list --installed | grep -q aarch64-unknown-linux-gnu || rustup target add aarch64-unknown-linux-gnu

echo "== CPU kernels available here:"
grep -o -w -E 'avx2|avx_vnni|avx512_vnni|avx512bw' /proc/cpuinfo 2>/dev/null | sort -u | tr '\n' ' '; echo

# The wgmma emulation and CUDA syntax tests fail instead of skipping when no C++ compiler runs.
export BITLINEAR_REQUIRE_CXX=1

echo "== workspace tests (x86-64 kernels, NdArray, Wgpu on lavapipe, wgmma kernel emulated)"
cargo test --workspace --release

echo "== the main example on Wgpu (lavapipe): the same model code with only the backend changed, 2 epochs"
cargo run --release -q -p bitlinear-examples --bin digits -- --backend wgpu --epochs 2

echo "== hand-written CUDA kernel tasks, compiled by CubeCL's CUDA compiler on the host (no GPU)"
cargo test --release -p bitlinear-cubecl --features cuda --lib
# The GPU check's binary (carried to the lent GPU machine) must build here.
cargo build --release -p bitlinear-cubecl --features cuda --examples

echo "== the GPU check's timing harness on Wgpu (lavapipe), tiny sizes"
# What a lent GPU's scarce minutes run (copy bandwidth, host costs, read floor, back-to-back and
# synchronized timings) must not first break there: the same binary, each kind of line present.
gpu_check_out=$(GPU_CHECK_WGPU=1 GPU_CHECK_TINY=1 GPU_CHECK_QUICK=1 GPU_CHECK_SKIP_CHECKS=1 \
  target/release/examples/gpu_check 2>/dev/null)
for op in copy host_cost read_floor matmul linear; do
  grep -q "\"op\":\"$op\"" <<<"$gpu_check_out" || { echo "gpu_check printed no $op line" >&2; exit 1; }
done
grep -q '"op":"summary","all_checks_ok":true' <<<"$gpu_check_out" || { echo "gpu_check failed" >&2; exit 1; }
if command -v python3 >/dev/null; then python3 scripts/gpu_summary.py <(echo "$gpu_check_out") >/dev/null; fi

# And the main example with Burn's CUDA backend (`--backend cuda`).
cargo build --release -p bitlinear-examples --features cuda --bin digits

echo "== NEON and NEON-dotprod kernels (aarch64 under qemu-user)"
cargo test --release -p bitlinear-core --target aarch64-unknown-linux-gnu

echo "== all tests passed"
