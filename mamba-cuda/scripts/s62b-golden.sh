#!/bin/bash
# Sixty-second session: the goldens and the block forward test on the session's plugin.
. .device-carry/device_common.sh
cd "$C"
rm -rf "$C/golden" && ln -s "$OLDPWD/tests/golden" "$C/golden"
nvidia-smi --query-gpu=name --format=csv,noheader
timeout 60 ./gpu mamba2_block --test-threads=1 2>&1 | grep -E "test result|FAIL|panicked|^test " | tail -6
for dt in f32 bf16 f16; do timeout 40 ./xtask golden --backend cuda --dir "$C/golden" --dtype $dt 2>&1 | grep -i "passed\|fail" | tail -2 | sed "s/^/$dt /"; done
echo "$(el) done"
