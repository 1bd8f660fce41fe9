"""Figure 6(a)'s reduced CPU configuration end to end: `testbed.figure6a_cpu` (25 generated jobs of
1 or 2 slots, the five policies with an executor seam, on local-docker's 3 nodes x 2 slots planned
as n2g2) through Snakemake, and the wall time of its testbed run.

Run on demand, never in the test suite (as root, Docker running):
    .venv/bin/python benchmarks/bench_figure6a_cpu.py [--cores 2] [--fresh]
--fresh reruns the testbed run even when its record exists. Prints the run's wall seconds (from
its Snakemake benchmark file), each policy's testbed/simulated/published counts and restarts.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TABLE = "results/tables/figure6a_cpu.csv"
BENCH = "results/benchmarks/testbed/figure6a_cpu/local-docker.tsv"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--fresh", action="store_true")
    args = parser.parse_args(argv)
    cmd = [str(REPO / ".venv/bin/snakemake"), TABLE, f"-c{args.cores}"]
    if args.fresh:
        cmd += ["--forcerun", "schedule_run"]
    began = time.monotonic()
    done = subprocess.run(cmd, cwd=REPO)
    wall = time.monotonic() - began
    if done.returncode != 0:
        print(f"snakemake failed ({done.returncode}) after {wall:.0f} s", file=sys.stderr)
        return done.returncode
    with (REPO / BENCH).open() as fh:
        run_s = float(next(csv.DictReader(fh, delimiter="\t"))["s"])
    print(f"snakemake {TABLE}: {wall:.0f} s in all; testbed run {run_s:.0f} s ({BENCH})")
    print("| policy | testbed | simulated (modelled) | published (32 GPUs) | restarts | mean s |")
    print("|---|---|---|---|---|---|")
    with (REPO / TABLE).open() as fh:
        for r in csv.DictReader(fh):
            if not r["testbed_accepted"]:
                continue
            print(
                f"| {r['label']} | {r['testbed_accepted']}/{r['testbed_declined']} | "
                f"{r['sim_modelled_accepted']}/{r['sim_modelled_declined']} | "
                f"{r['published_accepted']}/{r['published_declined']} | {r['restarts']} | "
                f"{r['restart_mean_s']} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
