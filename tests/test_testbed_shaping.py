"""Link shaping between node groups with tc htb, measured with iperf3 on sshd netns nodes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from infra.netns_nodes import NetnsCluster

from reprise import errors
from reprise.testbed.inventory import Link, load_inventory
from reprise.testbed.lifecycle import STATE_FILE, SshLauncher, TestbedRun
from reprise.testbed.provision.ssh import SshProvider
from reprise.testbed.shaping import measure_bandwidth


def in_node(c: NetnsCluster, name: str, *argv: str) -> str:
    return subprocess.run(
        ["ip", "netns", "exec", c.nodes[name].netns, *argv],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def two_group_run(c: NetnsCluster, tmp_path: Path) -> TestbedRun:
    known = c.known_hosts(tmp_path / "known_hosts", ["n1", "n2"])
    inv = c.inventory(
        tmp_path / "inv.yaml",
        groups={"n1": "hpc", "n2": "cloud"},
        ssh={"known_hosts": str(known)},
        links=[{"between": ["hpc", "cloud"], "rate_mbit": 50}],
    )
    inventory = load_inventory(inv)
    hosts = tuple(h for h in inventory.hosts if h.name in ("n1", "n2"))
    inventory = type(inventory)(**{**inventory.__dict__, "hosts": hosts})
    return TestbedRun(SshProvider(inventory, tmp_path / "state"), SshLauncher(), tmp_path / "run")


def test_shape_50_mbit_both_ways_and_measure(netns_cluster: NetnsCluster, tmp_path: Path) -> None:
    c = netns_cluster
    run = two_group_run(c, tmp_path)
    with run:
        n1, n2 = run.node("n1"), run.node("n2")
        unshaped = measure_bandwidth(run.launcher, n1, n2, seconds=1)
        assert unshaped > 200  # a veth pair: Gbit/s, far above the cap
        inventory = load_inventory(tmp_path / "inv.yaml")
        run.shape(inventory.links)
        assert "htb 5e1f:" in in_node(c, "n1", "tc", "qdisc", "show", "dev", "eth0")
        record = json.loads((tmp_path / "run" / STATE_FILE).read_text())
        assert {(r["node"], r["dev"]) for r in record["shaping"]} == {
            ("n1", "eth0"),
            ("n2", "eth0"),
        }
        forward = measure_bandwidth(run.launcher, n1, n2, seconds=2)
        backward = measure_bandwidth(run.launcher, n2, n1, seconds=2)
        assert forward == pytest.approx(50, rel=0.15)
        assert backward == pytest.approx(50, rel=0.15)
    for name in ("n1", "n2"):
        assert "5e1f" not in in_node(c, name, "tc", "qdisc", "show", "dev", "eth0")
    assert json.loads((tmp_path / "run" / STATE_FILE).read_text())["shaping"] == []


def test_foreign_root_qdisc_is_left_alone(netns_cluster: NetnsCluster, tmp_path: Path) -> None:
    c = netns_cluster
    tbf = ["tc", "qdisc", "add", "dev", "eth0", "root", "tbf"]
    in_node(c, "n2", *tbf, "rate", "100mbit", "burst", "64kb", "latency", "50ms")
    try:
        with (
            pytest.raises(errors.TestbedError, match=r"'n2'.*root qdisc we did not add"),
            two_group_run(c, tmp_path) as run,
        ):
            run.shape([Link(("hpc", "cloud"), 30)])
        assert "tbf" in in_node(c, "n2", "tc", "qdisc", "show", "dev", "eth0")
        assert "5e1f" not in in_node(c, "n1", "tc", "qdisc", "show", "dev", "eth0")
    finally:
        in_node(c, "n2", "tc", "qdisc", "del", "dev", "eth0", "root")
