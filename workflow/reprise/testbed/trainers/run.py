"""Command line of the data-parallel trainer: `python -m reprise.testbed.trainers.run --help`.

Every rank runs this with the torch.distributed environment set (RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR, MASTER_PORT; a lone rank needs none of them). Rank 0 writes the result as JSON.
Exit status: 0 done, 2 bad arguments or environment, 1 the run failed, 143 / 130 stopped by
SIGTERM / SIGINT.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from reprise.atomic import write_text_atomic
from reprise.errors import ReproError, TestbedError
from reprise.testbed.trainers.env import read_env
from reprise.testbed.trainers.names import MODELS, SIZES
from reprise.testbed.trainers.netif import bind_collectives

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# After a stop signal the trainer gets this long to leave cleanly (it checks between steps); a
# step stuck in a collective whose peer is gone is cut short by exiting the process.
STOP_GRACE_S = 5.0


def _count(minimum: int) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below the minimum {minimum}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m reprise.testbed.trainers.run",
        description="Data-parallel training of one paper model on synthetic data; "
        "rank 0 writes iterations/s and samples/s as JSON.",
    )
    p.add_argument("--model", required=True, choices=MODELS, help="upstream profile name")
    p.add_argument(
        "--size", default="tiny", choices=SIZES, help="tiny (CPU tests) or full (default: tiny)"
    )
    p.add_argument(
        "--global-batch", type=_count(1), required=True, help="samples per step over all ranks"
    )
    p.add_argument("--iterations", type=_count(1), default=20, help="timed steps (default: 20)")
    p.add_argument("--warmup", type=_count(0), default=3, help="untimed steps first (default: 3)")
    p.add_argument(
        "--out", type=Path, required=True, help="result JSON (written by rank 0, atomically)"
    )
    p.add_argument(
        "--backend",
        default="auto",
        choices=("auto", "gloo", "nccl"),
        help="auto: nccl with CUDA, else gloo (default: auto)",
    )
    p.add_argument(
        "--threads", type=_count(1), default=1, help="torch intra-op threads (default: 1)"
    )
    p.add_argument("--seed", type=_count(0), default=0, help="weights and data seed (default: 0)")
    p.add_argument(
        "--timeout",
        type=_count(1),
        default=300,
        help="seconds to wait for peers at start and per step (default: 300)",
    )
    p.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="rank 0 saves model and optimizer state here at the end",
    )
    p.add_argument(
        "--resume",
        type=Path,
        default=None,
        help="every rank loads this checkpoint first, continuing its count",
    )
    return p


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write `data` to `path` via a temporary file and a rename: readers see all or nothing."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def _writable_dir(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK)


def _say(message: str) -> None:
    """One line to stderr; a reader that went away (a killed parent) must not stop the exit."""
    with contextlib.suppress(OSError):
        print(message, file=sys.stderr, flush=True)


def _watch_signals(stop: threading.Event, received: list[int]) -> None:
    """Turn SIGTERM/SIGINT into `stop`; exit outright if the trainer does not leave in time.

    Signals are blocked in every thread and taken here with sigwait, so a main thread blocked in a
    C++ collective (where a Python handler would never run) cannot delay the stop.
    """
    signum = signal.sigwait(set(STOP_SIGNALS))
    received.append(signum)
    # Stop and arm the deadline first: a parent that died may have left stderr a broken pipe.
    stop.set()
    timer = threading.Timer(STOP_GRACE_S, os._exit, (128 + signum,))
    timer.daemon = True
    timer.start()
    _say(f"[trainer] {signal.Signals(signum).name} received; stopping")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        env = read_env(os.environ)
    except TestbedError as exc:
        parser.error(str(exc))
    bind_collectives(os.environ)
    if args.global_batch % env.world_size:
        parser.error(
            f"--global-batch {args.global_batch} does not split over WORLD_SIZE={env.world_size} "
            f"ranks: use a multiple of {env.world_size}"
        )
    if args.resume is not None and not args.resume.is_file():
        parser.error(f"--resume {args.resume}: no such file")
    if env.rank == 0:  # fail now, not after training, when the result cannot be written
        for flag, path in (("--out", args.out), ("--checkpoint", args.checkpoint)):
            if path is not None and not _writable_dir(path.parent):
                parser.error(f"{flag} {path}: cannot create or write to {path.parent}")

    # Block before torch starts its threads, so they all inherit the mask (see _watch_signals).
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    stop = threading.Event()
    received: list[int] = []
    threading.Thread(target=_watch_signals, args=(stop, received), daemon=True).start()

    from reprise.testbed.trainers.ddp import Stopped, TrainConfig, resolve_backend, train

    try:
        backend = resolve_backend(args.backend)
    except TestbedError as exc:
        parser.error(str(exc))

    cfg = TrainConfig(
        model=args.model,
        size=args.size,
        global_batch=args.global_batch,
        warmup=args.warmup,
        iterations=args.iterations,
        backend=backend,
        threads=args.threads,
        seed=args.seed,
        timeout_s=args.timeout,
        checkpoint=args.checkpoint,
        resume=args.resume,
    )
    try:
        result = train(cfg, env, stop, partial(write_json_atomic, args.out))
    except Stopped as exc:
        _say(f"[trainer rank {env.rank}] {exc}; no result written")
        return 128 + (received[0] if received else signal.SIGTERM)
    except ReproError as exc:
        _say(f"[trainer rank {env.rank}] error: {exc}")
        return 1
    except RuntimeError as exc:
        if received:  # a peer stopped first and tore the collective down: still a requested stop
            _say(f"[trainer rank {env.rank}] stopped ({exc})")
            return 128 + received[0]
        # torch.distributed reports a vanished or failed peer as a RuntimeError subclass.
        _say(
            f"[trainer rank {env.rank}] training failed (a peer may have died or timed out): {exc}"
        )
        return 1
    if result is not None:
        _say(
            f"[trainer] {args.model} ({args.size}) x{env.world_size}: "
            f"{result['iterations_per_s']:.3f} it/s, {result['samples_per_s']:.1f} samples/s "
            f"-> {args.out}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
