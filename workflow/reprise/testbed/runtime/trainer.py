"""The trainer of one slot (a GPU, or a CPU slot): it stays up between jobs, runs one rank of a job
when told, stops every rank of that job at the same iteration, saves the state (rank 0) and goes
back to idle.

Started by its node agent (`python -m reprise.testbed.runtime.trainer --slot N`), one per slot,
as upstream keeps one trainer per GPU: a restart pays for building the model and meeting the
peers, not for starting Python and importing torch. Commands arrive as JSON lines on stdin
(`run`, `stop`); reports leave as JSON lines on the descriptor named by REPRISE_REPORT_FD. The end
of stdin means the agent is gone: the process leaves at once. A rank that fails (a peer died,
a timeout) reports why and exits with status 1, so the agent starts a fresh process for the slot.
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import gc
import json
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from reprise.errors import ReproError, TestbedError
from reprise.testbed.trainers.env import DistEnv, read_env
from reprise.testbed.trainers.netif import bind_collectives

REPORT_FD_ENV = "REPRISE_REPORT_FD"
AGENT_GONE_STATUS = 3
FAILED_STATUS = 1
TEARDOWN_S = 5.0
"""Longest a process group's teardown may take before the process ends itself."""


class Reporter:
    """JSON lines to the agent; a reader that went away must not stop the training."""

    def __init__(self, fd: int | None, slot: int) -> None:
        self.stream = os.fdopen(fd, "w", buffering=1) if fd is not None else None
        self.slot = slot
        self.lock = threading.Lock()

    def __call__(self, kind: str, **fields: Any) -> None:
        line = json.dumps({"kind": kind, "slot": self.slot, "time": time.time(), **fields})
        with self.lock:
            if self.stream is None:
                print(line, file=sys.stderr, flush=True)
                return
            with contextlib.suppress(OSError, ValueError):
                self.stream.write(line + "\n")


@dataclass
class Run:
    """One rank of one job, as the agent asked for it; `stop` may be set before it begins."""

    job: str
    generation: int
    env: DistEnv
    model: str
    size: str
    global_batch: int
    seed: int
    threads: int
    backend: str
    stable_after: int
    progress_every_s: float
    timeout_s: float
    resume: Path | None
    max_iterations: int
    stop: threading.Event = field(default_factory=threading.Event)
    checkpoint: Path | None = None
    received: float = field(default_factory=time.monotonic)

    @classmethod
    def from_message(cls, m: dict[str, Any]) -> Run:
        env = read_env(
            {
                "RANK": str(m["rank"]),
                "WORLD_SIZE": str(m["world_size"]),
                "MASTER_ADDR": str(m["master_address"]),
                "MASTER_PORT": str(m["master_port"]),
            }
        )
        if int(m["global_batch"]) % env.world_size:
            raise TestbedError(
                f"job {m['job']}: global batch {m['global_batch']} does not split over "
                f"{env.world_size} ranks"
            )
        resume = m.get("resume") or None
        return cls(
            job=str(m["job"]),
            generation=int(m["generation"]),
            env=env,
            model=str(m["model"]),
            size=str(m["size"]),
            global_batch=int(m["global_batch"]),
            seed=int(m.get("seed", 0)),
            threads=int(m.get("threads", 1)),
            backend=str(m.get("backend") or "auto"),
            stable_after=max(1, int(m.get("stable_after", 1))),
            progress_every_s=float(m.get("progress_every_s", 2.0)),
            timeout_s=float(m.get("timeout_s", 120.0)),
            resume=Path(resume) if resume and env.rank == 0 else None,
            max_iterations=int(m.get("max_iterations", 0)),
        )


class Inbox:
    """Reads stdin on its own thread: runs queue up for the main thread, stops reach their run
    at once (the main thread is busy training then)."""

    def __init__(self, report: Reporter) -> None:
        self.report = report
        self.runs: queue.Queue[Run] = queue.Queue()
        self.known: dict[str, Run] = {}
        self.lock = threading.Lock()

    def read(self) -> None:
        for line in sys.stdin:
            try:
                self.handle(json.loads(line))
            except (ValueError, KeyError, TypeError, ReproError) as exc:
                self.report("error", detail=f"bad command {line.strip()!r}: {exc}")
        # stdin closed: the agent died (or was killed); nobody would read what happens next
        _log("[trainer] agent gone; leaving")
        os._exit(AGENT_GONE_STATUS)

    def handle(self, message: dict[str, Any]) -> None:
        cmd = message.get("cmd")
        if cmd == "run":
            run = Run.from_message(message)
            with self.lock:
                self.known[run.job] = run
            self.runs.put(run)
        elif cmd == "stop":
            with self.lock:
                target = self.known.get(str(message["job"]))
            if target is None:
                return
            path = message.get("checkpoint")
            target.checkpoint = Path(path) if path else None
            self.report(
                "command",
                job=target.job,
                generation=target.generation,
                detail="stop",
                sent_at=float(message.get("sent_at", 0.0)),
            )
            target.stop.set()
        else:
            raise ValueError(f"unknown command {cmd!r}")

    def done(self, run: Run) -> None:
        with self.lock:
            if self.known.get(run.job) is run:
                del self.known[run.job]


def _restore(run: Run, module: Any, optimizer: Any) -> int:
    """Rank 0 reads the checkpoint; the others get its optimizer state and iteration through
    the process group (the weights follow when DDP broadcasts rank 0's parameters)."""
    import torch.distributed as dist

    from reprise.testbed.trainers.checkpoint import load_checkpoint

    start = 0
    state: Any = None
    if run.env.rank == 0 and run.resume is not None:
        start = load_checkpoint(run.resume, module, optimizer, run.model, run.size).iteration
        state = optimizer.state_dict()
    if run.env.world_size > 1:
        box: list[Any] = [start, state]
        dist.broadcast_object_list(box, src=0)
        start = int(box[0])
        if run.env.rank != 0 and box[1] is not None:
            optimizer.load_state_dict(box[1])
    return start


def train(run: Run, report: Reporter) -> int:
    """Train until rank 0 says stop (or `max_iterations`); returns the iterations done in all."""
    import torch
    import torch.distributed as dist
    from torch._C._distributed_c10d import HashStore
    from torch.nn.parallel import DistributedDataParallel

    from reprise.testbed.trainers.checkpoint import save_checkpoint
    from reprise.testbed.trainers.ddp import resolve_backend, train_step
    from reprise.testbed.trainers.zoo import workload

    env = run.env
    # where a restart's seconds go, reported with "stable" (seconds since the run was received)
    phases: dict[str, float] = {"queued": time.monotonic() - run.received}
    mark = time.monotonic()

    def phase(name: str) -> None:
        nonlocal mark
        now = time.monotonic()
        phases[name] = now - mark
        mark = now

    torch.set_num_threads(run.threads)
    backend = resolve_backend(run.backend)
    # the agent shows each slot's trainer one GPU (CUDA_VISIBLE_DEVICES): device 0 here
    device = torch.device("cuda", 0) if backend == "nccl" else torch.device("cpu")
    work = workload(run.model, run.size)
    timeout = timedelta(seconds=run.timeout_s)
    if env.world_size == 1:
        dist.init_process_group(backend, store=HashStore(), rank=0, world_size=1, timeout=timeout)
    else:
        dist.init_process_group(
            backend,
            init_method=f"tcp://{env.master_addr}:{env.master_port}",
            rank=env.rank,
            world_size=env.world_size,
            timeout=timeout,
        )
    phase("rendezvous")
    # what holds the group (DDP's reducer, the model its hooks sit on) and the tensors its
    # collectives used: released in that order, in `finally`
    model: Any = None
    module: Any = None
    optimizer: Any = None
    used: list[Any] = []
    try:
        torch.manual_seed(run.seed)
        module = work.build().to(device)
        optimizer = work.optimizer(module.parameters())
        phase("build")
        start = _restore(run, module, optimizer)
        phase("restore")
        ids = [0] if device.type == "cuda" else None
        model = DistributedDataParallel(module, device_ids=ids) if env.world_size > 1 else module
        model.train()
        # each rank its own data; a restart does not replay the batches of the last run
        gen = torch.Generator().manual_seed((run.seed * 100_003 + env.rank + 1) * 7919 + start)
        local = run.global_batch // env.world_size
        batches = [work.sample(local, gen).to(device) for _ in range(2)]
        phase("ddp_and_data")
        flag = torch.zeros(1, dtype=torch.int32, device=device)
        used += [flag, batches]
        iteration, done_here = start, 0
        last_t, last_it = time.monotonic(), iteration
        while True:
            # rank 0 decides for everyone, so every rank leaves after the same iteration
            if env.world_size > 1:
                flag.fill_(1 if env.rank == 0 and run.stop.is_set() else 0)
                dist.broadcast(flag, 0)
                stopping = bool(flag.item())
            else:
                stopping = run.stop.is_set()
            if stopping or (run.max_iterations and iteration >= run.max_iterations):
                break
            loss = train_step(model, optimizer, work, batches[iteration % len(batches)])
            iteration += 1
            done_here += 1
            if env.rank != 0:
                continue
            if done_here == run.stable_after:
                loss.item()  # the step is really done (a GPU runs ahead of Python)
                phase("first_steps")
                report(
                    "stable",
                    job=run.job,
                    generation=run.generation,
                    iteration=iteration,
                    world_size=env.world_size,
                    phases={k: round(v, 4) for k, v in phases.items()},
                )
                last_t, last_it = time.monotonic(), iteration
            now = time.monotonic()
            if done_here > run.stable_after and now - last_t >= run.progress_every_s:
                report(
                    "progress",
                    job=run.job,
                    generation=run.generation,
                    iteration=iteration,
                    iterations_per_s=(iteration - last_it) / (now - last_t),
                )
                last_t, last_it = now, iteration
        if env.rank == 0 and run.checkpoint is not None:
            began = time.monotonic()
            save_checkpoint(run.checkpoint, module, optimizer, iteration, run.model, run.size)
            report(
                "checkpointed",
                job=run.job,
                generation=run.generation,
                iteration=iteration,
                path=str(run.checkpoint),
                bytes=run.checkpoint.stat().st_size,
                seconds=time.monotonic() - began,
            )
        # nobody tears the group down while a peer may still read the last broadcast
        if env.world_size > 1:
            dist.barrier()
        # the rank is done before the teardown: a stop never waits for it
        report("finished", job=run.job, generation=run.generation, iteration=iteration)
        return iteration
    finally:
        # The group's destructor joins gloo's worker threads while holding the GIL; a worker
        # still dropping a finished work whose tensor has no Python owner any more waits for
        # that GIL: a deadlock (seen with gdb, about one multi-rank stop in 30). Tensors the
        # collectives used are released after the group, which makes it rare, and
        # faulthandler's watchdog (a thread that needs no GIL) ends a process caught in it:
        # the agent replaces it and hands the next run to the replacement.
        faulthandler.dump_traceback_later(TEARDOWN_S, exit=True)
        dist.destroy_process_group()
        model = module = optimizer = None
        gc.collect()
        used.clear()
        faulthandler.cancel_dump_traceback_later()


def _log(message: str) -> None:
    """One line to the agent's log (the trainer's stderr); a closed log must not stop it."""
    with contextlib.suppress(OSError):
        print(message, file=sys.stderr, flush=True)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m reprise.testbed.runtime.trainer",
        description="The trainer of one slot (started by the node agent; commands on stdin).",
    )
    p.add_argument("--slot", type=int, required=True, help="the node slot this trainer serves")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # the agent asks for every thread's stack (SIGUSR1) before killing a rank that hangs
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    bind_collectives(os.environ)
    fd_text = os.environ.get(REPORT_FD_ENV)
    report = Reporter(int(fd_text) if fd_text else None, args.slot)
    inbox = Inbox(report)
    threading.Thread(target=inbox.read, daemon=True).start()
    import torch  # noqa: F401  (imported once, before the first job: that is this process's point)

    while True:
        report("idle")  # torch imported, or the last job's group torn down: ready for a run
        run = inbox.runs.get()
        say = f"[trainer slot {args.slot}] {run.job} g{run.generation} rank {run.env.rank}"
        _log(f"{say}/{run.env.world_size}: starting")
        try:
            iteration = train(run, report)
        except (ReproError, RuntimeError) as exc:
            # torch.distributed reports a vanished peer or a timeout as a RuntimeError subclass;
            # the process group may be unusable now, so a fresh process takes the slot
            report("failed", job=run.job, generation=run.generation, detail=str(exc))
            _log(f"{say}: failed: {exc}")
            return FAILED_STATUS
        inbox.done(run)
        _log(f"{say}: stopped after iteration {iteration}")


if __name__ == "__main__":
    sys.exit(main())
