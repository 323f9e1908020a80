#!/usr/bin/env bash
# The CI timing gate (README "bsbr-bench ab"): builds the accepted baseline commit named in
# results/baseline.rev in a separate git worktree, builds HEAD, and runs `bsbr-bench ab` between
# them, interleaved, on the CI point set. Exit code: ab's (0 nothing slower, 1 a point slower,
# 2 unusable input or environment, e.g. the machine never got quiet, 3 a bug).
# Usage: tools/ab-gate.sh [extra ab flags]; AB_CONFIG, AB_SAMPLES, AB_MAX_ROUNDS, AB_MIN_ROUNDS,
# AB_BUDGET_S override the point set (configs/ab-gate.yaml), samples per round (3), valid rounds to
# stop at (12), valid rounds below which the run is unusable (8) and seconds of rounds (420),
# AB_DELTA the noise floor (0.05). These are the settings the A/A runs that chose --delta used
# (results/ab-aa/README.md); change them together.
# Rounds, not seconds, set the gate's power: 12 rounds stop it on a fast machine (a round of
# configs/ab-gate.yaml is ~15 s on the 2-core dev box), and the budget leaves room for about 10 on a
# machine 2.6x slower (the CI machine ran configs/ci.yaml's points 2.6x slower than the dev box).
# Fewer than 8 valid rounds is exit 2, not a pass: with 8 + 8 round values the smallest one-sided p
# is 7.8e-5, 2.2e-3 after Holm over 28 points; with 5 + 5 (0.11 after Holm) no point could be flagged.
# Time on 2 cores: the baseline build (bsbr-bench target only, no tests; about a minute from a warm
# ccache, a few minutes cold) + HEAD's (none when build/ is already built) + the rounds.
set -euo pipefail
cd "$(dirname "$0")/.."
rev_file=results/baseline.rev
rev=$(grep -v '^[[:space:]]*#' "$rev_file" 2>/dev/null | tr -d '[:space:]' || true)
if [ -z "$rev" ]; then
  echo "ab-gate: $rev_file names no baseline commit (one hash on a line of its own; the lead sets it)" >&2
  exit 2
fi
if ! git rev-parse --verify -q "$rev^{commit}" >/dev/null; then
  echo "ab-gate: $rev_file: '$rev' is not a commit of this repository" >&2
  exit 2
fi
# The baseline worktree lives inside this clone (build-ab/, ignored by git) so that one ccache base
# directory covers both builds, and its build directory is <worktree>/build, as HEAD's is ./build:
# ccache rewrites paths under the base directory relative to the compiler's working directory, so
# only then are the two builds' compile commands identical (../src/cli/ab.cpp, -I../src) and every
# file the two commits share comes from the cache. (With the build beside the worktree, the paths
# differed and 418 of 423 compiles missed: the baseline build took ~5 minutes on 2 cores.)
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}
mkdir -p build-ab
work=$(mktemp -d "$PWD/build-ab/baseline.XXXXXX")
cleanup() {
  git worktree remove --force "$work/src" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
git worktree add --detach "$work/src" "$rev" >/dev/null 2>&1
build() {  # $1: source dir, $2: build dir; Release, the bsbr-bench target alone
  cmake -S "$1" -B "$2" -DCMAKE_BUILD_TYPE=Release -DBSBR_BUILD_TESTS=OFF >/dev/null
  cmake --build "$2" -j 2 --target bsbr-bench >"$2.log" 2>&1 || { tail -30 "$2.log" >&2; echo "ab-gate: building $1 failed" >&2; exit 2; }
}
echo "ab-gate: building the baseline $rev"
build "$work/src" "$work/src/build"
if [ ! -f build/CMakeCache.txt ]; then
  build . build
else
  cmake --build build -j 2 --target bsbr-bench >/dev/null  # no-op when HEAD is already built
fi
mkdir -p results/ab
status=0
build/bsbr-bench ab --a "$work/src/build/bsbr-bench" --b build/bsbr-bench --config "${AB_CONFIG:-configs/ab-gate.yaml}" \
  --samples-per-round "${AB_SAMPLES:-3}" --max-rounds "${AB_MAX_ROUNDS:-12}" --min-rounds "${AB_MIN_ROUNDS:-8}" --budget-s "${AB_BUDGET_S:-420}" \
  --delta "${AB_DELTA:-0.05}" --out results/ab "$@" || status=$?
if [ -n "${GITHUB_STEP_SUMMARY:-}" ] && [ -f results/ab/ab_report.md ]; then cat results/ab/ab_report.md >>"$GITHUB_STEP_SUMMARY"; fi
exit $status
