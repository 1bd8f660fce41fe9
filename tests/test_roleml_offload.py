"""RoleML offloading with actors as host processes: settings faults named, the Offloading
Manager's checks, CRIU missing/old and a malformed topology stopping a run before anything
starts, a restore made to fail and a destination that vanishes (role restored at its source,
`offload-failed`, the job goes on), a failed run leaving nothing behind, and `snakemake
roleml_offload` end to end on a small tree."""

from __future__ import annotations

import copy
import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from reprise.errors import ConfigError, ProvisionError, TestbedError
from reprise.testbed.systems.roleml import criu
from reprise.testbed.systems.roleml.nodes import CGROUP_ROOT, CgroupNodes
from reprise.testbed.systems.roleml.offload import Offloader
from reprise.testbed.systems.roleml.runtime import ProcessRuntime
from reprise.testbed.systems.roleml.study import placement_of, run_offload_study
from tests.infra.workflow import copy_workflow, run_snakemake

REPO = Path(__file__).resolve().parents[1]
SETTINGS: dict[str, Any] = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["testbed"][
    "roleml"
]
ACTORS = ("client1", "client4", "client5", "client2", "client6", "client7", "conductor")
PIPELINE_CRIU = REPO / "results" / "roleml" / "criu" / "bin" / "criu"


def small_settings(runtime: str, num_rounds: int = 16) -> dict[str, Any]:
    """A three-client tree on five nodes (4 x 0.4 cores + control): one commanded offload of
    client3 to the empty node4, then the stress on client3's node."""
    settings = copy.deepcopy(SETTINGS)
    settings.update(
        runtime=runtime,
        topology="small",
        topologies={
            "small": {
                "root": "client1",
                "groups": {"client1": ["client1", "client3"], "client2": ["client2"]},
            }
        },
        nodes={
            "node1": ["client1"],
            "node2": ["client2"],
            "node3": ["client3"],
            "node4": [],
            "control": ["conductor"],
        },
        cpu_limit=0.4,
        num_rounds=num_rounds,
        warmup_rounds=2,
        gap_rounds=2,
        commanded=[{"actor": "client3", "role": "trainer", "destination": "node4"}],
    )
    settings["automatic"] = {**settings["automatic"], "stress_actor": "client3", "timeout_s": 90}
    return settings


def test_an_actor_on_two_nodes_is_named() -> None:
    settings = copy.deepcopy(SETTINGS)
    settings["nodes"]["node8"] = ["client4"]
    with pytest.raises(ConfigError, match="puts 'client4' on 'node4' and 'node8'"):
        placement_of(settings, ACTORS)


def test_an_actor_without_a_node_is_named() -> None:
    settings = copy.deepcopy(SETTINGS)
    settings["nodes"]["node2"] = []
    with pytest.raises(ConfigError, match=r"places no node for \['client2'\]"):
        placement_of(settings, ACTORS)


def test_an_unknown_offload_destination_is_named() -> None:
    settings = copy.deepcopy(SETTINGS)
    settings["commanded"][0]["destination"] = "node9"
    with pytest.raises(ConfigError, match="commanded names node 'node9'"):
        placement_of(settings, ACTORS)


def _offloader(tmp_path: Path) -> Offloader:
    nodes = CgroupNodes("t", ("node1", "node3", "node4"), 1.0, root=tmp_path)
    runtime = ProcessRuntime("python", "criu", nodes, tmp_path)
    proc = criu.NamespacedProcess(None, 1)
    runtime.procs.update(client1=proc, client3=proc)
    return Offloader(
        runtime,
        nodes,
        tmp_path,
        tmp_path,
        {"client1": {"trainer", "coordinator"}, "client3": {"trainer"}},
        {"client1": "node1", "client3": "node3"},
    )


def test_offload_of_an_actor_with_other_roles_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TestbedError, match=r"also runs \['coordinator'\]"):
        _offloader(tmp_path).check("client1", "trainer", "node4")


def test_offload_to_an_unknown_node_or_where_it_runs_is_refused(tmp_path: Path) -> None:
    offloader = _offloader(tmp_path)
    with pytest.raises(TestbedError, match="unknown node 'node9'"):
        offloader.check("client3", "trainer", "node9")
    with pytest.raises(TestbedError, match="already runs there"):
        offloader.check("client3", "trainer", "node3")
    with pytest.raises(TestbedError, match="no actor 'client9' runs"):
        offloader.check("client9", "trainer", "node4")


def _run_groups() -> set[str]:
    base = CGROUP_ROOT / "cpu" / "reprise-roleml"
    return {p.name for p in base.iterdir()} if base.is_dir() else set()


def test_old_criu_stops_the_run_before_anything_starts(tmp_path: Path) -> None:
    old = tmp_path / "criu"
    old.write_text("#!/bin/sh\necho 'Version: 4.1.1'\n")
    old.chmod(0o755)
    before = _run_groups()
    with pytest.raises(ProvisionError, match=r"is 4\.1\.1; role offloading needs 4\.2 or newer"):
        run_offload_study(small_settings("process"), tmp_path, str(old), tmp_path / "run")
    assert _run_groups() == before
    assert not (tmp_path / "run").exists()


def _criu_or_skip() -> str:
    candidates = [os.environ.get("REPRISE_CRIU", ""), str(PIPELINE_CRIU), "criu"]
    for binary in filter(None, candidates):
        try:
            criu.require_criu(binary)
        except ProvisionError:
            continue
        if os.geteuid() != 0:
            pytest.skip("CRIU checkpoints and node cgroups need root")
        return binary
    pytest.skip("no CRIU >= 4.2 (set REPRISE_CRIU or run `snakemake roleml_criu`)")


def test_malformed_topology_stops_the_run_before_anything_starts(tmp_path: Path) -> None:
    binary = _criu_or_skip()
    settings = small_settings("process")
    settings["topologies"]["small"] = {"root": "client9", "groups": {"client1": ["client1"]}}
    before = _run_groups()
    with pytest.raises(ConfigError, match=r"topologies\.small\.root is 'client9'"):
        run_offload_study(settings, tmp_path, binary, tmp_path / "run")
    assert _run_groups() == before


def leftovers(run: Path) -> list[str]:
    """What a run may leave behind: node cgroups in any hierarchy, actor/stress processes,
    checkpoint images, the experimental dockerd's state (socket, exec root, PID)."""
    found = [str(p) for p in CGROUP_ROOT.glob(f"*/reprise-roleml/{run.name}-*")]
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(run) in cmdline:
            found.append(f"pid {proc.name}: {cmdline[:120]}")
    if (run / "nodes").exists():
        found.append(str(run / "nodes"))
    record = run / "run.json"
    run_id = json.loads(record.read_text())["run_id"] if record.exists() else ""
    if run_id and Path(f"/tmp/reprise-roleml-{run_id}").exists():
        found.append(f"/tmp/reprise-roleml-{run_id}")
    return found


def _data(tmp_path: Path) -> Path:
    pytest.importorskip("roleml", reason="no roleml extra: pip install -e '.[roleml]'")
    from reprise.testbed.systems.roleml.data import make_digit_batches

    make_digit_batches(tmp_path / "data", 0.2, 0)
    return tmp_path / "data"


def _offloads(run: Path) -> list[dict[str, str]]:
    with (run / "offloads.csv").open() as f:
        return list(csv.DictReader(f))


def run_with_fault(
    tmp_path: Path, settings: dict[str, Any], fault: Callable[[str, str, Path], None], **extra: Any
) -> tuple[dict[str, Any], list[dict[str, str]], Path]:
    binary = _criu_or_skip()
    data = _data(tmp_path)
    run = tmp_path / "faultrun"
    summary = run_offload_study(settings, data, binary, run, fault, **extra)
    return summary, _offloads(run), run


def corrupt_first_restore(done: list[str]) -> Callable[[str, str, Path], None]:
    """A fault for the first offload: its shipped checkpoint loses the process tree image, so
    CRIU's restore at the destination fails."""

    def fault(source: str, destination: str, shipped: Path) -> None:
        if done:
            return
        images = [p for p in shipped.rglob("pstree.img")]
        assert images, f"no pstree.img under {shipped}"
        for image in images:
            image.unlink()
        done.append(destination)

    return fault


@pytest.mark.slow
def test_restore_made_to_fail_restores_at_the_source_and_the_job_goes_on(tmp_path: Path) -> None:
    done: list[str] = []
    summary, offloads, run = run_with_fault(
        tmp_path, small_settings("process"), corrupt_first_restore(done)
    )
    first, automatic = offloads[0], offloads[-1]
    assert done == ["node4"]
    assert first["status"] == "offload-failed" and first["node_after"] == "node3"
    assert "restore" in first["reason"]
    # the role came back with its state: its epoch counter went on
    assert int(first["epoch_after"]) == int(first["epoch_before"]) + 1
    # the job went on: every round, and the Decider's offload after it succeeded
    assert summary["rounds"] == 16
    assert automatic["trigger"] == "automatic" and automatic["status"] == "offloaded"
    assert leftovers(run) == []


@pytest.mark.slow
def test_checkpoint_that_fails_leaves_the_role_running_at_its_source(tmp_path: Path) -> None:
    """CRIU's first dump fails (a wrapper hands it an option it refuses, as a dump refused by the
    kernel would fail): the role runs on where it was, the run records offload-failed with the
    reason, and the later offloads and every round go on."""
    real = _criu_or_skip()
    data = _data(tmp_path)
    marker = tmp_path / "dump-failed-once"
    wrapper = tmp_path / "criu"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = dump ] && [ ! -e {marker} ]; then\n'
        f'  touch {marker}; shift; exec {real} dump --no-such-option "$@"\n'
        "fi\n"
        f'exec {real} "$@"\n'
    )
    wrapper.chmod(0o755)
    settings = small_settings("process")
    settings["commanded"] = settings["commanded"] * 2
    run = tmp_path / "ckptrun"
    summary = run_offload_study(settings, data, str(wrapper), run)
    failed, moved, automatic = _offloads(run)
    assert marker.exists()
    assert failed["status"] == "offload-failed" and failed["node_after"] == "node3"
    assert failed["reason"].startswith("checkpoint failed: criu dump failed")
    assert "no-such-option" in failed["reason"]  # CRIU's own words, from its stderr
    # it was never stopped: its epochs went on, and the same move then succeeded
    assert int(failed["epoch_after"]) > int(failed["epoch_before"])
    assert moved["status"] == "offloaded" and moved["node_after"] == "node4"
    assert automatic["trigger"] == "automatic" and automatic["status"] == "offloaded"
    assert summary["rounds"] == 16
    assert leftovers(run) == []


@pytest.mark.slow
def test_destination_gone_before_restore_restores_at_the_source(tmp_path: Path) -> None:
    """The destination node vanishes after the copy: the role comes back on its source node, the
    run records offload-failed naming the node, training finishes, nothing is left."""
    gone: list[str] = []
    nodes_seen: list[CgroupNodes] = []
    original = CgroupNodes.create

    def remember(self: CgroupNodes) -> None:
        nodes_seen.append(self)
        original(self)

    def vanish(source: str, destination: str, shipped: Path) -> None:
        if not gone:  # only the commanded offload's destination vanishes
            gone.append(destination)
            nodes_seen[0].take_down(destination, [])

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(CgroupNodes, "create", remember)
        summary, offloads, run = run_with_fault(tmp_path, small_settings("process"), vanish)
    first = offloads[0]
    assert gone == ["node4"]
    assert first["status"] == "offload-failed" and first["node_after"] == "node3"
    assert "destination node node4 is gone" in first["reason"]
    assert int(first["epoch_after"]) == int(first["epoch_before"]) + 1
    assert summary["rounds"] == 16
    assert leftovers(run) == []


@pytest.mark.slow
def test_a_run_that_fails_midway_leaves_nothing_behind(tmp_path: Path) -> None:
    """The Decider never sees an overload (threshold above 100%): the run fails naming the
    node, after its commanded offload; actors, stress, cgroups and images are all gone."""
    binary = _criu_or_skip()
    data = _data(tmp_path)
    settings = small_settings("process")
    settings["automatic"] = {**settings["automatic"], "threshold_pct": 500, "timeout_s": 8}
    run = tmp_path / "failrun"
    started = time.monotonic()
    with pytest.raises(TestbedError, match="the Decider made no decision within 8s") as failed:
        run_offload_study(settings, data, binary, run)
    # the error says what the Decider saw (cpu.csv does not survive a failed Snakemake job)
    assert "threshold 500% of a node's limit" in str(failed.value)
    assert "load average" in str(failed.value)
    assert time.monotonic() - started < 300
    assert [r["status"] for r in _offloads(run)] == ["offloaded"]
    assert leftovers(run) == []


@pytest.mark.slow
def test_sigterm_mid_run_stops_everything_the_run_started(tmp_path: Path) -> None:
    """A run killed with SIGTERM while the job trains (as Snakemake stops a job on Ctrl-C or a
    cluster's scancel): the driver exits non-zero and removes actors, cgroups and images."""
    binary = _criu_or_skip()
    data = _data(tmp_path)
    run = tmp_path / "termrun"
    code = (
        "import json, sys; from pathlib import Path\n"
        "from reprise.testbed.systems.roleml.study import run_offload_study\n"
        "settings = json.loads(sys.argv[1])\n"
        "run_offload_study(settings, Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4]))\n"
    )
    settings = json.dumps(small_settings("process", num_rounds=40))
    driver = subprocess.Popen(
        [sys.executable, "-c", code, settings, str(data), binary, str(run)],
        stderr=subprocess.PIPE,
        text=True,
    )
    rounds = run / "rounds.csv"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and driver.poll() is None:
        if rounds.is_file() and len(rounds.read_text().splitlines()) > 3:
            break
        time.sleep(0.5)
    assert driver.poll() is None, "the run ended before it trained three rounds"
    assert list(CGROUP_ROOT.glob(f"*/reprise-roleml/{run.name}-*")), "no node cgroups"
    driver.send_signal(signal.SIGTERM)
    _, err = driver.communicate(timeout=180)
    assert driver.returncode != 0, err[-2000:]
    assert leftovers(run) == [], err[-3000:]
    assert "still in its cgroup" not in err, err[-3000:]  # stopped by PID, not swept up
    assert not (run / "summary.json").exists()


@pytest.mark.slow
def test_snakemake_roleml_offload_end_to_end(tmp_path: Path) -> None:
    """`snakemake roleml_offload` on a three-client tree with actors as processes, run twice: 3
    commanded offloads and 1 automatic per run, each keeping the trainer's state, the table over
    both runs and both figures."""
    binary = _criu_or_skip()
    work = copy_workflow(tmp_path / "wf")
    small = small_settings("process", num_rounds=24)
    small["repetitions"] = 2
    small["commanded"] = [
        {"actor": "client3", "role": "trainer", "destination": "node4"},
        {"actor": "client3", "role": "trainer", "destination": "node3"},
        {"actor": "client3", "role": "trainer", "destination": "node4"},
    ]
    config = yaml.safe_load((work / "config" / "config.yaml").read_text())
    config["testbed"]["roleml"] = small
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    done = run_snakemake(
        work,
        "roleml_offload",
        "-c2",
        env={"REPRISE_CRIU_PREBUILT": str(Path(binary).resolve())},
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    with (work / "results" / "tables" / "roleml_offload.csv").open() as f:
        rows = list(csv.DictReader(f))
    offloads = [r for r in rows if r["row"] == "offload"]
    # both repetitions, each with its three commanded offloads and the Decider's
    per_run = ["commanded"] * 3 + ["automatic"]
    assert [(r["repetition"], r["trigger"]) for r in offloads] == [
        (str(rep), trigger) for rep in (0, 1) for trigger in per_run
    ]
    assert all(r["state_kept"] == "True" for r in offloads)
    assert all(float(r["detect_s"]) > 0 for r in offloads if r["trigger"] == "automatic")
    medians = {r["trigger"]: r for r in rows if r["row"] == "median"}
    assert float(medians["commanded"]["total_s"]) > 0
    assert (medians["commanded"]["offload"], medians["commanded"]["repetition"]) == ("6", "2")
    for name in ("roleml_offload", "roleml_offload_phases"):
        assert (work / "results" / "figures" / f"{name}.png").stat().st_size > 0
    runs = work / "results" / "runs" / "testbed" / "roleml_offload" / "small"
    for rep in ("rep0", "rep1"):
        assert leftovers(runs / rep) == []
