"""Time EF-code-base policies on every Figure 8(b) run (trace x cluster) and write a table.

Run on demand, never in the test suite (the traces must exist first, e.g.
`snakemake results/traces/cluster01.csv ... results/traces/philly.csv -c1`):
    .venv/bin/python benchmarks/bench_figure8b.py [--policies edf gandiva dlas-gpu ef-accessctrl]
        [--traces cluster10 philly] [--max-jobs 2000] [--timeout 1800]
Each run is a child process (killed after --timeout seconds and reported as such), timed from
the policy call to its return (wall clock and the child's CPU time: on a shared machine the CPU
time is the steadier figure); the 1-minute load average is recorded before and after each run.
Writes results/benchmarks/figure8b_policies.{csv,md} and prints the Markdown table.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
ART = "ElasticFlow-artifact/ElasticFlow"
POLICIES = ("edf", "gandiva", "dlas-gpu", "ef-accessctrl")
FIELDS = (
    "trace",
    "cluster",
    "jobs",
    "policy",
    "wall_s",
    "cpu_s",
    "status",
    "ratio",
    "rounds",
    "load_before",
    "load_after",
)


def _runs() -> list[tuple[str, str, str]]:
    """(trace, cluster, gpu type) of each Figure 8(b) run, from the workflow config."""
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    traces = config["traces"]
    return [
        (run["trace"], run["cluster"], traces[run["trace"]]["gpu_type"])
        for run in config["experiments"]["figure8b"]["runs"]
    ]


def _one(args: argparse.Namespace) -> None:
    """Child mode: run one policy once and print a JSON line."""
    from reprise.data.clusters import load_cluster_spec
    from reprise.data.profiles import load_profiles
    from reprise.data.traces import load_trace, submission_order
    from reprise.policies import get_policy
    from reprise.sim.options import SimOptions

    trace_name, cluster_name, gpu_type = args.one
    profiles = load_profiles(args.mirror / ART / f"scheduler/throughputs_{gpu_type}")
    trace = load_trace(REPO / "results/traces" / f"{trace_name}.csv", profiles)
    if args.max_jobs:
        keep = {t.idx for t in submission_order(trace)[: args.max_jobs]}
        trace = [t for t in trace if t.idx in keep]
    cluster = load_cluster_spec(args.mirror / ART / f"scheduler/cluster_specs/{cluster_name}.csv")
    simulate = get_policy(args.policies[0])
    start = time.perf_counter()
    cpu_start = time.process_time()
    result = simulate(trace, cluster, profiles, SimOptions(slot=60, gpu_type=gpu_type))
    wall = time.perf_counter() - start
    out = {
        "wall_s": wall,
        "cpu_s": time.process_time() - cpu_start,
        "jobs": len(trace),
        "ratio": result.ratio_published_rule,
        "rounds": len(result.rounds),
    }
    print(json.dumps(out), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--policies", nargs="+", default=list(POLICIES))
    parser.add_argument("--traces", nargs="+", default=None, help="subset of the 8(b) traces")
    parser.add_argument("--max-jobs", type=int, default=0, help="first N jobs of each trace")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per run")
    parser.add_argument("--mirror", type=Path, default=REPO.parent / "shared" / "upstream")
    parser.add_argument("--out", type=Path, default=REPO / "results/benchmarks/figure8b_policies")
    parser.add_argument("--one", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        _one(args)
        return
    rows: list[dict[str, str]] = []
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for trace, cluster, gpu_type in _runs():
        if args.traces and trace not in args.traces:
            continue
        for policy in args.policies:
            cmd = [
                sys.executable,
                __file__,
                "--one",
                trace,
                cluster,
                gpu_type,
                "--policies",
                policy,
                "--max-jobs",
                str(args.max_jobs),
                "--mirror",
                str(args.mirror),
            ]
            load_before = os.getloadavg()[0]
            row = {"trace": trace, "cluster": cluster, "policy": policy, "jobs": "", "ratio": ""}
            row["cpu_s"] = ""
            row.update({"rounds": "", "load_before": f"{load_before:.2f}"})
            start = time.perf_counter()
            try:
                done = subprocess.run(
                    cmd, capture_output=True, text=True, timeout=args.timeout, check=False
                )
            except subprocess.TimeoutExpired:
                row.update({"wall_s": f">{args.timeout:.0f}", "status": "timeout"})
            else:
                if done.returncode == 0:
                    res = json.loads(done.stdout.strip().splitlines()[-1])
                    row.update(
                        {
                            "wall_s": f"{res['wall_s']:.2f}",
                            "cpu_s": f"{res['cpu_s']:.2f}",
                            "status": "ok",
                            "jobs": str(res["jobs"]),
                            "ratio": f"{res['ratio']:.4f}",
                            "rounds": str(res["rounds"]),
                        }
                    )
                else:
                    tail = done.stderr.strip().splitlines()[-1:] or ["?"]
                    row.update({"wall_s": f"{time.perf_counter() - start:.2f}", "status": tail[0]})
            row["load_after"] = f"{os.getloadavg()[0]:.2f}"
            rows.append(row)
            print(" ".join(f"{k}={row[k]}" for k in FIELDS), flush=True)
            _write(rows, args.out)
    print(_markdown(rows))


def _write(rows: list[dict[str, str]], out: Path) -> None:
    with out.with_suffix(".csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    out.with_suffix(".md").write_text(_markdown(rows) + "\n")


def _markdown(rows: list[dict[str, str]]) -> str:
    """One line per run: wall seconds per policy side by side."""
    policies = list(dict.fromkeys(r["policy"] for r in rows))
    runs = list(dict.fromkeys((r["trace"], r["cluster"], r["jobs"]) for r in rows))
    by_key = {(r["trace"], r["cluster"], r["policy"]): r for r in rows}
    lines = [
        "| trace | cluster | jobs | "
        + " | ".join(f"{p} wall s / CPU s (ratio)" for p in policies)
        + " |",
        "|---|---|---|" + "---|" * len(policies),
    ]
    for trace, cluster, jobs in runs:
        cells = []
        for p in policies:
            r = by_key.get((trace, cluster, p))
            if r is None:
                cells.append("")
            elif r["status"] == "ok":
                cells.append(f"{r['wall_s']} / {r['cpu_s']} ({r['ratio']})")
            else:
                cells.append(f"{r['wall_s']} {r['status']}")
        lines.append(f"| {trace} | {cluster} | {jobs} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
