"""Per-iteration overhead of our DDP trainer at world size 1 against a plain PyTorch training loop.

Run on demand, never in the test suite:
    .venv/bin/python benchmarks/bench_trainer_overhead.py [--models resnet50 bert] [--size tiny]
        [--global-batch 16] [--iterations 40] [--warmup 5] [--repeats 5] [--threads 1]
Both sides run as fresh processes, alternately, on the same model, batch, seed and thread count; the
plain side is `python benchmarks/bench_trainer_overhead.py plain ...` (no process group, no DDP).
Writes results/benchmarks/trainer_overhead.csv and prints a Markdown table. Target: under 5 %.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIELDS = (
    "model",
    "size",
    "global_batch",
    "threads",
    "iterations",
    "repeats",
    "plain_wall_ms",
    "ours_wall_ms",
    "overhead_wall_pct",
    "plain_cpu_ms",
    "ours_cpu_ms",
    "overhead_cpu_pct",
    "load_1min",
)


def plain_loop(
    model: str, size: str, batch: int, warmup: int, iterations: int, threads: int
) -> tuple[float, float]:
    """(wall, CPU) seconds of `iterations` textbook steps: zero_grad, forward, backward, step."""
    import torch

    from reprise.testbed.trainers.ddp import DISTINCT_BATCHES
    from reprise.testbed.trainers.zoo import workload

    torch.set_num_threads(threads)
    work = workload(model, size)
    torch.manual_seed(0)
    net = work.build()
    net.train()
    opt = work.optimizer(net.parameters())
    gen = torch.Generator().manual_seed(1)
    batches = [work.sample(batch, gen) for _ in range(DISTINCT_BATCHES)]
    t0 = c0 = 0.0
    for i in range(warmup + iterations):
        if i == warmup:
            t0, c0 = time.perf_counter(), time.process_time()
        b = batches[i % len(batches)]
        opt.zero_grad(set_to_none=True)
        loss = work.loss(net(b.inputs), b)
        loss.backward()
        if work.clip_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(net.parameters(), work.clip_grad_norm)
        opt.step()
    return time.perf_counter() - t0, time.process_time() - c0


def _clean_env() -> dict[str, str]:
    drop = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
    return {k: v for k, v in os.environ.items() if k not in drop}


def _run_plain(args: argparse.Namespace, model: str) -> tuple[float, float]:
    cmd = [sys.executable, __file__, "plain", "--model", model, "--size", args.size]
    cmd += ["--global-batch", str(args.global_batch), "--iterations", str(args.iterations)]
    cmd += ["--warmup", str(args.warmup), "--threads", str(args.threads)]
    out = subprocess.run(cmd, env=_clean_env(), capture_output=True, text=True, check=True)
    got = json.loads(out.stdout)
    return got["seconds"] / args.iterations, got["cpu_seconds"] / args.iterations


def _run_ours(args: argparse.Namespace, model: str, tmp: Path) -> tuple[float, float]:
    result = tmp / f"{model}.json"
    cmd = [sys.executable, "-m", "reprise.testbed.trainers.run", "--model", model]
    cmd += ["--size", args.size, "--global-batch", str(args.global_batch)]
    cmd += ["--iterations", str(args.iterations), "--warmup", str(args.warmup)]
    cmd += ["--threads", str(args.threads), "--out", str(result)]
    subprocess.run(cmd, env=_clean_env(), capture_output=True, text=True, check=True)
    got = json.loads(result.read_text())
    return got["seconds"] / args.iterations, got["cpu_seconds_rank0"] / args.iterations


def _row(args: argparse.Namespace, model: str, plain: list[tuple[float, float]],
         ours: list[tuple[float, float]]) -> dict[str, object]:  # fmt: skip
    # Minimum wall time: the run least disturbed by other load. CPU time: the median.
    p_wall, o_wall = min(w for w, _ in plain), min(w for w, _ in ours)
    p_cpu = statistics.median(c for _, c in plain)
    o_cpu = statistics.median(c for _, c in ours)
    return {
        "model": model,
        "size": args.size,
        "global_batch": args.global_batch,
        "threads": args.threads,
        "iterations": args.iterations,
        "repeats": args.repeats,
        "plain_wall_ms": round(1e3 * p_wall, 3),
        "ours_wall_ms": round(1e3 * o_wall, 3),
        "overhead_wall_pct": round(100 * (o_wall / p_wall - 1), 2),
        "plain_cpu_ms": round(1e3 * p_cpu, 3),
        "ours_cpu_ms": round(1e3 * o_cpu, 3),
        "overhead_cpu_pct": round(100 * (o_cpu / p_cpu - 1), 2),
        "load_1min": round(os.getloadavg()[0], 2),
    }


def compare(args: argparse.Namespace) -> list[dict[str, object]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmpdir:
        for model in args.models:
            plain, ours = [], []
            for _ in range(args.repeats):  # alternate, so drifting machine load hits both sides
                plain.append(_run_plain(args, model))
                ours.append(_run_ours(args, model, Path(tmpdir)))
            rows.append(_row(args, model, plain, ours))
            print(f"{model}: plain {plain}, ours {ours} (wall, cpu) s/it", file=sys.stderr)
    return rows


def main() -> None:
    from reprise.testbed.trainers.names import MODELS, SIZES

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", nargs="?", default="compare", choices=("compare", "plain"))
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--model", choices=MODELS, help="plain mode: the one model to time")
    parser.add_argument("--size", default="tiny", choices=SIZES)
    parser.add_argument("--global-batch", type=int, default=16)
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--out", type=Path, default=REPO / "results/benchmarks/trainer_overhead.csv"
    )
    args = parser.parse_args()
    if args.mode == "plain":
        if args.model is None:
            parser.error("plain mode needs --model")
        wall, cpu = plain_loop(
            args.model, args.size, args.global_batch, args.warmup, args.iterations, args.threads
        )
        print(json.dumps({"seconds": wall, "cpu_seconds": cpu}))
        return
    rows = compare(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    print("| model | plain ms/it | ours ms/it | overhead | plain CPU ms | ours CPU ms | overhead |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['plain_wall_ms']} | {r['ours_wall_ms']} "
            f"| {r['overhead_wall_pct']} % | {r['plain_cpu_ms']} | {r['ours_cpu_ms']} "
            f"| {r['overhead_cpu_pct']} % |"
        )
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
