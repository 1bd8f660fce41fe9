"""Time the policies of two checkouts side by side: the same runs, interleaved, in one go.

A refactoring must not slow a simulation down by more than 5 %. Each repetition runs every
(run, policy) once with each checkout's library in a fresh process (before, after, before, ...),
so load on the machine falls on both alike; the table gives the median CPU and wall seconds.
Run on demand, never in the test suite:
    .venv/bin/python benchmarks/bench_compare.py --before /tmp/before --after . [--repeat 5]
        [--runs figure8a,cluster10,philly] [--mirror ../shared/upstream]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ART = "ElasticFlow-artifact/ElasticFlow"
POLICIES = ("edf", "gandiva", "dlas-gpu", "themis", "ef-accessctrl")
RUNS = {
    # name: (trace below the mirror or a results/traces file, cluster, GPU type, slot)
    "figure8a": (f"{ART}/traces_for_ElasticFlow/elasticVpollux_e.csv", "n16g4", "T4", 60),
    "philly": (f"{ART}/traces_for_ElasticFlow/philly_103959.csv", "n4g8", "A100", 60),
    "cluster10": ("results/traces/cluster10.csv", "n32g8", "A100", 60),
}
PROFILES = {"T4": f"{ART}/scheduler/throughputs_T4", "A100": f"{ART}/scheduler/throughputs_A100"}

# one timed simulation, with whichever library is first on the path (old or new module names)
WORKER = """
import json, sys, time
from pathlib import Path
from reprise.data.clusters import load_cluster_spec
from reprise.data.profiles import load_profiles
from reprise.data.traces import load_trace
from reprise.policies import get_policy
try:
    from reprise.sim.options import SimOptions
except ImportError:
    from reprise.sim.outcome import SimOptions
trace, cluster, profiles, gpu_type, slot, policy = sys.argv[1:7]
prof = load_profiles(Path(profiles))
jobs = load_trace(Path(trace), prof)
spec = load_cluster_spec(Path(cluster))
simulate = get_policy(policy)
cpu, wall = time.process_time(), time.perf_counter()
result = simulate(jobs, spec, prof, SimOptions(slot=int(slot), gpu_type=gpu_type))
print(json.dumps({"cpu": time.process_time() - cpu, "wall": time.perf_counter() - wall,
                  "ratio": result.ratio_published_rule}))
"""


def _time_once(checkout: Path, args: list[str]) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(checkout / "workflow")}
    out = subprocess.run(
        [sys.executable, "-c", WORKER, *args], env=env, check=True, capture_output=True, text=True
    )
    timing: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return timing


def _inputs(name: str, mirror: Path, trace_root: Path) -> list[str]:
    trace, cluster, gpu_type, slot = RUNS[name]
    trace_path = trace_root / trace if trace.startswith("results/") else mirror / trace
    return [
        str(trace_path),
        str(mirror / ART / "scheduler/cluster_specs" / f"{cluster}.csv"),
        str(mirror / PROFILES[gpu_type]),
        gpu_type,
        str(slot),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--after", type=Path, default=REPO)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--runs", default="figure8a", help=f"comma-separated: {', '.join(RUNS)}")
    parser.add_argument("--policies", default=",".join(POLICIES))
    parser.add_argument("--mirror", type=Path, default=REPO.parent / "shared" / "upstream")
    parser.add_argument(
        "--traces-from", type=Path, help="checkout whose results/traces/ holds prepared traces"
    )
    parser.add_argument("--out", type=Path, help="JSON with every timing")
    args = parser.parse_args()
    trace_root = args.traces_from or args.before
    cases = [(r, p) for r in args.runs.split(",") for p in args.policies.split(",")]
    times: dict[tuple[str, str, str], list[dict[str, float]]] = {}
    for i in range(args.repeat):
        for run, policy in cases:
            inputs = [*_inputs(run, args.mirror, trace_root), policy]
            order = [("before", args.before), ("after", args.after)]
            for side, checkout in order if i % 2 == 0 else order[::-1]:
                times.setdefault((run, policy, side), []).append(_time_once(checkout, inputs))
        print(f"repetition {i + 1}/{args.repeat} done", file=sys.stderr, flush=True)
        # the table so far: a run stopped early still leaves its medians
        _report(cases, times, i + 1, args.out)


def _report(
    cases: list[tuple[str, str]],
    times: dict[tuple[str, str, str], list[dict[str, float]]],
    repeat: int,
    out: Path | None,
) -> None:
    print(
        f"after {repeat} repetition(s)\n| run | policy | before CPU s | after CPU s "
        "| after/before CPU | before wall s | after wall s | same ratio |\n"
        "|---|---|---|---|---|---|---|---|",
        flush=True,
    )
    rows = []
    for run, policy in cases:
        b, a = times[(run, policy, "before")], times[(run, policy, "after")]
        bc, ac = (statistics.median(t["cpu"] for t in x) for x in (b, a))
        bw, aw = (statistics.median(t["wall"] for t in x) for x in (b, a))
        same = {t["ratio"] for t in b} == {t["ratio"] for t in a}
        rows.append(
            {"run": run, "policy": policy, "before_cpu": bc, "after_cpu": ac,
             "before_wall": bw, "after_wall": aw, "same_ratio": same}
        )  # fmt: skip
        print(
            f"| {run} | {policy} | {bc:.2f} | {ac:.2f} | {ac / bc:.3f} | {bw:.2f} | {aw:.2f} "
            f"| {same} |",
            flush=True,
        )
    if out is not None:
        out.write_text(json.dumps({"repeat": repeat, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
