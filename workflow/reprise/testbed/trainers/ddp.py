"""One data-parallel training run: process group, DDP model, timed steps, rank 0's result."""

from __future__ import annotations

import contextlib
import hashlib
import platform
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch._C._distributed_c10d import HashStore
from torch.nn.parallel import DistributedDataParallel

from reprise.errors import TestbedError
from reprise.testbed.trainers.checkpoint import load_checkpoint, save_checkpoint
from reprise.testbed.trainers.env import DistEnv
from reprise.testbed.trainers.zoo import Batch, Workload, workload

# Distinct synthetic batches each rank cycles through: generated before timing, so the timed loop
# measures training, not the random number generator.
DISTINCT_BATCHES = 2


class Stopped(Exception):
    """A stop was requested (SIGTERM/SIGINT) while training."""


@dataclass(frozen=True)
class TrainConfig:
    model: str
    size: str
    global_batch: int
    warmup: int
    iterations: int
    backend: str  # auto | gloo | nccl
    threads: int
    seed: int
    timeout_s: float
    checkpoint: Path | None = None
    resume: Path | None = None


def resolve_backend(requested: str) -> str:
    """`auto` is nccl where CUDA is usable, gloo elsewhere; nccl without CUDA is refused."""
    cuda = torch.cuda.is_available()
    if requested == "auto":
        return "nccl" if cuda else "gloo"
    if requested == "nccl" and not cuda:
        raise TestbedError(
            "--backend nccl needs a CUDA GPU and none is visible: use --backend gloo"
        )
    return requested


def train_step(
    model: nn.Module, opt: torch.optim.Optimizer, work: Workload, batch: Batch
) -> Tensor:
    """One optimisation step; returns the loss without synchronising the device."""
    opt.zero_grad(set_to_none=True)
    loss = work.loss(model(batch.inputs), batch)
    loss.backward()  # type: ignore[no-untyped-call]
    if work.clip_grad_norm is not None:
        nn.utils.clip_grad_norm_(model.parameters(), work.clip_grad_norm)
    opt.step()
    return loss.detach()


def param_digest(model: nn.Module) -> str:
    """sha256 of every parameter's bytes, in module order: equal digests mean identical replicas."""
    h = hashlib.sha256()
    for p in model.parameters():
        h.update(p.detach().to("cpu").contiguous().numpy().tobytes())
    return h.hexdigest()


def _init_group(env: DistEnv, backend: str, timeout: timedelta) -> None:
    if env.master_addr is None:
        # A lone rank needs no rendezvous: an in-process store stands in for MASTER_ADDR/PORT.
        dist.init_process_group(backend, store=HashStore(), rank=0, world_size=1, timeout=timeout)
    else:
        init = f"tcp://{env.master_addr}:{env.master_port}"
        dist.init_process_group(
            backend, init_method=init, rank=env.rank, world_size=env.world_size, timeout=timeout
        )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _barrier(device: torch.device) -> None:
    # NCCL needs to know the GPU a barrier runs on; gloo does not take device ids.
    if device.type == "cuda":
        dist.barrier(device_ids=[device.index])
    else:
        dist.barrier()


def _log(env: DistEnv, message: str) -> None:
    with contextlib.suppress(OSError):  # a log reader that went away must not end the training
        print(f"[trainer rank {env.rank}/{env.world_size}] {message}", file=sys.stderr, flush=True)


def _record(
    cfg: TrainConfig,
    env: DistEnv,
    backend: str,
    device: torch.device,
    start: int,
    timing: tuple[float, float],
    losses: list[Tensor],
    gathered: list[Any],
) -> dict[str, Any]:
    """Rank 0's result: what ran, where, how fast, and every replica's parameter digest."""
    seconds, cpu_seconds = timing
    return {
        "model": cfg.model,
        "size": cfg.size,
        "global_batch": cfg.global_batch,
        "local_batch": cfg.global_batch // env.world_size,
        "world_size": env.world_size,
        "backend": backend,
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "threads": cfg.threads,
        "seed": cfg.seed,
        "warmup": cfg.warmup,
        "iterations": cfg.iterations,
        "start_iteration": start,
        "end_iteration": start + cfg.warmup + cfg.iterations,
        "seconds": seconds,
        "cpu_seconds_rank0": cpu_seconds,
        "iterations_per_s": cfg.iterations / seconds,
        "samples_per_s": cfg.iterations * cfg.global_batch / seconds,
        "loss_first": float(losses[0].item()),
        "loss_last": float(losses[-1].item()),
        "hosts": [g["host"] for g in gathered],
        "param_digests": [g["digest"] for g in gathered],
        "checkpoint": None if cfg.checkpoint is None else str(cfg.checkpoint),
        "resumed_from": None if cfg.resume is None else str(cfg.resume),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
    }


def train(
    cfg: TrainConfig,
    env: DistEnv,
    stop: threading.Event,
    report: Callable[[dict[str, Any]], None],
) -> dict[str, Any] | None:
    """Run warmup + timed iterations; rank 0 hands the result record to `report` and returns it.

    Raises Stopped when `stop` is set between steps. The process group is always destroyed.
    """
    torch.set_num_threads(cfg.threads)
    backend = resolve_backend(cfg.backend)
    device = torch.device("cuda", env.local_rank) if backend == "nccl" else torch.device("cpu")
    if device.type == "cuda":
        if env.local_rank >= torch.cuda.device_count():
            raise TestbedError(
                f"LOCAL_RANK={env.local_rank} but this node has {torch.cuda.device_count()} "
                "GPU(s): start at most one rank per GPU"
            )
        torch.cuda.set_device(device)
    work = workload(cfg.model, cfg.size)
    local_batch = cfg.global_batch // env.world_size
    _init_group(env, backend, timedelta(seconds=cfg.timeout_s))
    try:
        torch.manual_seed(
            cfg.seed
        )  # same initial weights everywhere (DDP also broadcasts rank 0's)
        module = work.build().to(device)
        optimizer = work.optimizer(module.parameters())
        start = 0
        if cfg.resume is not None:
            start = load_checkpoint(cfg.resume, module, optimizer, cfg.model, cfg.size).iteration
            _log(env, f"resumed from {cfg.resume} after iteration {start}")
        ids = [env.local_rank] if device.type == "cuda" else None
        # A lone rank has no gradients to average: DDP's hooks and its one-rank all-reduce would
        # only add per-step cost to what is measured (the group still serves the result's gather).
        model: nn.Module = (
            DistributedDataParallel(module, device_ids=ids) if env.world_size > 1 else module
        )
        model.train()
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + env.rank + 1)
        batches = [work.sample(local_batch, gen).to(device) for _ in range(DISTINCT_BATCHES)]

        def steps(count: int, first: int) -> list[Tensor]:
            losses = []
            for i in range(count):
                if stop.is_set():
                    raise Stopped(f"stopped at iteration {start + first + i}")
                losses.append(
                    train_step(model, optimizer, work, batches[(first + i) % len(batches)])
                )
            return losses

        steps(cfg.warmup, 0)
        _barrier(device)
        _sync(device)
        _log(env, f"warmup done; timing {cfg.iterations} iterations")
        t0, c0 = time.perf_counter(), time.process_time()
        losses = steps(cfg.iterations, cfg.warmup)
        _sync(device)
        # CPU time of this process (all its threads): steadier than wall time on a shared machine.
        cpu_seconds = time.process_time() - c0
        elapsed = torch.tensor([time.perf_counter() - t0], dtype=torch.float64, device=device)
        # The job is as slow as its slowest rank.
        dist.all_reduce(elapsed, op=dist.ReduceOp.MAX)
        seconds = float(elapsed.item())
        done = start + cfg.warmup + cfg.iterations
        if cfg.checkpoint is not None and env.rank == 0:
            save_checkpoint(cfg.checkpoint, module, optimizer, done, cfg.model, cfg.size)
        info = {"host": socket.gethostname(), "digest": param_digest(module)}
        gathered: list[Any] = [None] * env.world_size
        dist.all_gather_object(gathered, info)
        result = None
        if env.rank == 0:
            timing = (seconds, cpu_seconds)
            result = _record(cfg, env, backend, device, start, timing, losses, gathered)
            report(result)
        # Nobody tears the group down while a peer may still be reading its last collective.
        _barrier(device)
        return result
    finally:
        dist.destroy_process_group()
