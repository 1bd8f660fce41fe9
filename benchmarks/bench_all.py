"""Time `snakemake all` on a fresh clone, stage by stage, and summarise every simulation run.

Run on demand, never in the test suite (the whole evaluation takes a while):
    .venv/bin/python benchmarks/bench_all.py [--cores 2] [--mirror ../shared/upstream] [--keep]
It clones the committed HEAD into a temporary directory (nothing in this checkout's results/ is
touched) and runs one `snakemake all -c N` there, as a user would (so stages overlap where the
DAG lets them), then `snakemake all --report`. Stages are read off the run: each simulation's
`benchmark:` file gives its length and its modification time its end, so a figure's
simulations span from the first start to the last end; data and traces come before the first
simulation, tables, claims, figures and the scorecard after the last. It writes
results/benchmarks/all_stages.csv and all_runs.csv (per figure and policy: runs, summed and
largest wall time, peak RSS) and report.html, and prints both tables as Markdown.
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


def _spans(clone: Path) -> dict[str, tuple[float, float, float]]:
    """Per figure: (first start, last end, summed seconds) of its simulations."""
    spans: dict[str, tuple[float, float, float]] = {}
    root = clone / "results/benchmarks/sim"
    for path in sorted(root.rglob("*.tsv")):
        figure = path.relative_to(root).parts[0]
        with path.open() as fh:
            (row,) = list(csv.DictReader(fh, delimiter="\t"))
        length = float(row["s"])
        end = path.stat().st_mtime
        first, last, busy = spans.get(figure, (end - length, end, 0.0))
        spans[figure] = (min(first, end - length), max(last, end), busy + length)
    return spans


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
    started = time.time()
    wall = _snakemake(clone, env, args.cores, "all")
    finished = time.time()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    report_s = _snakemake(clone, env, 1, "all", "--report", str(out / "report.html"))
    spans = _spans(clone)
    first = min(span[0] for span in spans.values())
    last = max(span[1] for span in spans.values())

    def row(stage: str, lo: float, hi: float, busy: str = "") -> dict[str, str]:
        return {
            "stage": stage,
            "from_s": f"{lo - started:.1f}",
            "to_s": f"{hi - started:.1f}",
            "wall_s": f"{hi - lo:.1f}",
            "job_s": busy,
        }

    rows = [row("data and traces (before the first simulation)", started, first)]
    for figure in FIGURES:
        if figure in spans:
            lo, hi, busy = spans[figure]
            rows.append(row(f"{figure} simulations", lo, hi, f"{busy:.1f}"))
    rows.append(row("tables, claims, figures, scorecard (after the last)", last, finished))
    rows.append(row(f"snakemake all -c{args.cores}", started, finished))
    rows.append(row("snakemake all --report", finished, finished + report_s))
    load = f"(load average at the end: {os.getloadavg()[0]:.2f}; wall {wall:.1f} s)"
    rows.append({"stage": load, "from_s": "", "to_s": "", "wall_s": "", "job_s": ""})
    _write(rows, out / "all_stages.csv")
    _write(_run_rows(clone), out / "all_runs.csv")
    if args.keep:
        print(f"clone kept at {clone}")
    else:
        subprocess.run(["rm", "-rf", str(scratch)], check=True)


if __name__ == "__main__":
    main()
