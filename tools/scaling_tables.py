#!/usr/bin/env python3
"""Issue 14's tables from bsbr-bench results files (compare --threads ...): prefill median time and
efficiency (the run's `efficiency`: executed GFLOP/s over the calibration matmul at that count),
decode median time per token and `roofline_fraction`, and prefill's speed-up from the fewest threads
to the most. Marks: (c) contended, (~) noisy (cv > 10 %). Reads only the fields bsbr-bench wrote;
prints Markdown.

usage: tools/scaling_tables.py RESULTS.json [RESULTS.json ...]
"""
import json
import sys

MODELS = ["BSBR", "Linear", "DeltaNet", "Standard", "SlidingWindow", "Hopfield", "GAU"]


def fmt_time(seconds):
    if seconds >= 1:
        return f"{seconds:.3g} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds * 1e6:.3g} µs"


def main(paths):
    runs = {}  # (model, workload, n, threads) -> run
    for path in paths:
        with open(path) as f:
            for r in json.load(f)["runs"]:
                if r.get("status", "ok") == "ok":
                    runs[(r["model"], r["workload"], r["n"], r["threads"])] = r
    threads = sorted({k[3] for k in runs})
    for workload in ("prefill", "decode"):
        for n in sorted({k[2] for k in runs if k[1] == workload}):
            if workload == "prefill":
                print(f"#### prefill n = {n}: median time, efficiency (executed GFLOP/s / calibration at that count)\n")
            else:
                print(f"#### decode n = {n}: median time per token, roofline fraction (bytes_per_token / ladder bandwidth, over the time)\n")
            speedup = workload == "prefill" and len(threads) > 1
            head = ["model"] + [f"{t} thread{'s' if t > 1 else ''}" for t in threads] + ([f"speed-up {threads[0]}→{threads[-1]}"] if speedup else [])
            print("| " + " | ".join(head) + " |")
            print("|" + "---|" * len(head))
            for m in MODELS:
                cells = []
                for t in threads:
                    r = runs.get((m, workload, n, t))
                    if r is None:
                        cells.append("–")
                        continue
                    frac = r.get("efficiency") if workload == "prefill" else r.get("roofline_fraction")
                    marks = [x for x, on in (("c", r["contention"]["contended"]), ("~", r["noisy"])) if on]
                    cell = fmt_time(r["stats"]["median"]) + (f", {100 * frac:.0f} %" if frac is not None else "")
                    cells.append(cell + (f" ({', '.join(marks)})" if marks else ""))
                if speedup:
                    a, b = runs.get((m, workload, n, threads[0])), runs.get((m, workload, n, threads[-1]))
                    cells.append(f"{a['stats']['median'] / b['stats']['median']:.2g}×" if a and b else "–")
                print(f"| {m} | " + " | ".join(cells) + " |")
            print()


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
