"""Time Chronus (greedy and MIP modes) on Figure 8(a) and write a table.

Run on demand, never in the test suite:
    .venv/bin/python benchmarks/bench_chronus.py [--repeat 1] [--modes greedy milp]
Writes results/benchmarks/figure8a_chronus.csv and prints a Markdown table. Targets on a 2-core
machine: greedy < 30 s, milp < 5 min. Upstream without Gurobi: ~3 min (its simulator, timed on its
own).
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
from pathlib import Path

from reprise.data.clusters import load_cluster_spec
from reprise.data.profiles import load_profiles
from reprise.data.traces import load_trace
from reprise.policies import get_policy
from reprise.sim.options import SimOptions

REPO = Path(__file__).resolve().parents[1]
ART = "ElasticFlow-artifact/ElasticFlow"
POLICY = {"greedy": "chronus-greedy", "milp": "chronus"}
PUBLISHED_RATIO = 0.262


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--modes", nargs="+", choices=sorted(POLICY), default=["greedy", "milp"])
    parser.add_argument("--mirror", type=Path, default=REPO.parent / "shared" / "upstream")
    parser.add_argument(
        "--out", type=Path, default=REPO / "results/benchmarks/figure8a_chronus.csv"
    )
    args = parser.parse_args()
    profiles = load_profiles(args.mirror / ART / "scheduler/throughputs_T4")
    trace = load_trace(args.mirror / ART / "traces_for_ElasticFlow/elasticVpollux_e.csv", profiles)
    cluster = load_cluster_spec(args.mirror / ART / "scheduler/cluster_specs/n16g4.csv")
    options = SimOptions(slot=60, gpu_type="T4")
    rows = []
    for mode in args.modes:
        simulate = get_policy(POLICY[mode])
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            result = simulate(trace, cluster, profiles, options)
            times.append(time.perf_counter() - start)
        extra = result.extra
        rows.append(
            {
                "mode": mode,
                "median_s": f"{statistics.median(times):.2f}",
                "repeat": str(args.repeat),
                "met": str(result.accepted),
                "jobs": str(result.accepted + result.declined),
                "ratio": f"{result.ratio_published_rule:.4f}",
                "published": str(PUBLISHED_RATIO),
                "leases_planned": str(extra["leases_planned"]),
                "mip_solves": str(extra["mip_solves"]),
                "mip_fallbacks": str(extra["mip_fallbacks"]),
                "mip_time_limit_with_incumbent": str(extra["mip_time_limit_with_incumbent"]),
                "mip_seconds": f"{result.timings['mip_seconds']:.3f}",
                "mip_max_binaries": str(extra["mip_max_binaries"]),
            }
        )
        print(f"{mode}: median {statistics.median(times):.2f} s, ratio {rows[-1]['ratio']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(
        "\n| mode | median s | met/jobs | ratio | published | MIP solves | fallbacks "
        "| limit hits | MIP s |\n|---|---|---|---|---|---|---|---|---|"
    )
    for r in rows:
        print(
            f"| {r['mode']} | {r['median_s']} | {r['met']}/{r['jobs']} | {r['ratio']} "
            f"| {r['published']} | {r['mip_solves']} | {r['mip_fallbacks']} "
            f"| {r['mip_time_limit_with_incumbent']} | {r['mip_seconds']} |"
        )


if __name__ == "__main__":
    main()
