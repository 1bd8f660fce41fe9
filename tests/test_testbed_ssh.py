"""SSH provider, trust step and probe against sshd netns nodes; every fault named."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from infra.netns_nodes import NetnsCluster

from reprise.errors import ProvisionError
from reprise.testbed.inventory import load_inventory
from reprise.testbed.lifecycle import SshLauncher
from reprise.testbed.probe import probe_nodes
from reprise.testbed.provision.ssh import SshProvider
from reprise.testbed.trust import main as trust_main


def provision(inv: Path, state: Path) -> list[str]:
    provider = SshProvider(load_inventory(inv), state)
    try:
        return [n.name for n in provider.provision()]
    finally:
        provider.teardown()


def test_provision_and_probe(netns_cluster: NetnsCluster, tmp_path: Path) -> None:
    c = netns_cluster
    known = c.known_hosts(tmp_path / "known_hosts", ["n1", "n2"])
    inv = c.inventory(tmp_path / "inv.yaml", ssh={"known_hosts": str(known)})
    provider = SshProvider(load_inventory(inv), tmp_path / "state")
    nodes = [n for n in provider.provision() if n.name in ("n1", "n2")]
    launcher = SshLauncher(nodes)
    try:
        rows = probe_nodes(launcher, nodes)
    finally:
        launcher.close()
        provider.teardown()
    assert [r["name"] for r in rows] == ["n1", "n2"]
    for row in rows:
        assert row["hostname"] == row["name"]  # really ran inside that node
        assert row["python"].startswith("3.")
        assert row["packages"]["reprise"] is not None
        assert row["cpu_slots"] >= 1
        assert row["gpu_count"] == (0 if shutil.which("nvidia-smi") is None else row["gpu_count"])
        assert abs(row["clock_offset_s"]) < 0.05  # same kernel clock: only the probe's error
        assert 0 < row["clock_rtt_s"] < 0.5


def test_inventory_fingerprint_instead_of_known_hosts(
    netns_cluster: NetnsCluster, tmp_path: Path
) -> None:
    c = netns_cluster
    inv = c.inventory(tmp_path / "inv.yaml")
    doc = yaml.safe_load(inv.read_text())
    for node in doc["nodes"]:
        node["host_key"] = c.nodes[node["name"]].fingerprint()
    inv.write_text(yaml.safe_dump(doc))
    assert "n1" in provision(inv, tmp_path / "state")
    # The keys proven at provisioning are what later connections check.
    recorded = (tmp_path / "state" / "known_hosts").read_text()
    assert c.nodes["n1"].host_key_pub.read_text().split()[1] in recorded


def test_unreachable_host_is_named(netns_cluster: NetnsCluster, tmp_path: Path) -> None:
    c = netns_cluster
    known = c.known_hosts(tmp_path / "known_hosts")
    inv = c.inventory(tmp_path / "inv.yaml", ssh={"known_hosts": str(known)})
    doc = yaml.safe_load(inv.read_text())
    doc["nodes"] = [{"name": "ghost", "address": c.nodes["n1"].address, "port": 2222}]
    inv.write_text(yaml.safe_dump(doc))
    with pytest.raises(ProvisionError) as err:
        provision(inv, tmp_path / "state")
    msg = str(err.value)
    assert "'ghost'" in msg and f"{c.nodes['n1'].address}:2222" in msg and "unreachable" in msg
    assert "sshd listens on port 2222" in msg


def test_wrong_key_is_named(netns_cluster: NetnsCluster, tmp_path: Path) -> None:
    c = netns_cluster
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    known = c.known_hosts(tmp_path / "known_hosts")
    inv = c.inventory(tmp_path / "inv.yaml", ssh={"known_hosts": str(known), "key": str(other)})
    with pytest.raises(ProvisionError) as err:
        provision(inv, tmp_path / "state")
    msg = str(err.value)
    assert "authentication failed" in msg and "'root'" in msg and str(other) in msg
    assert "'n1'" in msg and "authorized_keys" in msg

    missing = c.inventory(tmp_path / "inv2.yaml", ssh={"key": str(tmp_path / "nope")})
    with pytest.raises(ProvisionError, match=r"private key .*nope does not exist"):
        provision(missing, tmp_path / "state")


def test_unknown_host_key_says_how_to_trust(netns_cluster: NetnsCluster, tmp_path: Path) -> None:
    c = netns_cluster
    known = c.known_hosts(tmp_path / "known_hosts", ["n1"])
    inv = c.inventory(tmp_path / "inv.yaml", ssh={"known_hosts": str(known)})
    with pytest.raises(ProvisionError) as err:
        provision(inv, tmp_path / "state")
    msg = str(err.value)
    assert "'n2'" in msg and "unknown host key" in msg
    assert c.nodes["n2"].fingerprint() in msg
    assert f"python -m reprise.testbed.trust {inv}" in msg


def test_host_key_mismatch_shows_both_fingerprints(
    netns_cluster: NetnsCluster, tmp_path: Path
) -> None:
    c = netns_cluster
    n1, n2 = c.nodes["n1"], c.nodes["n2"]
    # known_hosts claims n2's address has n1's key: a reinstalled host, or someone in between.
    known = tmp_path / "known_hosts"
    known.write_text(n1.known_hosts_line() + n1.known_hosts_line().replace(n1.address, n2.address))
    inv = c.inventory(tmp_path / "inv.yaml", ssh={"known_hosts": str(known)})
    with pytest.raises(ProvisionError) as err:
        provision(inv, tmp_path / "state")
    msg = str(err.value)
    assert "'n2'" in msg and "HOST KEY MISMATCH" in msg
    assert n1.fingerprint() in msg and n2.fingerprint() in msg

    doc = yaml.safe_load(inv.read_text())
    del doc["ssh"]["known_hosts"]
    doc["nodes"] = [{"name": "n2", "address": n2.address, "host_key": n1.fingerprint()}]
    inv.write_text(yaml.safe_dump(doc))
    with pytest.raises(ProvisionError) as err:
        provision(inv, tmp_path / "state")
    msg = str(err.value)
    assert "HOST KEY MISMATCH" in msg and n1.fingerprint() in msg and n2.fingerprint() in msg


def test_trust_step(
    netns_cluster: NetnsCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    c = netns_cluster
    n1, n2 = c.nodes["n1"], c.nodes["n2"]
    known = tmp_path / "trusted" / "known_hosts"
    inv = c.inventory(tmp_path / "inv.yaml", ssh={"known_hosts": str(known)})
    doc = yaml.safe_load(inv.read_text())
    doc["nodes"] = [
        {"name": "n1", "address": n1.address, "host_key": n1.fingerprint()},
        {"name": "n2", "address": n2.address},
    ]
    inv.write_text(yaml.safe_dump(doc))

    # n2 has no fingerprint to check against: it is shown, not recorded.
    assert trust_main([str(inv)]) == 1
    out = capsys.readouterr()
    assert n2.fingerprint() in out.out and "unverified" in out.out and "n2" in out.err
    assert n1.address in known.read_text() and n2.address not in known.read_text()
    with pytest.raises(ProvisionError, match=r"'n2'.*unknown host key"):
        provision(inv, tmp_path / "state")

    # The user's explicit choice records it; provisioning then works.
    assert trust_main([str(inv), "--accept-new"]) == 0
    assert n2.address in known.read_text()
    assert provision(inv, tmp_path / "state") == ["n1", "n2"]

    # A fingerprint that disagrees is never written.
    doc["nodes"][1]["host_key"] = n1.fingerprint()
    inv.write_text(yaml.safe_dump(doc))
    known.unlink()
    assert trust_main([str(inv), "--accept-new"]) == 1
    assert "mismatch" in capsys.readouterr().out
    assert n2.address not in known.read_text()


def test_inventory_mistakes_are_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("provider: ssh\nnodes:\n  - {name: a, adress: 10.0.0.1}\n")
    with pytest.raises(ProvisionError) as err:
        load_inventory(path)
    assert str(path) in str(err.value) and "did you mean 'address'" in str(err.value)
    path.write_text("provider: ssh\nnodes:\n  - {name: a}\n")
    with pytest.raises(ProvisionError, match=r"nodes\[0\].*'address' is a required property"):
        load_inventory(path)
