#!/bin/bash
# Device call 3: the 16-thread A/B again, 15 rounds (8dabd32 -> ceb2c61, decode n=4096).
set -u
tar -xJf .bundle/ab.tar.xz -C /tmp
cd /tmp
export LD_LIBRARY_PATH=/tmp/b/lib
timeout 280 b/bin/bsbr-bench ab --a b/bin/bsbr-bench-A --b b/bin/bsbr-bench --models Linear DeltaNet GAU SlidingWindow BSBR Standard --seq_lengths 4096 --workloads decode --threads 16 --budget-s 250 --max-rounds 15 --seed 2 --out $OUT/ab16b > $OUT/ab16b.log 2>&1
echo "ab rc $?"
grep -A9 "^| model" $OUT/ab16b/ab_report.md
