"""The elastic runtime on sshd netns nodes: agents, slot trainers, scaling, migration, faults."""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from infra.netns_nodes import NetnsCluster

pytest.importorskip("torch")
pytest.importorskip("grpc")

from reprise.errors import TestbedError
from reprise.testbed.inventory import load_inventory
from reprise.testbed.lifecycle import SshLauncher, TestbedRun
from reprise.testbed.provision.ssh import Connections, SshProvider
from reprise.testbed.runtime import stubs
from reprise.testbed.runtime.client import (
    ElasticRuntime,
    Event,
    JobSpec,
    NodeLost,
    Placement,
    RuntimeSettings,
)
from reprise.testbed.runtime.executor import TestbedExecutor, pack

pytestmark = pytest.mark.slow
FAST = RuntimeSettings(progress_every_s=0.5, start_timeout_s=180, stop_timeout_s=60)


def netns_run(cluster: NetnsCluster, tmp_path: Path, slots: dict[str, int]) -> TestbedRun:
    """A run on the named nodes, each with its number of slots."""
    known = cluster.known_hosts(tmp_path / "known_hosts", list(slots))
    path = cluster.inventory(tmp_path / "inv.yaml", ssh={"known_hosts": str(known)})
    doc = yaml.safe_load(path.read_text())
    doc["nodes"] = [{**n, "slots": slots[n["name"]]} for n in doc["nodes"] if n["name"] in slots]
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    inventory = load_inventory(path)
    launcher = SshLauncher(connections=Connections(timeout_s=5), poll_timeout_s=10)
    return TestbedRun(SshProvider(inventory, tmp_path / "state"), launcher, tmp_path / "run")


def ours(cluster: NetnsCluster, name: str) -> list[str]:
    """Runtime processes (agents, trainers, stub installers) still alive in a node."""
    found = []
    for pid in cluster.nodes[name].pids():
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
        except OSError:
            continue
        if "reprise.testbed.runtime" in cmd or "runtime-stubs" in cmd:
            found.append(cmd)
    return found


def wait_for(check: Callable[[], object], timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(0.2)


def events(rt: ElasticRuntime, job: str, kind: str) -> list[Event]:
    return [e for e in rt.events if e.job == job and e.kind == kind]


def test_generated_modules_reach_a_node_as_a_process(tmp_path: Path) -> None:
    folder = tmp_path / "stubs"
    out = subprocess.run(stubs.install_argv(sys.executable, str(folder)), capture_output=True)
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{m}.py" for m in stubs.MODULES)
    probe = "from reprise.testbed.runtime import stubs; print(stubs.pb().JobSpec(job='x').job)"
    env = {**os.environ, stubs.STUBS_ENV: str(folder)}
    loaded = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
    assert loaded.stdout.strip() == "x", loaded.stderr
    env[stubs.STUBS_ENV] = str(tmp_path / "empty")
    missing = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
    assert missing.returncode != 0 and stubs.STUBS_ENV in missing.stderr


def test_scale_up_down_and_migration_resume_at_the_stop_iteration(
    netns_cluster: NetnsCluster, tmp_path: Path
) -> None:
    c = netns_cluster
    with netns_run(c, tmp_path, {"n1": 2, "n2": 1}) as run, ElasticRuntime(run, FAST) as rt:
        rt.add_job(JobSpec("j", "resnet50", global_batch=8))
        rt.apply({"j": Placement((("n1", 0),))})
        charged = rt.apply({"j": Placement((("n1", 0), ("n1", 1)))})
        rt.apply({"j": Placement((("n2", 0),))})
    record = json.loads((run.run_dir / "runtime.json").read_text())
    _, scale, move = rt.restarts
    assert [r.kind for r in rt.restarts] == ["start", "scale", "migration"]
    assert (scale.world_from, scale.world_to, move.world_from, move.world_to) == (1, 2, 2, 1)
    for r in rt.restarts:
        assert r.stable and r.measured_s is not None and not r.warning
        assert r.charged_s == min(math.floor(r.measured_s), 20)
    assert charged == {"j": scale.charged_s}
    # each restart trains on from the iteration its checkpoint was taken at, on every rank
    for r in (scale, move):
        stable = next(e for e in events(rt, "j", "stable") if e.generation == r.generation)
        assert r.checkpoint_iteration > 0
        assert stable.iteration == r.checkpoint_iteration + 1
        assert stable.world_size == r.world_to
    stopped = [e for e in events(rt, "j", "exited") if e.generation == scale.generation]
    assert sorted(e.rank for e in stopped) == [0, 1]
    assert {e.iteration for e in stopped} == {move.checkpoint_iteration}
    # the first rank moved from n1 to n2: the state went point to point, whole
    assert move.fetch_bytes == move.checkpoint_bytes > 0 and scale.fetch_bytes == 0
    assert [e.node for e in events(rt, "j", "fetched")] == ["n2"]
    # ports chosen at start and recorded
    assert all(a["port"] > 0 for a in record["agents"].values())
    assert [g for g, _ in record["jobs"]["j"]["master_ports"]] == [1, 2, 3]
    assert ours(c, "n1") == [] and ours(c, "n2") == []


def test_killed_trainer_is_noticed_and_restarts_from_the_last_checkpoint(
    netns_cluster: NetnsCluster, tmp_path: Path
) -> None:
    c = netns_cluster
    with netns_run(c, tmp_path, {"n1": 2}) as run, ElasticRuntime(run, FAST) as rt:
        rt.add_job(JobSpec("k", "vgg16", global_batch=4))
        rt.apply({"k": Placement((("n1", 0),))})
        rt.apply({"k": Placement((("n1", 0), ("n1", 1)))})
        saved = rt.restarts[-1].generation
        started = [e for e in events(rt, "k", "started") if e.generation == saved]
        victim = next(e for e in started if e.rank == 1)
        os.kill(int(victim.detail.split("pid ")[1]), signal.SIGKILL)
        wait_for(lambda: rt.failed(), 60, "noticing the killed trainer")
        assert "rank 1 on n1" in rt.failed()["k"] and "SIGKILL" in rt.failed()["k"]
        checkpoint = rt.jobs["k"].checkpoint
        assert checkpoint is not None
        charged = rt.apply({})  # the failed job restarts on its slots
        recovery = rt.restarts[-1]
        stable = next(e for e in events(rt, "k", "stable") if e.generation == recovery.generation)
    assert recovery.kind == "recovery" and recovery.stable and "k" in charged
    assert stable.iteration == checkpoint.iteration + 1 and stable.world_size == 2
    assert ours(c, "n1") == []


def test_lost_agent_is_named_and_every_process_is_gone_after_the_run(
    netns_cluster: NetnsCluster, tmp_path: Path
) -> None:
    c = netns_cluster
    run = netns_run(c, tmp_path, {"n1": 1, "n2": 1})
    with pytest.raises(NodeLost) as lost, run, ElasticRuntime(run, FAST) as rt:
        rt.add_job(JobSpec("m", "gpt2", global_batch=4))
        rt.apply({"m": Placement((("n1", 0), ("n2", 0)))})
        os.kill(rt.agents["n2"].pid, signal.SIGKILL)
        wait_for(lambda: rt.lost(), 30, "noticing the lost agent")
        rt.apply({"m": Placement((("n1", 0),))})
    assert lost.value.node == "n2" and lost.value.jobs == ["m"]
    assert "n2" in str(lost.value)
    # the agent's trainer left when its stdin closed; the run stopped everything else
    wait_for(lambda: ours(c, "n1") == [] and ours(c, "n2") == [], 20, "every process gone")


def test_agent_port_in_use_names_the_node_and_port(
    netns_cluster: NetnsCluster, tmp_path: Path
) -> None:
    c = netns_cluster
    with socket.socket() as probe:
        probe.bind(("", 0))
        port = probe.getsockname()[1]
    squat = (
        "import socket, time; s = socket.socket(); "
        f"s.bind(('0.0.0.0', {port})); s.listen(); time.sleep(600)"
    )
    settings = RuntimeSettings(agent_port=port, start_timeout_s=120)
    with netns_run(c, tmp_path, {"n1": 1}) as run:
        run.start("n1", "squatter", [sys.executable, "-c", squat])
        time.sleep(1.0)
        with pytest.raises(TestbedError, match=rf"(?s)node .n1. exited.*port {port} on node n1"):
            ElasticRuntime(run, settings).start()
    assert ours(c, "n1") == []


def test_pack_fills_the_tightest_node_then_spans_the_emptiest() -> None:
    free = {"a": [0, 1, 2], "b": [0, 1], "c": [0, 1, 2, 3]}
    placed = pack({7: 2, 8: 4, 9: 3}, free)
    assert placed[8].slots == (("c", 0), ("c", 1), ("c", 2), ("c", 3))
    assert placed[9].slots == (("a", 0), ("a", 1), ("a", 2))
    assert placed[7].slots == (("b", 0), ("b", 1))
    with pytest.raises(TestbedError, match="asks for 2 slots but 1 are free"):
        pack({1: 2}, {"a": [0]})


class Change:
    def __init__(self, job: int, gpus: int) -> None:
        self.job, self.gpus = job, gpus


def test_executor_restarts_only_jobs_whose_allocation_changed(
    netns_cluster: NetnsCluster, tmp_path: Path
) -> None:
    c = netns_cluster
    with netns_run(c, tmp_path, {"n1": 2, "n2": 1}) as run, ElasticRuntime(run, FAST) as rt:
        ex = TestbedExecutor(rt, lambda i: JobSpec(f"job{i}", "bert", global_batch=4))
        first = ex.apply(0.0, [Change(0, 1), Change(1, 1)], restart=False)
        generation = rt.jobs["job1"].generation
        second = ex.apply(240.0, [Change(0, 2), Change(1, 1)], restart=False)
        assert rt.jobs["job1"].generation == generation  # untouched: it kept training
        assert ex.placed[0].world_size == 2 and second[1] == 0.0
        third = ex.apply(480.0, [Change(1, 1)], restart=False)
        assert 0 not in ex.placed and rt.jobs["job0"].placement is None
    assert set(first) == {0, 1} and set(second) == {0, 1} and third == {1: 0.0}
    scaled = next(r for r in rt.restarts if r.job == "job0" and r.world_to == 2)
    assert scaled.measured_s is not None and second[0] == min(math.floor(scaled.measured_s), 20)
    assert ours(c, "n1") == [] and ours(c, "n2") == []


def test_a_trainer_lost_between_jobs_is_replaced_before_the_next_job_gets_its_slot(
    netns_cluster: NetnsCluster, tmp_path: Path
) -> None:
    c = netns_cluster
    with netns_run(c, tmp_path, {"n1": 1}) as run, ElasticRuntime(run, FAST) as rt:
        rt.add_job(JobSpec("a", "resnet50", global_batch=4))
        rt.add_job(JobSpec("b", "resnet50", global_batch=4))
        rt.apply({"a": Placement((("n1", 0),))})
        rt.apply({"a": None})
        idle = int(events(rt, "a", "started")[-1].detail.split("pid ")[1])
        os.kill(idle, signal.SIGKILL)
        rt.apply({"b": Placement((("n1", 0),))})
        started = events(rt, "b", "started")
    assert rt.restarts[-1].stable and rt.restarts[-1].attempts == 1 and not rt.failed()
    assert int(started[-1].detail.split("pid ")[1]) != idle
