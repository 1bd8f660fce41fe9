"""Time every policy on Figure 8(a) (median of N runs) and write a table.

Run on demand, never in the test suite:
    .venv/bin/python benchmarks/bench_figure8a.py [--repeat 3] [--mirror ../shared/upstream]
Writes results/benchmarks/figure8a_policies.csv and prints a Markdown table.
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
POLICIES = ("edf", "gandiva", "dlas-gpu", "themis", "ef-accessctrl")
# upstream wall times on Figure 8(a): its simulator, timed on its own
UPSTREAM_S = {"edf": 10, "gandiva": 36, "dlas-gpu": 7, "themis": 2459, "ef-accessctrl": 41}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--mirror", type=Path, default=REPO.parent / "shared" / "upstream")
    parser.add_argument(
        "--out", type=Path, default=REPO / "results/benchmarks/figure8a_policies.csv"
    )
    args = parser.parse_args()
    profiles = load_profiles(args.mirror / ART / "scheduler/throughputs_T4")
    trace = load_trace(args.mirror / ART / "traces_for_ElasticFlow/elasticVpollux_e.csv", profiles)
    cluster = load_cluster_spec(args.mirror / ART / "scheduler/cluster_specs/n16g4.csv")
    options = SimOptions(slot=60, gpu_type="T4")
    rows = []
    for policy in POLICIES:
        simulate = get_policy(policy)
        times = []
        ratio = 0.0
        for _ in range(args.repeat):
            start = time.perf_counter()
            result = simulate(trace, cluster, profiles, options)
            times.append(time.perf_counter() - start)
            ratio = result.ratio_published_rule
        rows.append(
            {
                "policy": policy,
                "median_s": f"{statistics.median(times):.2f}",
                "min_s": f"{min(times):.2f}",
                "max_s": f"{max(times):.2f}",
                "repeat": str(args.repeat),
                "ratio": f"{ratio:.4f}",
                "upstream_s": str(UPSTREAM_S[policy]),
            }
        )
        print(f"{policy}: median {statistics.median(times):.2f} s", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print("\n| policy | median s | min s | max s | ratio | upstream s |\n|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['policy']} | {r['median_s']} | {r['min_s']} | {r['max_s']} | {r['ratio']} "
            f"| {r['upstream_s']} |"
        )


if __name__ == "__main__":
    main()
