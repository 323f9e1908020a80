#!/bin/bash
# Device call 1: interleaved A/B at 16 threads (decode n=4096), 8dabd32 -> ceb2c61, then a decode sweep with ceb2c61.
set -u
tar -xJf .bundle/ab.tar.xz -C /tmp
cd /tmp
export LD_LIBRARY_PATH=/tmp/b/lib
lscpu > $OUT/machine.txt
nproc >> $OUT/machine.txt
timeout 250 b/bin/bsbr-bench ab --a b/bin/bsbr-bench-A --b b/bin/bsbr-bench --models Linear DeltaNet GAU SlidingWindow BSBR Standard --seq_lengths 4096 --workloads decode --threads 16 --budget-s 200 --max-rounds 10 --out $OUT/ab16 > $OUT/ab16.log 2>&1
echo "ab rc $?"
tail -12 $OUT/ab16.log | head -10
s=$(date +%s)
timeout 320 b/bin/bsbr-bench compare --models Linear DeltaNet SlidingWindow BSBR GAU --seq_lengths 4096 16384 65536 --workloads decode --threads 1 2 16 --repeats 3 --warmup 1 --no-analysis --out $OUT/d1 > $OUT/d1.log 2>&1
echo "d1 rc $? $(( $(date +%s) - s )) s"
grep -E "decode" $OUT/d1.log | tail -50
