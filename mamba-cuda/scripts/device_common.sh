# Sourced by the per-session device scripts (mamba-cuda/scripts/s34*.sh), which run on the
# GPU machine from the repository root with the carry in .device-carry/ (carry.sh copies
# this file there): C (the carry), OUT (logs), the plugin, el (seconds since the start), NCU.
set -u
C=$PWD/.device-carry
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export MAMBA_CUDA_PLUGIN=$C/libmamba_cuda.so
S0=$(date +%s)
el() { echo "[$(( $(date +%s) - S0 )) s]"; }
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
