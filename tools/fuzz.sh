#!/usr/bin/env bash
# Fuzzes the parsers that read outside input (tests/fuzz/): config (YAML/JSON), results file,
# safetensors, GPT-2 config.json, tokenizer files. Builds the libFuzzer targets with clang (ASan +
# UBSan) into build-fuzz/, replays every input in tests/fuzz/regressions/<target>/ (inputs that once
# crashed), then runs each target for SECONDS (default 60) from its seed corpus
# tests/fuzz/corpus/<target>/. Prints the executions per target. Exits non-zero on any crash,
# sanitizer report, uncaught exception, leak or hang (-timeout, 10 s per input); the input that
# caused it is kept as build-fuzz/findings/<target>/crash-* (or timeout-*, leak-*): add it to
# tests/fuzz/regressions/<target>/ with the fix.
# Needs Debian's clang-14 and libclang-rt-14-dev (libFuzzer and the sanitizer runtimes).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
targets=(config results safetensors gpt2_config tokenizer)
cxx=${FUZZ_CXX:-clang++-14}
command -v "$cxx" >/dev/null || { echo "fuzz: $cxx not found (Debian packages clang-14 libclang-rt-14-dev)" >&2; exit 2; }

build=build-fuzz
launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
cmake -S tests/fuzz -B "$build" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=None "${launcher[@]}" >/dev/null
cmake --build "$build" -j "$(nproc)" >"$build/build.log" 2>&1 || { cat "$build/build.log" >&2; echo "fuzz: build failed" >&2; exit 2; }

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# Executions libFuzzer reports in its final stats ("?" when the log has none).
executions() { grep -o 'stat::number_of_executed_units: *[0-9]*' "$1" | grep -o '[0-9]*$' || echo "?"; }

# One target: replay its regression inputs, then fuzz; writes its summary line to
# $build/findings/<target>/summary, from which the verdict below is taken.
fuzz_one() {
  local t=$1 exe="$build/fuzz_$1" findings="$build/findings/$1" runs log
  mkdir -p "$findings" "$build/corpus/$t"
  # 1. Regression inputs: each must run clean.
  if compgen -G "tests/fuzz/regressions/$t/*" >/dev/null; then
    if ! "$exe" -timeout=10 -rss_limit_mb=4096 tests/fuzz/regressions/$t/* >"$findings/regressions.log" 2>&1; then
      echo "fuzz: $t: a regression input fails again:" >&2
      tail -40 "$findings/regressions.log" >&2
      echo "$t: REGRESSION FAILS" >"$findings/summary"
      return 1
    fi
  fi
  # 2. Bounded fuzzing from the seed corpus (new inputs go to build-fuzz/corpus/<t>, not to git).
  log="$findings/fuzz.log"
  if "$exe" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -max_len=65536 -print_final_stats=1 \
       -artifact_prefix="$findings/" "$build/corpus/$t" "tests/fuzz/corpus/$t" >"$log" 2>&1; then
    echo "$t: $(executions "$log") executions in ${seconds}s, no finding" >"$findings/summary"
  else
    runs=$(executions "$log")
    echo "fuzz: $t: FINDING (log $log, input kept in $findings/):" >&2
    grep -E 'ERROR|SUMMARY|runtime error|terminate|Test unit written' "$log" | head -20 >&2 || tail -40 "$log" >&2
    echo "$t: FINDING after $runs executions" >"$findings/summary"
    return 1
  fi
}

# Each fuzzer is one single-threaded process: as many run at once as there are cores (each target
# still gets its full SECONDS), so 2 cores take half the wall time of one after another.
slots=$(nproc)
rm -f "$build"/findings/*/summary
for t in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$slots" ]; do wait -n || true; done
  fuzz_one "$t" &
done
wait
# The verdict comes from each target's summary line: a target that wrote none did not finish.
status=0
echo "fuzz summary (${seconds}s per target, $slots at a time):"
for t in "${targets[@]}"; do
  line=$(cat "$build/findings/$t/summary" 2>/dev/null || echo "$t: no summary (the run did not finish)")
  printf '  %s\n' "$line"
  case $line in *", no finding") ;; *) status=1 ;; esac
done
exit $status
