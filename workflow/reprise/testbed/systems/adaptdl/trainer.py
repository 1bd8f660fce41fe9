"""One replica of an AdaptDL job: a model of the testbed zoo trained with AdaptDL's adaptive data
loader and data-parallel wrapper, checkpointed and restarted through AdaptDL's own mechanism.

`python -m reprise.testbed.systems.adaptdl.trainer --help`. Every replica of a job runs this
with AdaptDL's environment (`replica_env`): ADAPTDL_CHECKPOINT_PATH, ADAPTDL_MASTER_ADDR/PORT,
ADAPTDL_NUM_REPLICAS, ADAPTDL_REPLICA_RANK, ADAPTDL_NUM_RESTARTS, ADAPTDL_JOB_ID and, where a
supervisor collects AdaptDL's scheduling hints, ADAPTDL_SUPERVISOR_URL. On SIGTERM AdaptDL saves
every state at the next step and the replica exits 143; started again with ADAPTDL_NUM_RESTARTS
one higher (and any replica count), it resumes from that checkpoint. Exit status: 0 done, 2 bad
arguments or environment, 1 failed, 143 stopped and checkpointed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reprise.atomic import write_text_atomic
from reprise.errors import ConfigError, TestbedError
from reprise.testbed.trainers.env import _int as env_int
from reprise.testbed.trainers.names import MODELS, SIZES

STATUS_EVERY_S = 2.0
EXIT_STOPPED = 143  # what AdaptDL exits with after its checkpoint on SIGTERM


@dataclass(frozen=True)
class ReplicaEnv:
    """AdaptDL's view of one replica, read from the ADAPTDL_* variables."""

    checkpoint_path: Path
    master_addr: str | None
    """None in an AdaptDL-scheduled cluster: AdaptDL asks its supervisor for rank 0."""
    master_port: int
    num_replicas: int
    rank: int
    num_nodes: int
    restarts: int
    job_id: str
    supervisor_url: str | None


def replica_env(
    *,
    job_id: str,
    checkpoint_path: Path,
    master_addr: str,
    master_port: int,
    num_replicas: int,
    rank: int,
    num_nodes: int,
    restarts: int,
    supervisor_url: str | None = None,
) -> dict[str, str]:
    """The ADAPTDL_* environment of replica `rank` (as AdaptDL's scheduler sets it in a pod)."""
    env = {
        "ADAPTDL_JOB_ID": job_id,
        "ADAPTDL_CHECKPOINT_PATH": str(checkpoint_path),
        "ADAPTDL_MASTER_ADDR": master_addr,
        "ADAPTDL_MASTER_PORT": str(master_port),
        "ADAPTDL_NUM_REPLICAS": str(num_replicas),
        "ADAPTDL_REPLICA_RANK": str(rank),
        "ADAPTDL_NUM_NODES": str(num_nodes),
        "ADAPTDL_NUM_RESTARTS": str(restarts),
    }
    if supervisor_url:
        env["ADAPTDL_SUPERVISOR_URL"] = supervisor_url
    return env


def read_replica_env(environ: Mapping[str, str]) -> ReplicaEnv:
    """The replica's environment, with AdaptDL's own defaults where it has them; a TestbedError
    names the variable that is missing or wrong."""
    path = environ.get("ADAPTDL_CHECKPOINT_PATH")
    if not path:
        raise TestbedError("ADAPTDL_CHECKPOINT_PATH is not set: AdaptDL cannot checkpoint")
    port = env_int(environ, "ADAPTDL_MASTER_PORT", 0, 1)
    if port == 0:
        raise TestbedError("ADAPTDL_MASTER_PORT is not set: replicas cannot find rank 0")
    replicas = env_int(environ, "ADAPTDL_NUM_REPLICAS", 1, 1)
    rank = env_int(environ, "ADAPTDL_REPLICA_RANK", 0, 0)
    if rank >= replicas:
        raise TestbedError(f"ADAPTDL_REPLICA_RANK={rank} is not below ADAPTDL_NUM_REPLICAS")
    return ReplicaEnv(
        checkpoint_path=Path(path),
        master_addr=environ.get("ADAPTDL_MASTER_ADDR") or None,
        master_port=port,
        num_replicas=replicas,
        rank=rank,
        num_nodes=env_int(environ, "ADAPTDL_NUM_NODES", replicas, 1),
        restarts=env_int(environ, "ADAPTDL_NUM_RESTARTS", 0, 0),
        job_id=environ.get("ADAPTDL_JOB_ID", "job"),
        supervisor_url=environ.get("ADAPTDL_SUPERVISOR_URL") or None,
    )


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not positive")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m reprise.testbed.systems.adaptdl.trainer",
        description="One replica of an AdaptDL job on synthetic data of the model's real shape.",
    )
    p.add_argument("--model", required=True, choices=MODELS)
    p.add_argument("--size", default="tiny", choices=SIZES)
    p.add_argument("--batch-size", type=_positive, required=True, help="initial global batch")
    p.add_argument(
        "--max-batch-size",
        type=_positive,
        required=True,
        help="largest global batch AdaptDL may pick",
    )
    p.add_argument("--local-bsz-min", type=_positive, default=1)
    p.add_argument("--local-bsz-max", type=_positive, required=True)
    p.add_argument(
        "--target-samples", type=_positive, required=True, help="samples to train (the trace's)"
    )
    p.add_argument(
        "--dataset-size", type=_positive, required=True, help="samples per epoch of synthetic data"
    )
    p.add_argument("--status", type=Path, required=True, help="progress JSON, written by rank 0")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=_positive, default=1)
    p.add_argument("--backend", default="gloo", choices=("gloo", "nccl"))
    p.add_argument(
        "--hints-every-s",
        type=float,
        default=30.0,
        help="seconds between rank 0's scheduling hints (AdaptDL's own: 30)",
    )
    return p


class _Status:
    """Rank 0's progress file: replaced whole, at most every STATUS_EVERY_S and at each epoch."""

    def __init__(self, path: Path, fields: dict[str, Any]) -> None:
        self.path = path
        self.fields = fields
        self.last = 0.0

    def write(self, force: bool = False, **update: Any) -> None:
        self.fields.update(update)
        now = time.time()
        if force or now - self.last >= STATUS_EVERY_S:
            self.fields["time"] = now
            write_text_atomic(self.path, json.dumps(self.fields, sort_keys=True) + "\n")
            self.last = now


def _dataset(workload: Any, size: int, seed: int) -> Any:
    """`size` samples drawn once from the workload's generator, as tuples a DataLoader stacks."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    batch = workload.sample(size, gen)
    columns = [batch.inputs, batch.targets]
    if batch.input_lengths is not None and batch.target_lengths is not None:
        columns += [batch.input_lengths, batch.target_lengths]
    return torch.utils.data.TensorDataset(*columns)


def train(args: argparse.Namespace, env: ReplicaEnv) -> dict[str, Any]:
    """Train until the job's samples are done; returns rank 0's last status."""
    import torch

    from reprise.testbed.systems.adaptdl.compat import (
        allow_checkpoint_globals,
        hint_reporter,
        load_adaptdl_torch,
    )
    from reprise.testbed.trainers.netif import bind_collectives
    from reprise.testbed.trainers.zoo import Batch, workload

    adl = load_adaptdl_torch()
    allow_checkpoint_globals()
    # AdaScale keeps gradients over accumulation steps and says so at every zero_grad call
    warnings.filterwarnings("ignore", message="skipping zero_grad for accumulated gradient")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    bind_collectives(os.environ)
    if env.master_addr is None:  # AdaptDL's Kubernetes scheduler: discovery by its supervisor
        adl.init_process_group(args.backend)
    else:  # an explicit init_method keeps AdaptDL from asking a supervisor for rank 0
        adl.init_process_group(
            args.backend,
            init_method=f"tcp://{env.master_addr}:{env.master_port}",
            world_size=env.num_replicas,
            rank=env.rank,
        )
    work = workload(args.model, args.size)
    data = _dataset(work, args.dataset_size, args.seed)
    model = work.build()
    optimizer = work.optimizer(model.parameters())
    loader = adl.AdaptiveDataLoader(data, batch_size=args.batch_size, shuffle=True, drop_last=True)
    loader.autoscale_batch_size(
        args.max_batch_size,
        local_bsz_bounds=(args.local_bsz_min, args.local_bsz_max),
        gradient_accumulation=True,
    )
    model = adl.AdaptiveDataParallel(model, optimizer)
    epochs = math.ceil(args.target_samples / args.dataset_size)
    status = _Status(
        args.status,
        {
            "job": env.job_id,
            "model": args.model,
            "replicas": env.num_replicas,
            "restarts": env.restarts,
            "epochs": epochs,
            "epoch": adl.current_epoch(),
            "finished_epochs": adl.finished_epochs(),
            "done": False,
            "pid": os.getpid(),
        },
    )
    report_hints = hint_reporter(args.hints_every_s) if env.rank == 0 else None
    if env.rank == 0:
        status.write(force=True)
    started = time.time()
    samples = 0
    for epoch in adl.remaining_epochs_until(epochs):
        for columns in loader:
            lengths = (columns[2], columns[3]) if len(columns) == 4 else (None, None)
            batch = Batch(columns[0], columns[1], *lengths)
            optimizer.zero_grad()
            loss = work.loss(model(batch.inputs), batch)
            loss.backward()  # type: ignore[no-untyped-call]
            if work.clip_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), work.clip_grad_norm)
            optimizer.step()
            samples += len(batch) * env.num_replicas
            if report_hints is not None:
                report_hints()
            if env.rank == 0:
                status.write(
                    epoch=epoch,
                    batch_size=int(loader.current_batch_size),
                    local_bsz=int(loader.current_local_bsz),
                    accum_steps=int(loader.accumulation_steps),
                    samples=samples,
                    samples_per_s=samples / max(time.time() - started, 1e-9),
                    loss=float(loss.detach()),
                    gain=float(model.gain),
                )
        if env.rank == 0:
            status.write(force=True, finished_epochs=epoch + 1)
    if env.rank == 0:
        status.write(force=True, done=True, finished_epochs=epochs)
    return status.fields


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        env = read_replica_env(os.environ)
    except TestbedError as exc:
        parser.error(str(exc))
    if args.batch_size > args.max_batch_size:
        parser.error(f"--batch-size {args.batch_size} exceeds --max-batch-size")
    if args.dataset_size < args.max_batch_size:
        parser.error("--dataset-size must hold at least one batch of --max-batch-size")
    try:
        result = train(args, env)
    except ConfigError as exc:
        print(f"[adaptdl {env.job_id} rank {env.rank}] {exc}", file=sys.stderr, flush=True)
        return 2
    if env.rank == 0:
        print(
            f"[adaptdl {env.job_id}] done: {result['finished_epochs']} epochs, "
            f"restart {env.restarts}, {env.num_replicas} replica(s)",
            file=sys.stderr,
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
