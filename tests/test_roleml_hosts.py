"""RoleML offloading on the hosts of an inventory (runtime `hosts`): settings and kernel-sharing
checks named, hosts without a usable CRIU refused before anything starts, each host's own CPU
reading, and on sshd netns nodes a three-client tree whose trainer moves across hosts (a restore
made to fail first, then a commanded and an automatic offload) with nothing left on any host, and
`snakemake roleml_offload` with runtime hosts."""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from infra.netns_nodes import NetnsCluster, NetnsNode

from reprise.errors import ConfigError, ProvisionError
from reprise.testbed.inventory import load_inventory, parse_inventory
from reprise.testbed.systems.roleml.hosts import (
    HostNodes,
    Hosts,
    HostsSettings,
    cpu_source,
    host_nodes,
)
from reprise.testbed.systems.roleml.nodes import CGROUP_ROOT
from reprise.testbed.systems.roleml.study import run_offload_study
from tests.infra.workflow import copy_workflow, run_snakemake
from tests.test_roleml_offload import _criu_or_skip, _data, small_settings


def test_hosts_runtime_without_an_inventory_is_named() -> None:
    with pytest.raises(ConfigError, match=r"testbed\.roleml\.hosts\.inventory names no inventory"):
        HostsSettings.parse({"runtime": "hosts"})
    with pytest.raises(ConfigError, match=r"hosts\.cpu is 'gpu'"):
        HostsSettings.parse({"hosts": {"inventory": "x.yaml", "cpu": "gpu"}})


def test_a_node_that_is_no_inventory_host_is_named(tmp_path: Path) -> None:
    inventory = parse_inventory(
        {"provider": "ssh", "nodes": [{"name": "vm1", "address": "10.0.0.1"}]},
        tmp_path / "vms.yaml",
    )
    nodes = {"vm1": ["client1"], "vm2": ["client2"], "control": ["conductor"]}
    with pytest.raises(ConfigError, match=r"names node 'vm2', which is no host of .*vms\.yaml"):
        host_nodes(inventory, nodes, "conductor")
    # the conductor's node is the controller itself, not a host
    assert host_nodes(inventory, {"vm1": ["client1"], "control": ["conductor"]}, "conductor") == {
        "vm1": "vm1"
    }


def test_hosts_on_one_kernel_are_read_by_cgroup_or_refused() -> None:
    here = {
        "boot_id": Path("/proc/sys/kernel/random/boot_id").read_text().strip(),
        "pidns": str(Path("/proc/self/ns/pid").readlink()),
    }
    vm = [{"boot_id": f"vm-{i}", "pidns": "pid:[1]"} for i in range(2)]
    assert cpu_source("auto", {"a": here, "b": here})[0] == "cgroup"
    assert cpu_source("auto", {"a": vm[0], "b": vm[1]})[0] == "host"
    source, why = cpu_source("host", {"a": here, "b": here})
    assert source == "host" and "hosts [['a', 'b']] share one kernel" in why
    with pytest.raises(ConfigError, match=r"share one kernel .* not this machine's"):
        cpu_source("auto", {"a": vm[0], "b": vm[0]})
    with pytest.raises(ConfigError, match=r"hosts \['b'\] do not run on this machine's kernel"):
        cpu_source("cgroup", {"a": here, "b": vm[1]})


def _inventory(cluster: NetnsCluster, tmp_path: Path) -> Path:
    known = cluster.known_hosts(tmp_path / "known_hosts")
    return cluster.inventory(tmp_path / "hosts.yaml", ssh={"known_hosts": str(known)})


def _host_settings(
    inventory: Path, criu: str, names: tuple[str, str, str, str], num_rounds: int = 20
) -> dict[str, Any]:
    """The three-client tree of the one-host tests, its nodes hosts: client3 starts on the
    third, the fourth is empty; the conductor runs here."""
    settings = small_settings("hosts", num_rounds=num_rounds)
    a, b, c, d = names
    settings["nodes"] = {
        a: ["client1"],
        b: ["client2"],
        c: ["client3"],
        d: [],
        "control": ["conductor"],
    }
    settings["hosts"] = {"inventory": str(inventory), "criu": criu, "cpu": "auto"}
    return settings


def _foreign_processes(nodes: list[NetnsNode]) -> list[str]:
    """Processes in the hosts' namespaces other than their sshd (actors, CRIU, stress)."""
    found = []
    for node in nodes:
        for pid in node.pids():
            try:
                comm = Path(f"/proc/{pid}/comm").read_text().strip()
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if comm != "sshd":
                found.append(f"{node.name} pid {pid}: {cmdline.decode()[:120]}")
    return found


@pytest.mark.slow
def test_a_host_without_a_new_enough_criu_is_named_before_anything_starts(
    netns_cluster: NetnsCluster, tmp_path: Path
) -> None:
    old = tmp_path / "criu"
    old.write_text("#!/bin/sh\necho 'Version: 4.1.1'\n")
    old.chmod(0o755)
    inventory = _inventory(netns_cluster, tmp_path)
    settings = _host_settings(inventory, str(old), ("n1", "n2", "n1", "n2"))
    settings["nodes"] = {"n1": ["client1", "client3"], "n2": ["client2"], "control": ["conductor"]}
    settings["commanded"] = [{"actor": "client3", "role": "trainer", "destination": "n2"}]
    with pytest.raises(ProvisionError, match=r"host n1 \(root@[\d.]+\): CRIU at .* is 4\.1\.1"):
        run_offload_study(settings, tmp_path, "unused", tmp_path / "run")
    work = Path(_workdir(inventory)) / "roleml"
    assert not work.exists() or not any(work.iterdir())
    assert _foreign_processes(list(netns_cluster.nodes.values())) == []


def _workdir(inventory: Path) -> str:
    return str(yaml.safe_load(inventory.read_text())["workdir"])


@pytest.mark.slow
def test_each_host_reads_its_own_cpu(netns_cluster: NetnsCluster, tmp_path: Path) -> None:
    """Host-wide /proc/stat over SSH, as RoleML's probes read it (here all hosts share a
    kernel, so the readings agree; on VMs each is its own)."""
    hosts = Hosts.open(load_inventory(_inventory(netns_cluster, tmp_path)), ["n1", "n2"], tmp_path)
    try:
        nodes = HostNodes(hosts, ("n1", "n2"))
        assert nodes.sample() == {}  # the first reading is the baseline
        time.sleep(0.5)
        usage = nodes.sample()
        assert set(usage) == {"n1", "n2"} and all(0 <= v <= 100 for v in usage.values())
        assert nodes.alive("n1") and not nodes.alive("control")
    finally:
        hosts.close()


def _fail_first_restore(
    done: list[str], run: Path, workdir: str
) -> Callable[[str, str, Path], None]:
    """The first offload's shipped images lose pstree.img on the destination host (the netns
    hosts share this machine's files, so the run's folder there is a local path too)."""

    def fault(source: str, destination: str, shipped: Path) -> None:
        if done:
            return
        run_id = json.loads((run / "run.json").read_text())["run_id"]
        image = Path(workdir) / "roleml" / run_id / shipped.relative_to(run) / "pstree.img"
        assert image.exists(), f"no {image}"
        image.unlink()
        done.append(destination)

    return fault


@pytest.mark.slow
def test_trainer_moves_across_hosts_keeps_its_state_and_nothing_is_left(
    netns_cluster: NetnsCluster,
    throwaway_node: Callable[[str], NetnsNode],
    tmp_path: Path,
) -> None:
    binary = str(Path(_criu_or_skip()).resolve())
    data = _data(tmp_path)
    third, fourth = throwaway_node("h"), throwaway_node("h")
    names = ("n1", "n2", third.name, fourth.name)
    inventory = _inventory(netns_cluster, tmp_path)
    settings = _host_settings(inventory, binary, names)
    settings["commanded"] = [
        {"actor": "client3", "role": "trainer", "destination": fourth.name},
        {"actor": "client3", "role": "trainer", "destination": fourth.name},
    ]
    # a stressed 0.4-core node reads 45-90% of its limit on a quiet host, 20-60% at load 30; only
    # client3 can move (client1 and client2 run aggregators too), so the one offload a low
    # threshold can plan is the stressed trainer's
    settings["automatic"] = {
        **settings["automatic"],
        "threshold_pct": 20,
        "window": 4,
        "timeout_s": 180,
    }
    done: list[str] = []
    run = tmp_path / "run"
    fault = _fail_first_restore(done, run, _workdir(inventory))
    summary = run_offload_study(settings, data, "unused", run, fault)
    with (run / "offloads.csv").open() as f:
        offloads = list(csv.DictReader(f))
    failed, moved, automatic = offloads
    assert done == [fourth.name]
    assert failed["status"] == "offload-failed" and failed["node_after"] == third.name
    assert "restore" in failed["reason"]
    assert moved["status"] == "offloaded" and moved["node_after"] == fourth.name
    assert float(moved["transfer_mb"]) >= float(moved["checkpoint_mb"]) > 10
    assert automatic["trigger"] == "automatic" and automatic["status"] == "offloaded"
    assert automatic["source"] == fourth.name
    for row in offloads:  # the trainer was never restarted: its epoch counter went on
        assert int(row["epoch_after"]) == int(row["epoch_before"]) + 1, row
    assert summary["rounds"] == 20 and summary["cpu_source"] == "cgroup"
    # the moved trainer's address changed, and the aggregator that calls it was told
    head = (run / "logs" / "client1.log").read_text()
    assert "contact updated for actor client3" in head
    record = json.loads((run / "hosts.json").read_text())
    assert record["actors"] == {} and record["stress"] == {}
    assert not Path(record["base"]).exists()
    assert list(CGROUP_ROOT.glob(f"*/reprise-roleml/{run.name}-*")) == []
    hosts = [netns_cluster.nodes[n] for n in names]
    assert _foreign_processes(hosts) == []


@pytest.mark.slow
def test_snakemake_roleml_offload_on_hosts(
    netns_cluster: NetnsCluster,
    throwaway_node: Callable[[str], NetnsNode],
    tmp_path: Path,
) -> None:
    """`snakemake roleml_offload` with runtime hosts: three commanded offloads of a trainer
    between two hosts and the automatic one, each keeping its state, then the table and the
    figures; nothing left on the hosts."""
    binary = str(Path(_criu_or_skip()).resolve())
    third, fourth = throwaway_node("h"), throwaway_node("h")
    names = ("n1", "n2", third.name, fourth.name)
    inventory = _inventory(netns_cluster, tmp_path)
    settings = _host_settings(inventory, binary, names, num_rounds=24)
    settings["repetitions"] = 1
    settings["commanded"] = [
        {"actor": "client3", "role": "trainer", "destination": d}
        for d in (fourth.name, third.name, fourth.name)
    ]
    settings["automatic"] = {
        **settings["automatic"], "threshold_pct": 20, "window": 4, "timeout_s": 180,
    }  # fmt: skip
    work = copy_workflow(tmp_path / "wf")
    config = yaml.safe_load((work / "config" / "config.yaml").read_text())
    config["testbed"]["roleml"] = settings
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    done = run_snakemake(
        work, "roleml_offload", "-c2", env={"REPRISE_CRIU_PREBUILT": binary}, timeout=1200
    )
    assert done.returncode == 0, done.stderr[-3000:]
    with (work / "results" / "tables" / "roleml_offload.csv").open() as f:
        rows = list(csv.DictReader(f))
    offloads = [r for r in rows if r["row"] == "offload"]
    assert [r["trigger"] for r in offloads] == ["commanded"] * 3 + ["automatic"]
    assert all(r["state_kept"] == "True" for r in offloads)
    for name in ("roleml_offload", "roleml_offload_phases"):
        assert (work / "results" / "figures" / f"{name}.png").stat().st_size > 0
    run = work / "results" / "runs" / "testbed" / "roleml_offload" / "small" / "rep0"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["runtime"] == "hosts" and summary["rounds"] == 24
    assert not Path(json.loads((run / "hosts.json").read_text())["base"]).exists()
    assert _foreign_processes([netns_cluster.nodes[n] for n in names]) == []
