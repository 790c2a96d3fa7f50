#!/bin/bash
# Builds (here, where Rust is) what device_run.sh runs on the GPU machine, and copies it
# into .device-carry/ (git-ignored), to be passed to the device tool's `carry`.
set -eu
cd "$(dirname "$0")/../.."
T=${CARGO_TARGET_DIR:-$PWD/target}
export CARGO_TARGET_DIR=$T
# The toolchain and the libcuda stub come from `cargo xtask cuda build` (run it once);
# MAMBA_NVCC / CUDA_LIBRARY_PATH, when set, name them directly.
if [ -z "${MAMBA_NVCC:-}" ] || [ -z "${CUDA_LIBRARY_PATH:-}" ]; then
  [ -f "$T/cuda-stub/lib64/libcuda.so" ] || cargo run --quiet --release -p xtask -- cuda build
  export MAMBA_NVCC=${MAMBA_NVCC:-$(cargo run --quiet --release -p xtask -- cuda nvcc)}
  export CUDA_LIBRARY_PATH=${CUDA_LIBRARY_PATH:-$T/cuda-stub}
fi
cargo build --release -p mamba-cuda --features cuda --lib --tests --examples
mkdir -p .device-carry
cp "$T/release/libmamba_cuda.so" .device-carry/
newest() { ls -t $T/release/deps/$1-* | grep -v '\.d$' | head -1; }
cp "$(newest gpu)" .device-carry/gpu
cp "$(newest gpu_backward)" .device-carry/gpu_backward
cp "$(newest linkage)" .device-carry/linkage
cp "$(newest gpu_block_train)" .device-carry/gpu_block_train
cp "$T/release/examples/mamba-cuda-bench" .device-carry/
cp mamba-cuda/scripts/device_run.sh mamba-cuda/scripts/sweep_defaults.sh mamba-cuda/scripts/device_common.sh .device-carry/
# The golden runner (the lead's `cargo xtask golden`), when it builds.
if cargo build --release -p xtask 2>/dev/null; then cp "$T/release/xtask" .device-carry/; fi
# Debug info stays here; the carry limit is 64 MiB.
strip --strip-debug .device-carry/libmamba_cuda.so .device-carry/gpu .device-carry/gpu_backward .device-carry/linkage .device-carry/gpu_block_train .device-carry/mamba-cuda-bench
[ -f .device-carry/xtask ] && strip --strip-debug .device-carry/xtask
# Golden cases travel in two parts (the whole set is over the limit with the rest).
rm -rf .device-carry/golden && mkdir -p .device-carry/golden
G=${GOLDEN:-../shared/golden}
case "${GOLDEN_PART:-small}" in
  small) for f in "$G"/*.safetensors; do case "$(basename "$f")" in causal_conv1d_04*) ;; *) cp "$f" .device-carry/golden/ ;; esac; done ;;
  large) cp "$G"/causal_conv1d_04*.safetensors .device-carry/golden/ ;;
  all) cp "$G"/*.safetensors .device-carry/golden/ ;;
esac
ls -la .device-carry
