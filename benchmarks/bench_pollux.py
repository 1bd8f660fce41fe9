"""Run the Pollux baseline on Figure 8(a) for some seeds; write wall/CPU time and the ratio.

Run on demand, never in the test suite (one run takes tens of minutes):
    .venv/bin/python benchmarks/bench_pollux.py [--seeds 0 1 2] [--mirror ../shared/upstream]
Writes results/benchmarks/pollux_figure8a.csv (one row per seed) and prints a Markdown table.
Published: 0.523 (Figure 8a); the artifact README's run: 0.5026, average JCT 71114 s.

Profiling a short stretch: `--horizon 20000 --profile out.pstats` stops after 20000 simulated
seconds (the ratio then counts unfinished jobs as missed) and writes cProfile statistics.
`--search numpy` runs the numpy reference search instead of the compiled one (same results), for
side-by-side timings; `search_cpu_s` is the CPU time inside the searches.
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

import reprise.policies.pollux.policy as pollux_policy
from reprise.data.clusters import load_cluster_spec
from reprise.data.profiles import load_profiles
from reprise.data.traces import load_trace
from reprise.policies.pollux import search
from reprise.policies.pollux.compiled import run_nsga2 as run_compiled
from reprise.policies.pollux.fused import run_fused
from reprise.policies.pollux.policy import simulate as simulate_pollux
from reprise.sim.options import SimOptions

REPO = Path(__file__).resolve().parents[1]
ART = "ElasticFlow-artifact/ElasticFlow"
FIELDS = (
    "seed",
    "search",
    "ratio",
    "met",
    "jobs",
    "average_jct_s",
    "wall_s",
    "cpu_s",
    "search_cpu_s",
    "searches",
    "generations",
    "fits",
    "load_1min",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--mirror", type=Path, default=REPO.parent / "shared" / "upstream")
    parser.add_argument("--jobs", type=int, default=0, help="only the first N jobs (0 = all)")
    parser.add_argument("--horizon", type=int, default=0, help="stop after N simulated seconds")
    parser.add_argument("--profile", type=Path, help="write cProfile statistics here")
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--search", choices=("fused", "compiled", "numpy"), default="fused")
    parser.add_argument("--out", type=Path, default=REPO / "results/benchmarks/pollux_figure8a.csv")
    args = parser.parse_args()
    profiles = load_profiles(args.mirror / ART / "scheduler/throughputs_T4")
    trace = load_trace(args.mirror / ART / "traces_for_ElasticFlow/elasticVpollux_e.csv", profiles)
    if args.jobs:
        trace = trace[: args.jobs]
    cluster = load_cluster_spec(args.mirror / ART / "scheduler/cluster_specs/n16g4.csv")
    rows: list[dict[str, str]] = []
    chosen = {"fused": run_fused, "compiled": run_compiled, "numpy": search.run_nsga2}[args.search]
    search_cpu = 0.0

    def timed(problem: Any, initial: Any, rng: np.random.Generator, pymoo_draws: bool) -> Any:
        nonlocal search_cpu
        start = time.process_time()
        try:
            return chosen(problem, initial, rng)
        finally:
            search_cpu += time.process_time() - start

    pollux_policy.run_nsga2 = timed
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        options = SimOptions(
            slot=60,
            gpu_type="T4",
            data_root=str(args.mirror),
            seed=seed,
            show_progress=args.progress,
        )
        profiler = cProfile.Profile() if args.profile else None
        search_cpu = 0.0
        wall, cpu = time.perf_counter(), time.process_time()
        if profiler is not None:
            profiler.enable()
        result = simulate_pollux(trace, cluster, profiles, options, horizon=args.horizon or None)
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        rows.append(
            {
                "seed": str(seed),
                "search": args.search,
                "ratio": f"{result.ratio_published_rule:.4f}",
                "met": str(result.accepted),
                "jobs": str(result.accepted + result.declined),
                "average_jct_s": f"{result.extra['average_jct']:.1f}",
                "wall_s": f"{wall:.1f}",
                "cpu_s": f"{cpu:.1f}",
                "search_cpu_s": f"{search_cpu:.1f}",
                "searches": str(result.extra["searches"]),
                "generations": str(result.extra["generations"]),
                "fits": str(result.extra["fits"]),
                "load_1min": f"{os.getloadavg()[0]:.2f}",
            }
        )
        with args.out.open("w", newline="") as fh:  # rewritten after every seed
            writer = csv.DictWriter(fh, fieldnames=FIELDS)
            writer.writeheader()
            writer.writerows(rows)
        print(f"seed {seed}: ratio {rows[-1]['ratio']}, wall {wall:.0f} s, cpu {cpu:.0f} s")
    print("| " + " | ".join(FIELDS) + " |")
    print("|" + "---|" * len(FIELDS))
    for row in rows:
        print("| " + " | ".join(row[f] for f in FIELDS) + " |")


if __name__ == "__main__":
    main()
