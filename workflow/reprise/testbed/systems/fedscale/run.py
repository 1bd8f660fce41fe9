"""A FedScale run of the matrix: check data, write the job, deploy, parse logs, write a record."""

from __future__ import annotations

import csv
import json
import platform
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any

from reprise.errors import ConfigError
from reprise.testbed.systems.fedscale.dataset import check_data_path
from reprise.testbed.systems.fedscale.job import FedScaleSettings, job_file
from reprise.testbed.systems.fedscale.logs import RoundRow, parse_aggregator_log

ROUND_COLUMNS = [
    "round",
    "train_loss",
    "test_top1",
    "test_top5",
    "test_loss",
    "started_s",
    "round_s",
]


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("fedscale", "torch", "torchvision", "tensorflow-cpu", "grpcio", "docker"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "absent"
    return out


def _write_rounds(path: Path, rows: list[RoundRow]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=ROUND_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in asdict(row).items()})


def _recover(work: Path, progress: Callable[[str], None]) -> None:
    """A run killed with SIGKILL could not clean up: stop and remove what it recorded."""
    from reprise.testbed.systems.fedscale.local import stop_recorded

    stopped = stop_recorded(work / "processes.json")
    if (work / "created.json").is_file():
        from reprise.testbed.systems.fedscale.containers import remove_recorded

        stopped += remove_recorded(work / "created.json")
    if stopped:
        progress(f"stopped what an interrupted run left: {', '.join(stopped)}")


def _deploy(
    settings: FedScaleSettings,
    data_dir: Path,
    work: Path,
    image_record: Path | None,
    progress: Callable[[str], None],
) -> tuple[float, dict[str, Any], Path]:
    """Run FedScale; return (seconds until the aggregator finished, deployment facts, its log)."""
    if settings.deployment == "process":
        from reprise.testbed.systems.fedscale.local import ProcessDeployment

        fed_logs = work / "fedscale"
        job = job_file(
            settings,
            data_dir=str(data_dir),
            log_path=str(fed_logs),
            ps_ip="127.0.0.1",
            ps_port=settings.port,
        )
        job_path = work / "job.json"
        job_path.write_text(json.dumps(job, indent=2) + "\n")
        with ProcessDeployment(
            job_path, work, settings.executors, settings.port, progress=progress
        ) as dep:
            waited = dep.run(settings.timeout_s)
        return waited, {"job": job, "roles": "local process groups"}, fed_logs
    if settings.deployment in ("docker", "swarm"):
        from reprise.testbed.systems.fedscale.containers import run_containers

        if image_record is None:
            raise ConfigError(f"deployment {settings.deployment} needs the FedScale images' record")
        return run_containers(settings, data_dir, work, image_record, progress)
    raise ConfigError(
        f"deployment {settings.deployment!r} does not run here: Kubernetes objects are written by "
        "`snakemake fedscale_kubernetes` and applied to an existing cluster"
    )


def run_fedscale(
    settings: FedScaleSettings,
    data_dir: Path,
    outdir: Path,
    image_record: Path | None = None,
    progress: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True),
) -> dict[str, Any]:
    """Run one configured run; write outdir/{job.json, rounds.csv, summary.json, logs/}."""
    data = check_data_path(data_dir)
    progress(f"data {data_dir}: {data.clients} clients, {data.train_samples} training samples")
    work = outdir / "work"
    if work.exists():
        _recover(work, progress)
        shutil.rmtree(work)  # leftovers of an interrupted run are never read as results
    work.mkdir(parents=True)
    started = time.time()
    waited, facts, fed_logs = _deploy(settings, data_dir.resolve(), work, image_record, progress)
    wall = time.time() - started
    agg_logs = sorted(fed_logs.glob("logs/*/*/aggregator/log"))
    if not agg_logs:
        raise ConfigError(f"{fed_logs}: FedScale wrote no aggregator log")
    rows = parse_aggregator_log(agg_logs[0])
    logs = outdir / "logs"
    if logs.exists():
        shutil.rmtree(logs)
    shutil.copytree(fed_logs / "logs", logs, ignore=shutil.ignore_patterns("events.*", "*.npy"))
    for role_log in work.glob("*.log"):
        shutil.copy2(role_log, logs / role_log.name)
    (outdir / "job.json").write_text(json.dumps(facts["job"], indent=2) + "\n")
    _write_rounds(outdir / "rounds.csv", rows)
    tested = [r for r in rows if r.test_top1 is not None]
    timed = [r.round_s for r in rows if r.round_s is not None]
    summary: dict[str, Any] = {
        "experiment": "fedscale",
        "run": settings.run_name,
        "deployment": settings.deployment,
        "executors": settings.executors,
        "participants": settings.participants,
        "rounds": settings.rounds,
        "seed": settings.seed,
        "model": settings.model,
        "clients": data.clients,
        "data_path": str(data_dir),
        "wall_seconds": round(wall, 2),
        "training_seconds": round(waited, 2),
        "rounds_completed": max((r.round for r in rows if r.train_loss is not None), default=0),
        "first_accuracy": tested[0].test_top1 if tested else None,
        "final_accuracy": tested[-1].test_top1 if tested else None,
        "final_test_loss": tested[-1].test_loss if tested else None,
        "mean_round_seconds": round(sum(timed) / len(timed), 3) if timed else None,
        "deployment_facts": {k: v for k, v in facts.items() if k != "job"},
        "versions": _versions(),
    }
    (outdir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    return summary
