#!/bin/bash
# Sixty-third session: the staged conv kernels on by default (from 1 M elements); every GPU test
# binary's tests on the final plugin, and the goldens (the repository's copy plus the two large
# cases carried beside it).
. .device-carry/device_common.sh
cd "$C"
T=$OUT/time.txt
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$T"
rm -rf "$C/gall" && mkdir -p "$C/gall" && ln -s "$OLDPWD"/tests/golden/*.safetensors "$C"/golden/*.safetensors "$C/gall/" 2>/dev/null
echo "golden files: $(ls "$C/gall" | wc -l)" | tee -a "$T"
for dt in f32 bf16 f16; do timeout 60 ./xtask golden --backend cuda --dir "$C/gall" --dtype $dt 2>&1 | grep -iE "passed" | tail -1 | sed "s/^/golden $dt /" | tee -a "$T"; done
t() { local name=$1; shift; env "$@" > /tmp/t.log 2>&1; local rc=$?; echo "$(el) $name rc=$rc" | tee -a "$T"; grep -E "test result|FAIL|panicked|failed" /tmp/t.log | cut -c1-300 | tail -5 | tee -a "$T"; }
t "gpu (all)" timeout 200 ./gpu --test-threads=2
t "gpu_backward conv" timeout 100 ./gpu_backward causal_conv1d --test-threads=1
t "gpu_block_train (all)" timeout 240 ./gpu_block_train --test-threads=1 --skip bench --skip decode_profile
t "linkage" timeout 30 ./linkage
echo "$(el) done" | tee -a "$T"
