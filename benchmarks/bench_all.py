"""Time `snakemake all` on a fresh clone, stage by stage, and summarise every simulation run.

Run on demand, never in the test suite (the whole evaluation takes a while):
    .venv/bin/python benchmarks/bench_all.py [--cores 2] [--mirror ../shared/upstream]
It clones the committed HEAD into a temporary directory (nothing in this checkout's results/ is
touched), then runs the stages as separate Snakemake invocations so each gets its own wall time:
data + traces (`--until prepare_trace`), the simulations of each figure (`figureN --until
simulate`), then `all` (tables, claims, figures, scorecard). It writes
results/benchmarks/all_stages.csv and all_runs.csv (per figure and policy: runs, summed and
largest wall time, peak RSS, from each run's `benchmark:` file) and prints both as Markdown tables.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIGURES = ("figure8a", "figure8b", "figure9", "figure10", "figure11")


def _snakemake(clone: Path, env: dict[str, str], cores: int, *args: str) -> float:
    command = [str(Path(sys.executable).with_name("snakemake")), *args, "-c", str(cores), "-q"]
    print("$", " ".join(command[1:]), flush=True)
    started = time.perf_counter()
    subprocess.run(command, cwd=clone, env=env, check=True)
    return time.perf_counter() - started


def _run_rows(clone: Path) -> list[dict[str, str]]:
    """One row per (figure, policy) from results/benchmarks/sim/<figure>/.../<policy>.tsv."""
    sums: dict[tuple[str, str], list[float]] = defaultdict(list)
    rss: dict[tuple[str, str], float] = defaultdict(float)
    for path in sorted((clone / "results/benchmarks/sim").rglob("*.tsv")):
        figure = path.relative_to(clone / "results/benchmarks/sim").parts[0]
        with path.open() as fh:
            (row,) = list(csv.DictReader(fh, delimiter="\t"))
        key = (figure, path.stem)
        sums[key].append(float(row["s"]))
        rss[key] = max(rss[key], float(row["max_rss"]) if row["max_rss"] != "-" else 0.0)
    return [
        {
            "figure": figure,
            "policy": policy,
            "runs": str(len(times)),
            "sum_s": f"{sum(times):.1f}",
            "max_s": f"{max(times):.1f}",
            "max_rss_mb": f"{rss[figure, policy]:.0f}",
        }
        for (figure, policy), times in sorted(sums.items())
    ]


def _write(rows: list[dict[str, str]], dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with dest.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(f"\n{dest}:\n| " + " | ".join(rows[0]) + " |\n|" + "---|" * len(rows[0]))
    for row in rows:
        print("| " + " | ".join(row.values()) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--mirror", type=Path, default=REPO.parent / "shared" / "upstream")
    parser.add_argument("--out", type=Path, default=REPO / "results/benchmarks")
    parser.add_argument("--keep", action="store_true", help="keep the clone and print its path")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="reprise-bench-"))
    clone = scratch / "reprise"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    env = dict(os.environ)
    env["REPRISE_MIRRORS"] = str(args.mirror.resolve())
    env["PYTHONPATH"] = str(clone / "workflow")  # the clone's library, not this checkout's
    stages: list[tuple[str, tuple[str, ...]]] = [
        ("data and traces", ("all", "--until", "prepare_trace"))
    ]
    stages += [(f"{f} simulations", (f, "--until", "simulate")) for f in FIGURES]
    stages += [("tables, claims, figures, scorecard", ("all",))]
    rows = []
    total = 0.0
    for name, targets in stages:
        wall = _snakemake(clone, env, args.cores, *targets)
        total += wall
        rows.append({"stage": name, "wall_s": f"{wall:.1f}", "cumulative_s": f"{total:.1f}"})
        print(f"{name}: {wall:.1f} s (cumulative {total:.1f} s)", flush=True)
    load = f"(load average at the end: {os.getloadavg()[0]:.2f})"
    rows.append({"stage": load, "wall_s": "", "cumulative_s": ""})
    _write(rows, args.out / "all_stages.csv")
    _write(_run_rows(clone), args.out / "all_runs.csv")
    if args.keep:
        print(f"clone kept at {clone}")
    else:
        subprocess.run(["rm", "-rf", str(scratch)], check=True)


if __name__ == "__main__":
    main()
