"""Simulation cost at scale: ElasticFlow and EDF, synthetic traces of 1k-100k jobs, 512-8,192 GPUs.

Run on demand, never in the test suite (the full grid takes hours; pick a subset):
    .venv/bin/python benchmarks/bench_scaling.py [--policies ef-accessctrl edf]
        [--jobs 1000 5000 20000 50000 100000] [--gpus 512 1024 4096 8192]
        [--cpu-cap 1200] [--gap-4096 36] [--slot 240] [--out results/benchmarks/scaling]
    .venv/bin/python benchmarks/bench_scaling.py --plot-only   # table and plot from the CSV
Traces come from the project's generator (workflow/reprise/data/generate.py: seed 0, A100
models, up to 16 GPUs a job). The load is held constant across cluster sizes: the mean gap
between arrivals is `--gap-4096` seconds on 4,096 GPUs and scales as 4,096 / GPUs (36 s on
4,096 is the issue's 50,000-job trace; 144 s on 1,024; `--fixed-gap` keeps one gap for all).
Each point is one child process with a CPU-time limit (RLIMIT_CPU) on the simulation alone; a
point that reaches it reports the jobs finished so far. Children run one at a time. Results
accumulate in <out>.csv (a point measured again replaces its row); <out>.md holds the table
and the fitted exponents (least squares of log CPU seconds on log jobs over the finished points
of each policy and cluster), <out>.png the log-log plot.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

REPO = Path(__file__).resolve().parents[1]
ART = "ElasticFlow-artifact/ElasticFlow"
POLICIES = ("ef-accessctrl", "edf")
JOBS = (1000, 5000, 20000, 50000, 100000)
GPUS = (512, 1024, 4096, 8192)
GPUS_PER_NODE = 8
FIELDS = (
    "policy",
    "gpus",
    "jobs",
    "gap_s",
    "slot",
    "status",
    "done",
    "cpu_s",
    "wall_s",
    "max_rss_mb",
    "jobs_per_cpu_s",
    "ratio",
    "load_before",
)


WARM_UP_JOBS = 30
"""Jobs simulated once before the measured run (kernels compiled or loaded)."""


class CpuCapReached(Exception):
    """The child's CPU-time limit (SIGXCPU) was reached during the simulation."""


def _on_xcpu(signum: int, frame: FrameType | None) -> None:
    raise CpuCapReached


def _jobs_done() -> int:
    """Jobs finished so far: the engine's progress bar counts them (enabled in the child)."""
    from tqdm import tqdm

    return max((int(bar.n) for bar in list(tqdm._instances)), default=0)


def gap_for(gpus: int, gap_4096: float, fixed: bool) -> float:
    """Mean inter-arrival seconds: constant load across cluster sizes unless `fixed`."""
    return gap_4096 if fixed else gap_4096 * 4096 / gpus


def _one(args: argparse.Namespace) -> None:
    """Child mode: generate the trace, simulate one policy under a CPU cap, print JSON."""
    from reprise.data.clusters import ClusterSpec
    from reprise.data.generate import GeneratorParams, write_generated_trace
    from reprise.data.profiles import load_profiles
    from reprise.data.traces import load_trace, submission_order
    from reprise.policies import get_policy
    from reprise.sim.options import SimOptions

    policy, jobs, gpus = args.one[0], int(args.one[1]), int(args.one[2])
    gap = gap_for(gpus, args.gap_4096, args.fixed_gap)
    profiles = load_profiles(args.mirror / ART / "scheduler/throughputs_A100")
    cluster = ClusterSpec(f"n{gpus // GPUS_PER_NODE}g{GPUS_PER_NODE}", 1, gpus // GPUS_PER_NODE, 8)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trace.csv"
        write_generated_trace(GeneratorParams(num_jobs=jobs, lam=gap, seed=0), profiles, path)
        trace = load_trace(path, profiles)
    simulate = get_policy(policy)
    # the first few jobs once, uncapped and unmeasured: a policy's numba kernels compile (or
    # load from their cache) on first use, which is not the simulation's cost
    simulate(
        submission_order(trace)[:WARM_UP_JOBS],
        cluster,
        profiles,
        SimOptions(slot=args.slot, gpu_type="A100"),
    )
    options = SimOptions(slot=args.slot, gpu_type="A100", show_progress=True)
    signal.signal(signal.SIGXCPU, _on_xcpu)
    used = resource.getrusage(resource.RUSAGE_SELF)
    soft = math.ceil(used.ru_utime + used.ru_stime + args.cpu_cap)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, soft + 30))
    start = time.perf_counter()
    cpu_start = time.process_time()
    out: dict[str, float | int | str] = {}
    try:
        result = simulate(trace, cluster, profiles, options)
    except CpuCapReached:
        out = {"status": "cpu cap", "done": _jobs_done(), "ratio": ""}
    else:
        out = {"status": "ok", "done": len(result.jobs), "ratio": result.ratio_published_rule}
    out["cpu_s"] = time.process_time() - cpu_start
    out["wall_s"] = time.perf_counter() - start
    out["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["gap_s"] = gap
    print(json.dumps(out), flush=True)


def _measure(args: argparse.Namespace, policy: str, jobs: int, gpus: int) -> dict[str, str]:
    cmd = [
        sys.executable,
        __file__,
        "--one",
        policy,
        str(jobs),
        str(gpus),
        "--cpu-cap",
        str(args.cpu_cap),
        "--gap-4096",
        str(args.gap_4096),
        "--slot",
        str(args.slot),
        "--mirror",
        str(args.mirror),
        *(["--fixed-gap"] if args.fixed_gap else []),
    ]
    row = dict.fromkeys(FIELDS, "")
    row.update({"policy": policy, "gpus": str(gpus), "jobs": str(jobs), "slot": str(args.slot)})
    row["load_before"] = f"{os.getloadavg()[0]:.2f}"
    with tempfile.TemporaryFile("w+") as err:
        done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=err, text=True, check=False)
        err.seek(0)
        tail = [line for line in err.read().replace("\r", "\n").splitlines() if line.strip()]
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        row["status"] = f"failed ({done.returncode}): {tail[-1] if tail else '?'}"
        return row
    res = json.loads(lines[-1])
    row.update(
        {
            "status": res["status"],
            "done": str(res["done"]),
            "cpu_s": f"{res['cpu_s']:.3f}",
            "wall_s": f"{res['wall_s']:.2f}",
            "max_rss_mb": f"{res['max_rss_mb']:.0f}",
            "jobs_per_cpu_s": f"{res['done'] / max(res['cpu_s'], 1e-9):.2f}",
            "ratio": f"{res['ratio']:.4f}" if res["ratio"] != "" else "",
            "gap_s": f"{res['gap_s']:g}",
        }
    )
    return row


def _read(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _key(row: dict[str, str]) -> tuple[str, int, int, str]:
    return (row["policy"], int(row["gpus"]), int(row["jobs"]), row["slot"])


def _write(rows: list[dict[str, str]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        ordered: list[dict[str, str]] = sorted(rows, key=_key)
        writer.writerows(ordered)


def fitted_exponent(points: list[tuple[float, float]]) -> float | None:
    """Slope of log(cpu) on log(jobs), least squares; None with fewer than two points."""
    if len(points) < 2:
        return None
    xs = [math.log(j) for j, _ in points]
    ys = [math.log(max(c, 1e-9)) for _, c in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx


def _series(rows: list[dict[str, str]]) -> dict[tuple[str, int], list[dict[str, str]]]:
    series: dict[tuple[str, int], list[dict[str, str]]] = {}
    for row in sorted(rows, key=_key):
        series.setdefault((row["policy"], int(row["gpus"])), []).append(row)
    return series


def markdown(rows: list[dict[str, str]]) -> str:
    """Per point: CPU s, jobs per CPU-second, peak RSS; per policy and cluster: the exponent."""
    lines = [
        "| policy | GPUs | jobs | mean gap s | status | jobs done | CPU s | wall s | "
        "jobs per CPU-s | peak RSS MB | load |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in sorted(rows, key=_key):
        lines.append(
            f"| {row['policy']} | {row['gpus']} | {row['jobs']} | {row['gap_s']} | "
            f"{row['status']} | {row['done']} | {row['cpu_s']} | {row['wall_s']} | "
            f"{row['jobs_per_cpu_s']} | {row['max_rss_mb']} | {row['load_before']} |"
        )
    lines += ["", "| policy | GPUs | finished points | fitted exponent (CPU s ~ jobs^k) |"]
    lines.append("|---|---|---|---|")
    for (policy, gpus), points in _series(rows).items():
        ok = [(float(r["jobs"]), float(r["cpu_s"])) for r in points if r["status"] == "ok"]
        k = fitted_exponent(ok)
        lines.append(f"| {policy} | {gpus} | {len(ok)} | {'' if k is None else f'{k:.2f}'} |")
    return "\n".join(lines)


def plot(rows: list[dict[str, str]], dest: Path) -> None:
    """Log-log CPU seconds against jobs, one line per policy and cluster; a capped point is
    drawn hollow at the cap (a lower bound)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    markers = {"ef-accessctrl": "o", "edf": "s"}
    for (policy, gpus), points in _series(rows).items():
        ok = [(float(r["jobs"]), float(r["cpu_s"])) for r in points if r["status"] == "ok"]
        capped = [(float(r["jobs"]), float(r["cpu_s"])) for r in points if r["status"] == "cpu cap"]
        k = fitted_exponent(ok)
        label = f"{policy}, {gpus} GPUs" + ("" if k is None else f" (k={k:.2f})")
        marker = markers.get(policy, "^")
        colour = None
        if ok:
            (line,) = ax.plot(*zip(*ok, strict=True), marker=marker, label=label)
            colour = line.get_color()
        if capped:
            ax.scatter(
                *zip(*capped, strict=True), marker=marker, facecolors="none", edgecolors=colour
            )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("jobs in the trace")
    ax.set_ylabel("CPU seconds (simulation)")
    ax.set_title("Simulation cost, synthetic traces (hollow: stopped at the CPU cap)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(dest, dpi=120)
    plt.close(fig)


def report(rows: list[dict[str, str]], out: Path) -> None:
    text = markdown(rows)
    out.with_suffix(".md").write_text(text + "\n")
    if rows:
        plot(rows, out.with_suffix(".png"))
    print(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--policies", nargs="+", default=list(POLICIES))
    parser.add_argument("--jobs", nargs="+", type=int, default=list(JOBS))
    parser.add_argument("--gpus", nargs="+", type=int, default=list(GPUS))
    parser.add_argument("--cpu-cap", type=float, default=1200.0, help="CPU seconds per point")
    parser.add_argument("--gap-4096", type=float, default=36.0, help="mean gap on 4,096 GPUs")
    parser.add_argument("--fixed-gap", action="store_true", help="same gap on every cluster")
    parser.add_argument("--slot", type=int, default=240)
    parser.add_argument("--mirror", type=Path, default=REPO.parent / "shared" / "upstream")
    parser.add_argument("--out", type=Path, default=REPO / "results/benchmarks/scaling")
    parser.add_argument("--plot-only", action="store_true", help="table and plot from the CSV")
    parser.add_argument(
        "--skip-above",
        action="store_true",
        help="skip a point once a smaller trace of the same policy and cluster hit the cap",
    )
    parser.add_argument("--one", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        _one(args)
        return
    csv_path = args.out.with_suffix(".csv")
    rows = _read(csv_path)
    if not args.plot_only:
        capped: set[tuple[str, int]] = set()
        for policy in args.policies:
            for gpus in args.gpus:
                for jobs in sorted(args.jobs):
                    if args.skip_above and (policy, gpus) in capped:
                        continue
                    row = _measure(args, policy, jobs, gpus)
                    if row["status"] != "ok":
                        capped.add((policy, gpus))
                    rows = [r for r in rows if _key(r) != _key(row)] + [row]
                    _write(rows, csv_path)
                    print(" ".join(f"{k}={row[k]}" for k in FIELDS), flush=True)
    report(rows, args.out)


if __name__ == "__main__":
    main()
