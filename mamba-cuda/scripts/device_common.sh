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
# The per-call medians of a timing file of bench lines prefixed "rRound key=value": one line
# per (type, shape, key=value) with the rounds' medians in order.
medians() { awk '{k=$4" "$5" "$6" "$7" "$9; v[k" "$2]=v[k" "$2]" "$10} END {for (x in v) print x ":" v[x]}' "$1" | sort; }
