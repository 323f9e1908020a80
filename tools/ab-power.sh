#!/usr/bin/env bash
# Power of `bsbr-bench ab`, shown rather than claimed (README "bsbr-bench ab"): A is build/bsbr-bench,
# B is the same binary given GAU's expansion_factor 3 instead of 2 (--b-set, B alone). That key
# changes GAU and no other model: GAU does more work (analytic FLOPs on configs/ci.yaml: +36 % per
# prefill, +15 % per decode token), every other model runs exactly what A runs. No test hook in src/.
# Passes (exit 0) when ab flags at least one GAU point and no other point; exit 1 otherwise,
# 2 when ab's run was unusable (e.g. the machine never got quiet). Run it on a quiet machine.
# Usage: tools/ab-power.sh [extra ab flags]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${AB_POWER_OUT:-results/ab-power}
status=0
build/bsbr-bench ab --a build/bsbr-bench --b build/bsbr-bench --b-set model.expansion_factor=3 --config configs/ci.yaml \
  --samples-per-round 3 --max-rounds 20 --budget-s "${AB_BUDGET_S:-420}" --out "$out" "$@" >"$out.log" 2>&1 || status=$?
summary=$(grep -E '^ab: ' "$out.log" | tail -1 || true)
echo "$summary"
if [ "$status" -ne 0 ] && [ "$status" -ne 1 ]; then
  echo "ab-power: ab exited $status (see $out.log)" >&2
  exit 2
fi
flagged=$(grep -oE '(SLOWER|FAILED in B) [A-Za-z]+' <<<"$summary" | sort -u || true)
if [ "$flagged" = "SLOWER GAU" ]; then
  echo "ab-power: ok: GAU flagged ($(grep -o 'SLOWER GAU' <<<"$summary" | wc -l) points), nothing else"
  exit 0
fi
echo "ab-power: FAILED: expected GAU alone flagged, got: ${flagged:-nothing}" >&2
exit 1
