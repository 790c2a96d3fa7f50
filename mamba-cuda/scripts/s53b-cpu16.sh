#!/bin/bash
# Fifty-third session, call 4: the cpu-simd Mamba-1 and SSD backward at the seed shape on the
# device host's cores, gradients by value against into the same vectors (`scratch_bwd`, the
# session's timing example, not kept in the tree: it times `selective_scan_backward` /
# `ssd_backward` REPS times and prints min / median), three rounds alternating.
C=$PWD/.device-carry
nproc
for th in 4 16; do for l in 800 4096; do for r in 1 2 3; do
  echo -n "val  "; OP=scan TH=$th LEN=$l REPS=12 "$C/scratch_bwd"
  echo -n "into "; INTO=1 OP=scan TH=$th LEN=$l REPS=12 "$C/scratch_bwd"
done; done; done
for th in 16; do for l in 800 4096; do for r in 1 2 3; do
  echo -n "val  "; OP=ssd TH=$th LEN=$l REPS=12 "$C/scratch_bwd"
  echo -n "into "; INTO=1 OP=ssd TH=$th LEN=$l REPS=12 "$C/scratch_bwd"
done; done; done
