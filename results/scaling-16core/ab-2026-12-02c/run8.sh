#!/bin/bash
# Device call 4: the decode sweep of d1 with main's build (8dabd32, bsbr-bench-A in the bundle).
set -u
tar -xJf .bundle/ab.tar.xz -C /tmp
cd /tmp
export LD_LIBRARY_PATH=/tmp/b/lib
s=$(date +%s)
timeout 320 b/bin/bsbr-bench-A compare --models Linear DeltaNet SlidingWindow BSBR GAU --seq_lengths 4096 16384 65536 --workloads decode --threads 1 2 16 --repeats 3 --warmup 1 --no-analysis --out $OUT/d1-main > $OUT/d1-main.log 2>&1
echo "d1-main rc $? $(( $(date +%s) - s )) s"
grep -E "decode " $OUT/d1-main.log | tail -45
