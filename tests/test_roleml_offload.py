"""RoleML offloading: settings faults named, the Offloading Manager's checks, a destination that
vanishes before the restore (role restored at its source, run goes on, nothing left), and
`snakemake roleml_offload` end to end."""

from __future__ import annotations

import copy
import csv
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from reprise.errors import ConfigError, ProvisionError, TestbedError
from reprise.testbed.systems.roleml import criu
from reprise.testbed.systems.roleml.nodes import CgroupNodes
from reprise.testbed.systems.roleml.offload import Offloader
from reprise.testbed.systems.roleml.study import placement_of
from tests.infra.workflow import SNAKEMAKE, copy_workflow

REPO = Path(__file__).resolve().parents[1]
SETTINGS: dict[str, Any] = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["testbed"][
    "roleml"
]
ACTORS = ("client1", "client4", "client5", "client2", "client6", "client7", "conductor")
PIPELINE_CRIU = REPO / "results" / "roleml" / "criu" / "bin" / "criu"


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
    proc = criu.NamespacedProcess(None, 1)
    return Offloader(
        "criu",
        nodes,
        tmp_path,
        tmp_path,
        {"client1": {"trainer", "coordinator"}, "client3": {"trainer"}},
        {"client1": "node1", "client3": "node3"},
        {"client1": proc, "client3": proc},
        {},
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


def _leftovers(run_id_prefix: str) -> list[str]:
    base = Path("/sys/fs/cgroup/cpu/reprise-roleml")
    groups = [p.name for p in base.glob(f"{run_id_prefix}-*")] if base.is_dir() else []
    return groups


@pytest.mark.slow
def test_destination_gone_before_restore_restores_at_the_source(tmp_path: Path) -> None:
    """The destination node vanishes after the copy: the role comes back on its source node, the
    run records offload-failed naming the node, training finishes, nothing is left."""
    pytest.importorskip("roleml", reason="no roleml extra: pip install -e '.[roleml]'")
    from reprise.testbed.systems.roleml.data import make_digit_batches
    from reprise.testbed.systems.roleml.study import run_offload_study

    binary = _criu_or_skip()
    make_digit_batches(tmp_path / "data", 0.2, 0)
    settings = copy.deepcopy(SETTINGS)
    settings.update(num_rounds=18, commanded=[settings["commanded"][0]], gap_rounds=2)
    settings["automatic"]["timeout_s"] = 90
    run = tmp_path / "faultrun"
    gone: list[str] = []

    def vanish(source: str, destination: str) -> None:
        if gone:  # only the commanded offload's destination vanishes
            return
        gone.append(destination)
        offloader_nodes = nodes_seen[0]
        offloader_nodes.take_down(destination, [])

    nodes_seen: list[CgroupNodes] = []
    original = CgroupNodes.create

    def remember(self: CgroupNodes) -> None:
        nodes_seen.append(self)
        original(self)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(CgroupNodes, "create", remember)
        summary = run_offload_study(settings, tmp_path / "data", binary, run, vanish)
    with (run / "offloads.csv").open() as f:
        offloads = list(csv.DictReader(f))
    first = offloads[0]
    assert gone == ["node8"]
    assert first["status"] == "offload-failed" and first["node_after"] == "node4"
    assert "destination node node8 is gone" in first["reason"]
    assert int(first["epoch_after"]) == int(first["epoch_before"]) + 1
    assert summary["rounds"] == 18
    assert _leftovers("faultrun") == []
    actors = subprocess.run(["pgrep", "-f", str(run / "specs")], capture_output=True, text=True)
    assert actors.stdout.strip() == ""


@pytest.mark.slow
def test_snakemake_roleml_offload_end_to_end(tmp_path: Path) -> None:
    binary = _criu_or_skip()
    work = copy_workflow(tmp_path / "wf")
    env = {**os.environ, "REPRISE_CRIU_PREBUILT": str(Path(binary).resolve())}
    done = subprocess.run(
        [*SNAKEMAKE, "roleml_offload", "-c2", "--config", "testbed={roleml: {num_rounds: 30}}"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    with (work / "results" / "tables" / "roleml_offload.csv").open() as f:
        rows = list(csv.DictReader(f))
    offloads = [r for r in rows if r["row"] == "offload"]
    assert [r["trigger"] for r in offloads] == ["commanded"] * 3 + ["automatic"]
    assert all(r["state_kept"] == "True" for r in offloads)
    assert float(offloads[-1]["decision_ms"]) >= 0
    assert (work / "results" / "figures" / "roleml_offload_phases.png").stat().st_size > 0
    assert _leftovers("paper") == []
