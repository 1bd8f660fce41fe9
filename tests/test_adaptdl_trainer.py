"""AdaptDL jobs: real replicas with AdaptDL's loader and wrapper over gloo, stopped by SIGTERM
into AdaptDL's checkpoint and restarted from it with a different number of replicas."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from importlib.util import find_spec
from pathlib import Path

import pytest

from reprise.errors import TestbedError
from reprise.testbed.systems.adaptdl.trainer import read_replica_env, replica_env

TRAINER = [sys.executable, "-m", "reprise.testbed.systems.adaptdl.trainer"]
HAVE_ADAPTDL = find_spec("adaptdl") is not None and find_spec("torch") is not None
needs_adaptdl = pytest.mark.skipif(
    not HAVE_ADAPTDL, reason="needs the adaptdl extra (pip install -e '.[adaptdl]')"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _args(status: Path, target: int) -> list[str]:
    return [
        "--model=resnet50",
        "--batch-size=32",
        "--max-batch-size=128",
        "--local-bsz-min=8",
        "--local-bsz-max=64",
        f"--target-samples={target}",
        "--dataset-size=256",
        f"--status={status}",
    ]


def job_env(
    ckpt: Path,
    port: int,
    replicas: int = 1,
    rank: int = 0,
    restarts: int = 0,
    supervisor_url: str | None = None,
    job_id: str = "job7",
) -> dict[str, str]:
    """This process's environment plus AdaptDL's for one replica on this machine."""
    return {
        **os.environ,
        **replica_env(
            job_id=job_id,
            checkpoint_path=ckpt,
            master_addr="127.0.0.1",
            master_port=port,
            num_replicas=replicas,
            rank=rank,
            num_nodes=replicas,
            restarts=restarts,
            supervisor_url=supervisor_url,
        ),
    }


def _start(tmp: Path, replicas: int, restarts: int, target: int) -> list[subprocess.Popen[str]]:
    port = _free_port()
    procs = []
    for rank in range(replicas):
        env = job_env(tmp / "ckpt", port, replicas, rank, restarts)
        log = (tmp / f"r{restarts}.{rank}.log").open("w")
        procs.append(
            subprocess.Popen(
                [*TRAINER, *_args(tmp / "status.json", target)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
        )
    return procs


def _status(tmp: Path) -> dict[str, object]:
    path = tmp / "status.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _wait(procs: list[subprocess.Popen[str]], timeout: float) -> list[int]:
    try:
        return [p.wait(timeout=timeout) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


@needs_adaptdl
@pytest.mark.slow
def test_sigterm_checkpoints_and_a_smaller_job_resumes(tmp_path: Path) -> None:
    (tmp_path / "ckpt").mkdir()
    procs = _start(tmp_path, replicas=2, restarts=0, target=256 * 40)
    deadline = time.monotonic() + 240
    while "batch_size" not in _status(tmp_path):  # at least one step trained by both replicas
        assert time.monotonic() < deadline, (tmp_path / "r0.0.log").read_text()[-3000:]
        assert all(p.poll() is None for p in procs), (tmp_path / "r0.0.log").read_text()[-3000:]
        time.sleep(0.5)
    before = _status(tmp_path)
    assert before["replicas"] == 2 and before["local_bsz"] == 16  # 32 split over 2 replicas
    for p in procs:
        p.send_signal(signal.SIGTERM)
    assert _wait(procs, 120) == [143, 143]
    assert (tmp_path / "ckpt" / "checkpoint-0").is_dir()  # AdaptDL's own checkpoint layout

    # the same job again as 1 replica, restart 1: it resumes where the pair stopped
    procs = _start(tmp_path, replicas=1, restarts=1, target=256 * 40)
    assert _wait(procs, 400) == [0], (tmp_path / "r1.0.log").read_text()[-3000:]
    after = _status(tmp_path)
    assert after["done"] is True and after["replicas"] == 1 and after["restarts"] == 1
    assert after["finished_epochs"] == 40
    log = (tmp_path / "r1.0.log").read_text()
    assert "No checkpoint found" not in log  # what AdaptDL says on a fresh start
    resumed = int(log.split("starting at epoch ")[1].split()[0])
    assert resumed >= int(str(before["epoch"]))
    assert "Weights only load failed" not in log


@pytest.mark.skipif(HAVE_ADAPTDL, reason="adaptdl is installed here")
def test_without_adaptdl_the_trainer_names_the_extra(tmp_path: Path) -> None:
    env = job_env(tmp_path, _free_port())
    proc = subprocess.run(
        [*TRAINER, *_args(tmp_path / "s.json", 512)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "pip install -e '.[adaptdl]'" in proc.stderr


def test_replica_environment_round_trip_and_errors(tmp_path: Path) -> None:
    env = replica_env(
        job_id="j3",
        checkpoint_path=tmp_path,
        master_addr="10.1.0.2",
        master_port=4000,
        num_replicas=4,
        rank=3,
        num_nodes=2,
        restarts=5,
        supervisor_url="http://127.0.0.1:9",
    )
    got = read_replica_env(env)
    assert (got.rank, got.num_replicas, got.num_nodes, got.restarts) == (3, 4, 2, 5)
    assert got.checkpoint_path == tmp_path and got.supervisor_url == "http://127.0.0.1:9"
    with pytest.raises(TestbedError, match="ADAPTDL_REPLICA_RANK=4 is not below"):
        read_replica_env({**env, "ADAPTDL_REPLICA_RANK": "4"})
    with pytest.raises(TestbedError, match="ADAPTDL_CHECKPOINT_PATH is not set"):
        read_replica_env({k: v for k, v in env.items() if k != "ADAPTDL_CHECKPOINT_PATH"})
    with pytest.raises(TestbedError, match="ADAPTDL_MASTER_PORT='x' is not an integer"):
        read_replica_env({**env, "ADAPTDL_MASTER_PORT": "x"})
    with pytest.raises(TestbedError, match="ADAPTDL_MASTER_PORT is not set"):
        read_replica_env({k: v for k, v in env.items() if k != "ADAPTDL_MASTER_PORT"})
    defaults = read_replica_env({"ADAPTDL_CHECKPOINT_PATH": "/c", "ADAPTDL_MASTER_PORT": "9"})
    assert (defaults.num_replicas, defaults.rank, defaults.restarts) == (1, 0, 0)
