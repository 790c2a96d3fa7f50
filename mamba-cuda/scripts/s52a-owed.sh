#!/bin/bash
# Fifty-second session, call 1: the two owed checks in one call. The goldens are the
# repository's tests/golden (the carry holds none: the carry limit), linked where s50g looks.
ln -sfn "$PWD/tests/golden" "$PWD/.device-carry/golden"
timeout 330 bash mamba-cuda/scripts/s50g-review.sh > /dev/null 2>&1
echo "s50g rc=$?" >> "${OUT:-/tmp/out}/s50g.txt"
timeout 240 bash mamba-cuda/scripts/s51a-cpu16.sh > /dev/null 2>&1
echo "s51a rc=$?" >> "${OUT:-/tmp/out}/s51a.txt"
cat "${OUT:-/tmp/out}/s50g.txt" "${OUT:-/tmp/out}/s51a.txt"
