#!/usr/bin/env bash
# Power of `bsbr-bench ab`, shown rather than claimed (README "bsbr-bench ab"): A is build/bsbr-bench,
# B is the same binary given BSBR's compression_factor 1 instead of 2 (--b-set, B alone). That key
# changes BSBR and no other model: BSBR does more work (analytic FLOPs, the results' `flops_model`, on
# configs/ab-gate.yaml: +15 % per prefill at n = 128, +18 % at 1024, +7 % per decode token), every
# other model runs exactly what A runs. No test hook in src/. (A stronger candidate, for a first look:
# AB_POWER_SET=model.expansion_factor=3 AB_POWER_MODEL=GAU, +55..68 % prefill, +36 % decode.)
# Passes (exit 0) when ab flags at least one point of that model and no other point; exit 1 otherwise,
# 2 when ab's run was unusable (e.g. the machine never got quiet). Run it on a quiet machine.
# Usage: tools/ab-power.sh [extra ab flags]; AB_CONFIG, AB_SAMPLES, AB_MAX_ROUNDS, AB_MIN_ROUNDS, AB_BUDGET_S as in tools/ab-gate.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=${AB_POWER_OUT:-results/ab-power}
status=0
model=${AB_POWER_MODEL:-BSBR}
build/bsbr-bench ab --a build/bsbr-bench --b build/bsbr-bench --b-set "${AB_POWER_SET:-model.compression_factor=1}" --config "${AB_CONFIG:-configs/ab-gate.yaml}" \
  --samples-per-round "${AB_SAMPLES:-3}" --max-rounds "${AB_MAX_ROUNDS:-12}" --min-rounds "${AB_MIN_ROUNDS:-8}" --budget-s "${AB_BUDGET_S:-420}" --out "$out" "$@" >"$out.log" 2>&1 || status=$?
summary=$(grep -E '^ab: ' "$out.log" | tail -1 || true)
echo "$summary"
if [ "$status" -ne 0 ] && [ "$status" -ne 1 ]; then
  echo "ab-power: ab exited $status (see $out.log)" >&2
  exit 2
fi
flagged=$(grep -oE '(SLOWER|FAILED in B) [A-Za-z]+' <<<"$summary" | sort -u || true)
if [ "$flagged" = "SLOWER $model" ]; then
  echo "ab-power: ok: $model flagged ($(grep -o "SLOWER $model " <<<"$summary" | wc -l) points), nothing else"
  exit 0
fi
echo "ab-power: FAILED: expected $model alone flagged, got: ${flagged:-nothing}" >&2
exit 1
