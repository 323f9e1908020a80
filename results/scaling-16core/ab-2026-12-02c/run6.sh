#!/bin/bash
# Device call 2: interleaved A/B at 2 and 1 threads (decode n=4096), 8dabd32 -> ceb2c61; Standard decode 65,536 at 16 and 2 threads.
set -u
tar -xJf .bundle/ab.tar.xz -C /tmp
cd /tmp
export LD_LIBRARY_PATH=/tmp/b/lib
timeout 200 b/bin/bsbr-bench ab --a b/bin/bsbr-bench-A --b b/bin/bsbr-bench --models Linear DeltaNet GAU SlidingWindow BSBR Standard --seq_lengths 4096 --workloads decode --threads 2 --budget-s 170 --max-rounds 10 --out $OUT/ab2 > $OUT/ab2.log 2>&1
echo "ab2 rc $?"
tail -12 $OUT/ab2.log | head -10
s=$(date +%s)
timeout 330 b/bin/bsbr-bench compare --models Standard --seq_lengths 65536 --workloads decode --threads 16 2 --repeats 3 --warmup 1 --no-analysis --out $OUT/d2 > $OUT/d2.log 2>&1
echo "d2 rc $? $(( $(date +%s) - s )) s"
grep -E "decode" $OUT/d2.log | tail -10
