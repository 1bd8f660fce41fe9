"""Pollux's policy on our controller, fast: a job that trains its last step just as Pollux
re-allocates it is done, not restarted from its last checkpoint (AdaptDL writes none after the
last step). The replicas are recorded stand-ins behind the SSH launcher's interface; the slow
Docker tests (test_adaptdl_controller.py) run real AdaptDL replicas."""

from __future__ import annotations

import csv
import json
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from reprise.data.traces import TraceJob
from reprise.testbed.lifecycle import VANISHED, SshLauncher, TestbedRun
from reprise.testbed.nodes import Launched, Node
from reprise.testbed.systems.adaptdl.controller import Controller, ControllerSettings
from reprise.testbed.systems.adaptdl.supervisor import Supervisor


@dataclass
class Answer:
    ok: bool
    stdout: str = ""
    stderr: str = ""


@dataclass
class Replica:
    status: str
    """Its job's progress file (rank 0 writes it)."""
    restarts: int
    started: float
    rc: int | None = None
    """None while it trains; 0 once it trained its last step; VANISHED once stopped."""


@dataclass
class TrainingNode:
    """Replicas that train for `train_s` seconds and exit 0. A stop (SIGTERM) ends a replica
    that is still training without an exit status, as the wrapper dies with it, unless its
    name is in `last_step_at_stop`: then the signal came after its last step and it ends as
    a finished replica (exit 0, or no exit status if `wrapper_killed`) with its job's progress
    file saying done. No checkpoint is ever written (the tar of one fails)."""

    train_s: float
    last_step_at_stop: set[str] = field(default_factory=set)
    wrapper_killed: bool = False
    replicas: dict[int, Replica] = field(default_factory=dict)
    started: list[str] = field(default_factory=list)
    done: set[str] = field(default_factory=set)
    """Progress files that say done."""

    def tick(self) -> None:
        for rep in self.replicas.values():
            if rep.rc is None and time.monotonic() - rep.started >= self.train_s:
                rep.rc = 0
                self.done.add(rep.status)


class Launcher(SshLauncher):
    """SshLauncher's interface over `TrainingNode` (no SSH)."""

    def __init__(self, node: TrainingNode) -> None:
        super().__init__()
        self.node = node

    def start(
        self, node: Node, name: str, argv: Sequence[str], env: Mapping[str, str], log: str
    ) -> Launched:
        self.nodes.setdefault(node.name, node)
        pid = 1000 + len(self.node.started)
        status = next(a.split("=", 1)[1] for a in argv if a.startswith("--status="))
        restarts = int(env["ADAPTDL_NUM_RESTARTS"])
        self.node.replicas[pid] = Replica(status, restarts, time.monotonic())
        self.node.started.append(name)
        return Launched(node.name, name, pid, pid, log)

    def poll(self, proc: Launched) -> int | None:
        self.node.tick()
        return self.node.replicas[proc.pgid].rc

    def stop(self, proc: Launched, grace_s: float = 5.0) -> None:
        self.node.tick()
        rep = self.node.replicas[proc.pgid]
        if rep.rc is not None:
            return
        if proc.name in self.node.last_step_at_stop:
            rep.rc = VANISHED if self.node.wrapper_killed else 0
            self.node.done.add(rep.status)
        else:
            rep.rc = VANISHED

    def run(self, node: Node, command: str, doing: str, timeout_s: float | None = None) -> Any:
        if command.startswith("cat "):
            path = command.split()[1].strip("'")
            rep = next(r for r in self.node.replicas.values() if r.status == path)
            return Answer(
                True, json.dumps({"restarts": rep.restarts, "done": path in self.node.done})
            )
        return Answer(command.startswith("mkdir "))

    def fetch(self, node: Node, remote: str, local: Path) -> None:
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_text("")

    def close(self) -> None:
        return None


class OneNode:
    def __init__(self, workdir: Path) -> None:
        self.node = Node(
            "n0",
            "g",
            "127.0.0.1",
            "127.0.0.1",
            slots=2,
            python=sys.executable,
            workdir=str(workdir),
        )

    def provision(self) -> list[Node]:
        return [self.node]

    def teardown(self) -> None:
        return None


def rows(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def run_grown_job(tmp: Path, training: TrainingNode) -> tuple[Controller, dict[str, Any]]:
    """One job on a node of two slots; Pollux's rounds (every second) grow it to two."""
    trace = [TraceJob(0, "0", 0, 100, "resnet50", 240, 64, 1, 120, False)]
    settings = ControllerSettings(interval_s=1, stop_grace_s=1, time_limit_s=10)
    with (
        TestbedRun(OneNode(tmp / "node"), Launcher(training), tmp / "run") as run,
        Supervisor() as supervisor,
    ):
        controller = Controller(run, supervisor, trace, settings, tmp / "out", progress=print)
        grown = {"job-0": np.array([2], dtype=np.int64)}
        controller.allocator.allocate = lambda jobs, now: grown  # type: ignore[method-assign]
        controller.run_all()
        controller.write_tables()
    return controller, json.loads((tmp / "run" / "testbed-run.json").read_text())


@pytest.mark.parametrize("wrapper_killed", [False, True], ids=["exit-0", "progress-file"])
def test_a_job_that_finishes_as_pollux_grows_it_is_done_not_restarted(
    tmp_path: Path, wrapper_killed: bool
) -> None:
    # the SIGTERM of the first round reaches the replica after its last step
    training = TrainingNode(3, {"job-0-i0-r0"}, wrapper_killed)
    controller, record = run_grown_job(tmp_path, training)
    incarnations = rows(tmp_path / "out" / "incarnations.csv")
    assert [(i["index"], i["replicas"], i["end"]) for i in incarnations] == [("0", "1", "done")]
    assert training.started == ["job-0-i0-r0"]  # trained once
    assert [a["reason"] for a in rows(tmp_path / "out" / "allocations.csv")] == ["initial"]
    assert controller.jobs[0].completed is not None and controller.resizes()["up"] == 0
    assert record["state"] == "closed"
    assert [p["status"] for p in record["processes"]] == ["stopped" if wrapper_killed else "exited"]


def test_a_job_stopped_mid_training_is_restarted_on_its_new_allocation(tmp_path: Path) -> None:
    training = TrainingNode(2.5)
    controller, record = run_grown_job(tmp_path, training)
    first, grown = rows(tmp_path / "out" / "incarnations.csv")
    # no checkpoint came back (the stand-ins write none), so the job starts over, as recorded
    assert (first["end"], grown["reason"], grown["replicas"]) == (
        "stopped-without-checkpoint",
        "pollux",
        "2",
    )
    assert (grown["end"], grown["restored_from"]) == ("done", "")
    assert training.started == ["job-0-i0-r0", "job-0-i1-r0", "job-0-i1-r1"]
    assert controller.resizes()["up"] == 1
    assert record["state"] == "closed"


def test_a_round_leaves_a_job_alone_until_its_arrival_is_taken_in(tmp_path: Path) -> None:
    """A job whose submission time passes while a tick runs (after its arrival check) was given
    replicas by that tick's round, then queued again by the next tick's arrival step: a start
    and a stop for nothing (a fresh-clone run showed `job-4: 1 -> 0 replica(s) (queued)`)."""
    trace = [
        TraceJob(0, "0", 0, 100, "resnet50", 240, 64, 1, 120, False),
        TraceJob(1, "1", 0, 100, "resnet50", 240, 64, 1, 120, False),
    ]
    settings = ControllerSettings(interval_s=1, stop_grace_s=1, time_limit_s=10)
    asked: list[list[str]] = []

    def allocate(jobs: Sequence[Any], now: float) -> dict[str, Any]:
        asked.append([j.name for j in jobs])
        return {j.name: np.array([1], dtype=np.int64) for j in jobs}

    with (
        TestbedRun(OneNode(tmp_path / "node"), Launcher(TrainingNode(60)), tmp_path / "run") as run,
        Supervisor() as supervisor,
    ):
        controller = Controller(run, supervisor, trace, settings, tmp_path / "out", progress=print)
        controller.allocator.allocate = allocate  # type: ignore[method-assign]
        first, second = controller.jobs
        first.arrived = True  # the arrival step has run for job-0 only
        controller._apply(first, np.array([1], dtype=np.int64), "initial")
        controller._round()
        assert asked == [["job-0"]]
        assert second.policy.replicas == 0 and second.live is None
        assert [c["job"] for c in controller.changes] == ["job-0"]
        controller._stop(first, first.live, checkpoint=False)
