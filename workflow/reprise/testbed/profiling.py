"""Throughput profiling on a testbed: each model at each global batch size and worker count.

One measurement is one data-parallel job of real trainers (one process per worker) placed on the
cluster's slots; rank 0 writes iterations/s. The results become upstream-format profile CSVs
(rows: global batch size, columns: workers) and a tidy table.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reprise.errors import TestbedError
from reprise.testbed.lifecycle import TestbedRun
from reprise.testbed.nodes import Launched, Node
from reprise.testbed.placement import place_ranks

TRAINER_MODULE = "reprise.testbed.trainers.run"


@dataclass(frozen=True)
class ProfileSettings:
    models: tuple[str, ...]
    size: str = "tiny"
    workers: tuple[int, ...] = (1, 2, 4)
    global_batch_sizes: tuple[int, ...] = (16,)
    warmup: int = 2
    iterations: int = 10
    threads: int = 1
    placement: str = "spread"
    timeout_s: float = 600.0
    master_port: int = 29500
    backend: str = "auto"


@dataclass(frozen=True)
class Measurement:
    model: str
    size: str
    global_batch: int
    workers: int
    iterations_per_s: float
    samples_per_s: float
    seconds: float
    wall_s: float
    started_s: float
    nodes: tuple[str, ...]
    backend: str
    device: str


def trainer_argv(
    node: Node, settings: ProfileSettings, model: str, batch: int, out: str
) -> list[str]:
    return [
        node.python,
        "-m",
        TRAINER_MODULE,
        "--model",
        model,
        "--size",
        settings.size,
        "--global-batch",
        str(batch),
        "--warmup",
        str(settings.warmup),
        "--iterations",
        str(settings.iterations),
        "--threads",
        str(settings.threads),
        "--backend",
        settings.backend,
        "--out",
        out,
    ]


def measure(
    run: TestbedRun,
    settings: ProfileSettings,
    model: str,
    batch: int,
    workers: int,
    scratch: Path,
    port: int,
    run_started: float,
) -> Measurement:
    """Run one data-parallel job to its end and read rank 0's result."""
    ranks = place_ranks(run.nodes, workers, settings.placement)
    master = ranks[0].node
    tag = f"{model}-b{batch}-w{workers}"
    remote_out = f"{master.workdir}/runs/{run.run_id}/{tag}.json"
    procs: list[Launched] = []
    started = time.monotonic()
    started_s = time.time() - run_started
    try:
        for r in ranks:
            env = {
                "RANK": str(r.rank),
                "LOCAL_RANK": str(r.local_rank),
                "WORLD_SIZE": str(workers),
                "LOCAL_WORLD_SIZE": str(sum(1 for x in ranks if x.node.name == r.node.name)),
                "MASTER_ADDR": master.peer_address,
                "MASTER_PORT": str(port),
                "OMP_NUM_THREADS": str(settings.threads),
                # the rank binds its collectives to the interface holding this address
                "REPRISE_NODE_ADDRESS": r.node.peer_address,
            }
            argv = trainer_argv(r.node, settings, model, batch, remote_out)
            procs.append(run.start(r.node, f"{tag}.rank{r.rank}", argv, env))
        run.wait_all(settings.timeout_s, procs)
    finally:
        for proc in procs:
            run.stop(proc)
    wall = time.monotonic() - started
    local = scratch / f"{tag}.json"
    run.launcher.fetch(master, remote_out, local)
    data: dict[str, Any] = json.loads(local.read_text())
    return Measurement(
        model=model,
        size=settings.size,
        global_batch=batch,
        workers=workers,
        iterations_per_s=float(data["iterations_per_s"]),
        samples_per_s=float(data["samples_per_s"]),
        seconds=float(data["seconds"]),
        wall_s=round(wall, 3),
        started_s=round(started_s, 3),
        nodes=tuple(r.node.name for r in ranks),
        backend=str(data.get("backend", "")),
        device=str(data.get("device", "")),
    )


def profile_models(
    run: TestbedRun,
    settings: ProfileSettings,
    scratch: Path,
    progress: Callable[[str], None] = lambda _msg: None,
) -> tuple[list[Measurement], dict[str, float]]:
    """Every (model, batch, workers) of `settings`; returns the measurements and the wall
    seconds profiling took per model (Figure 12(a)'s quantity)."""
    capacity = sum(n.slots for n in run.nodes)
    too_big = [w for w in settings.workers if w > capacity]
    if too_big:
        raise TestbedError(
            f"worker counts {too_big} exceed the cluster's {capacity} slots; "
            "lower testbed.throughput_profile.workers or add nodes/slots"
        )
    scratch.mkdir(parents=True, exist_ok=True)
    run_started = time.time()
    results: list[Measurement] = []
    per_model: dict[str, float] = {}
    port = settings.master_port
    total = len(settings.models) * len(settings.global_batch_sizes) * len(settings.workers)
    done = 0
    for model in settings.models:
        started = time.monotonic()
        for batch in settings.global_batch_sizes:
            for workers in settings.workers:
                if batch % workers:
                    raise TestbedError(
                        f"global batch {batch} does not split over {workers} workers; "
                        "use batch sizes divisible by every worker count"
                    )
                # a fresh rendezvous port per job: a dying job's port may linger in TIME_WAIT
                port = settings.master_port + (port - settings.master_port + 1) % 1000
                m = measure(run, settings, model, batch, workers, scratch, port, run_started)
                results.append(m)
                done += 1
                progress(
                    f"[{done}/{total}] {model} batch {batch} on {workers} worker(s): "
                    f"{m.iterations_per_s:.2f} it/s"
                )
        per_model[model] = round(time.monotonic() - started, 3)
    return results, per_model


def upstream_tables(results: Sequence[Measurement]) -> dict[str, str]:
    """model -> CSV text in upstream's layout (global_batch_size, then one column per worker
    count, values iterations/s)."""
    tables: dict[str, str] = {}
    for model in dict.fromkeys(m.model for m in results):
        rows = [m for m in results if m.model == model]
        workers = sorted({m.workers for m in rows})
        batches = sorted({m.global_batch for m in rows})
        cell: Mapping[tuple[int, int], float] = {
            (m.global_batch, m.workers): m.iterations_per_s for m in rows
        }
        lines = [",".join(["global_batch_size", *map(str, workers)])]
        for b in batches:
            values = [repr(cell[(b, w)]) if (b, w) in cell else "" for w in workers]
            lines.append(",".join([str(b), *values]))
        tables[model] = "\n".join(lines) + "\n"
    return tables
