"""The testbed's scheduler on sshd netns nodes: policies driven by the scheduling core with real
trainers (functionality end to end, small), and its faults: a trainer killed mid-job, a node
agent lost (run stopped naming it, or its jobs re-placed), a job never stable, nothing left."""

from __future__ import annotations

import csv
import json
import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from infra.netns_nodes import NetnsCluster
from test_runtime import FAST, netns_run, ours, wait_for

pytest.importorskip("torch")
pytest.importorskip("grpc")

from reprise.data.clusters import ClusterSpec, load_cluster_spec
from reprise.data.profiles import ThroughputProfiles, load_profiles
from reprise.data.traces import TraceJob, load_trace
from reprise.functionality import (
    FunctionalitySettings,
    TraceParams,
    functionality_table,
    run_functionality,
    simulate_beside,
    write_table,
    write_trace,
)
from reprise.sim.options import SimOptions
from reprise.testbed.runtime.client import ElasticRuntime, NodeLost, RuntimeSettings
from reprise.testbed.runtime.executor import TestbedExecutor
from reprise.testbed_scheduler import TrainerSettings, run_policy

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SCHED = "ElasticFlow-artifact/ElasticFlow/scheduler"
TRAINER = TrainerSettings(models={"resnet50_cifar10": "resnet50"}, global_batch=8)
SMALL = TraceParams(num_jobs=4, gpus=(1, 2), lam=300, min_duration=600, max_duration=1500)


def small_trace(
    mirror: Path, tmp_path: Path, spec: str, params: TraceParams = SMALL
) -> tuple[Path, Path, Path]:
    profiles = mirror / SCHED / "throughputs_A100"
    cluster = mirror / SCHED / "cluster_specs" / f"{spec}.csv"
    trace = tmp_path / "trace.csv"
    write_trace(params, load_profiles(profiles), load_cluster_spec(cluster), trace)
    return trace, cluster, profiles


def test_two_policies_on_the_testbed_beside_their_simulations(
    netns_cluster: NetnsCluster, mirror: Path, tmp_path: Path
) -> None:
    c = netns_cluster
    trace, cluster, profiles = small_trace(mirror, tmp_path, "n1g2")
    known = c.known_hosts(tmp_path / "known_hosts", ["n1"])
    inv = c.inventory(tmp_path / "inv.yaml", ssh={"known_hosts": str(known)})
    doc = yaml.safe_load(inv.read_text())
    doc["nodes"] = [{**n, "slots": 2} for n in doc["nodes"] if n["name"] == "n1"]
    inv.write_text(yaml.safe_dump(doc, sort_keys=False))
    settings = FunctionalitySettings(
        policies=("ef-accessctrl", "dlas-gpu"), slot=240, trainer=TRAINER, runtime=FAST
    )
    out = tmp_path / "testbed"
    summary = run_functionality(
        inventory_path=inv,
        state_dir=tmp_path / "state",
        outdir=out,
        trace_path=trace,
        cluster_spec=cluster,
        profile_dir=profiles,
        settings=settings,
    )
    assert ours(c, "n1") == []
    for policy in settings.policies:
        record = json.loads((out / policy / "summary.json").read_text())
        assert record["run"]["kind"] == "testbed" and record["run"]["policy"] == policy
        m = record["metrics"]
        assert m["accepted"] + m["declined"] == SMALL.num_jobs
        # every job that ran started on real trainers, and was stopped at the end
        with (out / policy / "restarts.csv").open() as fh:
            steps = list(csv.DictReader(fh))
        started = {s["job"] for s in steps if s["action"] == "start"}
        assert started and started == {s["job"] for s in steps if s["action"] == "stop"}
        assert all(s["stable"] == "True" for s in steps if s["action"] != "stop")
        assert record["testbed"]["restarts"] >= len(started)
    assert summary["policies"]["dlas-gpu"]["restarts_by_kind"]["start"] >= 1
    sims = simulate_beside(
        testbed_dir=out,
        trace_path=trace,
        cluster_spec=cluster,
        profile_dir=profiles,
        settings=settings,
        sim_dir=tmp_path / "sim",
    )
    paper = tmp_path / "paper.yaml"
    paper.write_text(
        yaml.safe_dump(
            {
                "source": "test",
                "published": {
                    "ef-accessctrl": {"accepted": 6, "declined": 4},
                    "themis": {"accepted": 3, "declined": 7},
                },
            }
        )
    )
    rows = functionality_table(out, sims, paper)
    by = {r["policy"]: r for r in rows}
    for policy in settings.policies:
        row = by[policy]
        # replaying the measured restarts reproduces every decision the testbed made
        assert (row["sim_measured_accepted"], row["sim_measured_declined"]) == (
            row["testbed_accepted"],
            row["testbed_declined"],
        )
        assert "replayed" not in row["differences"]
    assert by["ef-accessctrl"]["published_accepted"] == 6
    assert by["themis"]["differences"].startswith("not run")
    write_table(rows, tmp_path / "functionality.csv")
    assert (tmp_path / "functionality.csv").read_text().startswith("policy,label,testbed_accepted")


def inputs(
    mirror: Path, tmp_path: Path, spec: str, params: TraceParams = SMALL
) -> tuple[list[TraceJob], ClusterSpec, ThroughputProfiles]:
    trace, cluster, profiles = small_trace(mirror, tmp_path, spec, params)
    p = load_profiles(profiles)
    return load_trace(trace, p), load_cluster_spec(cluster), p


def test_a_trainer_killed_mid_job_restarts_from_its_checkpoint_and_the_run_goes_on(
    netns_cluster: NetnsCluster, mirror: Path, tmp_path: Path
) -> None:
    c = netns_cluster
    trace, cluster, profiles = inputs(mirror, tmp_path, "n1g2")
    killed: list[int] = []

    def kill_once(ex: TestbedExecutor) -> None:
        if killed or not ex.placed:
            return
        rt = ex.runtime
        name = ex.names[min(ex.placed)]
        gen = rt.jobs[name].generation
        pid = next(
            int(e.detail.split("pid ")[1])
            for e in rt.events
            if e.job == name and e.kind == "started" and e.generation == gen
        )
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)
        wait_for(lambda: name in rt.failed(), 60, "noticing the killed trainer")

    with netns_run(c, tmp_path, {"n1": 2}) as run, ElasticRuntime(run, FAST) as rt:
        result = run_policy(
            rt, trace, cluster, profiles, "edf", SimOptions(slot=240), TRAINER, "", kill_once
        )
    assert killed
    recovery = [s for s in result.steps if s.action == "recovery"]
    assert len(recovery) == 1 and recovery[0].stable
    assert result.outcome.accepted + result.outcome.declined == len(trace)
    assert not result.failed
    assert ours(c, "n1") == []


def lose(node: str) -> Callable[[TestbedExecutor], None]:
    """After the first round in which a job holds slots on `node`, kill that node's agent."""

    def hook(ex: TestbedExecutor) -> None:
        if any(node in p.nodes for p in ex.placed.values()) and not ex.runtime.lost():
            os.kill(ex.runtime.agents[node].pid, signal.SIGKILL)
            wait_for(lambda: ex.runtime.lost(), 30, "noticing the lost agent")

    return hook


def test_a_lost_agent_stops_the_run_naming_the_node(
    netns_cluster: NetnsCluster, mirror: Path, tmp_path: Path
) -> None:
    c = netns_cluster
    trace, cluster, profiles = inputs(mirror, tmp_path, "n1g2")
    run = netns_run(c, tmp_path, {"n1": 1, "n2": 1})
    with pytest.raises(NodeLost) as lost, run, ElasticRuntime(run, FAST) as rt:
        run_policy(
            rt, trace, cluster, profiles, "edf", SimOptions(slot=240), TRAINER, "", lose("n1")
        )
    assert lost.value.node == "n1" and "n1" in str(lost.value)
    wait_for(lambda: ours(c, "n1") == [] and ours(c, "n2") == [], 20, "every process gone")


def test_a_lost_agent_s_jobs_are_placed_again_when_configured(
    netns_cluster: NetnsCluster, mirror: Path, tmp_path: Path
) -> None:
    c = netns_cluster
    trace, cluster, profiles = inputs(mirror, tmp_path, "n1g2")
    settings = RuntimeSettings(
        progress_every_s=0.5, start_timeout_s=180, stop_timeout_s=60, on_node_loss="replace"
    )
    # the first job goes to n1 (the tightest fit, first in order); n2's slots take over
    with netns_run(c, tmp_path, {"n1": 2, "n2": 2}) as run, ElasticRuntime(run, settings) as rt:
        result = run_policy(
            rt, trace, cluster, profiles, "edf", SimOptions(slot=240), TRAINER, "", lose("n1")
        )
        assert rt.lost().keys() == {"n1"}
    on_n1 = {s.job for s in result.steps if s.slots.startswith("n1:")}
    moved = [s for s in result.steps if s.job in on_n1 and s.slots.startswith("n2:")]
    assert on_n1 and moved and all(s.stable for s in moved)
    assert result.outcome.accepted + result.outcome.declined == len(trace)
    wait_for(lambda: ours(c, "n1") == [] and ours(c, "n2") == [], 20, "every process gone")


def test_a_job_never_stable_is_charged_the_slot_warned_and_counted(
    netns_cluster: NetnsCluster, mirror: Path, tmp_path: Path
) -> None:
    c = netns_cluster
    trace, cluster, profiles = inputs(mirror, tmp_path, "n1g1", TraceParams(num_jobs=1, gpus=(1,)))
    never = RuntimeSettings(
        progress_every_s=0.5,
        start_timeout_s=180,
        stop_timeout_s=60,
        slot_s=3.0,
        stable_after=10**9,
    )
    with (
        netns_run(c, tmp_path, {"n1": 1}) as run,
        ElasticRuntime(run, never) as rt,
        pytest.warns(UserWarning, match="not stable within the 3 s slot"),
    ):
        result = run_policy(
            rt, trace, cluster, profiles, "ef-accessctrl", SimOptions(slot=240), TRAINER
        )
    first = next(s for s in result.steps if s.action == "start")
    assert not first.stable and first.runtime_charged_s == 3.0 and first.policy_charged
    assert "charged the whole slot" in first.warning
    assert any("not stable" in w for w in result.warnings)
    assert ours(c, "n1") == []
