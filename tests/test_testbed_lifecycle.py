"""Run lifecycle on sshd netns nodes: launch, watch, stop by PGID, faults, signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from infra.netns_nodes import NetnsCluster

from reprise import errors
from reprise.testbed.inventory import load_inventory
from reprise.testbed.lifecycle import STATE_FILE, SshLauncher, TestbedRun, recover
from reprise.testbed.provision.ssh import Connections, SshProvider


def group_alive(pgid: int) -> list[int]:
    """Live (non-zombie) members of a process group (the netns nodes share our PID space)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            alive.append(int(stat.parent.name))
    return alive


def leftovers(cluster: NetnsCluster, name: str) -> list[str]:
    """Processes inside a node besides its sshd and sshd's per-connection children."""
    out = []
    for pid in cluster.nodes[name].pids():
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "sshd":
                continue
            out.append(Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " "))
        except OSError:
            continue
    return out


def run_for(cluster: NetnsCluster, tmp_path: Path, names: list[str], **kw: float) -> TestbedRun:
    tmp_path.mkdir(parents=True, exist_ok=True)
    known = cluster.known_hosts(tmp_path / "known_hosts", names)
    inv = cluster.inventory(tmp_path / "inv.yaml", ssh={"known_hosts": str(known)})
    inventory = load_inventory(inv)
    kept = tuple(h for h in inventory.hosts if h.name in names)
    inventory = type(inventory)(**{**inventory.__dict__, "hosts": kept})
    launcher = SshLauncher(connections=Connections(timeout_s=3), poll_timeout_s=5)
    return TestbedRun(SshProvider(inventory, tmp_path / "state"), launcher, tmp_path / "run", **kw)


def test_launch_poll_stop_by_process_group(netns_cluster: NetnsCluster, tmp_path: Path) -> None:
    c = netns_cluster
    script = 'sleep 120 & echo $! > "$0.child"; wait'
    with run_for(c, tmp_path, ["n1", "n2"]) as run:
        procs = [
            run.start(n, "worker", ["sh", "-c", script, run.log_path(run.node(n), "worker")])
            for n in ("n1", "n2")
        ]
        time.sleep(0.5)
        for proc in procs:
            assert run.launcher.poll(proc) is None
            assert os.getpgid(proc.pid) == proc.pgid == os.getsid(proc.pid)
        child = int(Path(procs[0].log + ".child").read_text())
        assert os.getpgid(child) == procs[0].pgid
        run.stop(procs[0])
        assert group_alive(procs[0].pgid) == []  # the child it spawned is gone too
        run.launcher.stop(procs[0])  # idempotent
        assert run.launcher.poll(procs[0]) is not None
        assert group_alive(procs[1].pgid) != []  # the other node's process still runs
    assert group_alive(procs[1].pgid) == []
    assert leftovers(c, "n1") == [] and leftovers(c, "n2") == []
    record = json.loads((tmp_path / "run" / STATE_FILE).read_text())
    assert record["state"] == "closed"
    assert {(p["node"], p["pgid"]) for p in record["processes"]} == {
        (p.node, p.pgid) for p in procs
    }


def test_success_collects_logs_and_failure_shows_the_log(
    netns_cluster: NetnsCluster, tmp_path: Path
) -> None:
    c = netns_cluster
    with run_for(c, tmp_path, ["n1", "n2"]) as run:
        run.start("n1", "hello", ["sh", "-c", "echo hello from $(hostname); sleep 60 &"])
        assert run.wait_all(20, poll_s=0.1) == {"n1/hello": 0}
    log = tmp_path / "run" / "logs" / "n1" / "hello.log"
    assert log.read_text() == "hello from n1\n"
    assert leftovers(c, "n1") == []  # the background sleep was in the group: stopped too

    with pytest.raises(errors.TestbedError) as err, run_for(c, tmp_path / "b", ["n1", "n2"]) as run:
        run.start("n1", "ok", ["sleep", "60"])
        run.start("n2", "bad", ["sh", "-c", "echo loading; echo 'boom: no such model' >&2; exit 3"])
        run.wait_all(20, poll_s=0.1)
    msg = str(err.value)
    assert "'bad' on node 'n2' exited with status 3" in msg and "boom: no such model" in msg
    assert leftovers(c, "n1") == [] and leftovers(c, "n2") == []
    assert "boom" in (tmp_path / "b" / "run" / "logs" / "n2" / "bad.log").read_text()


def test_node_dying_mid_run(netns_cluster: NetnsCluster, tmp_path: Path) -> None:
    c = netns_cluster
    c.add_node("doomed")
    run = run_for(c, tmp_path, ["n1", "doomed"], grace_s=1.0)
    with pytest.raises(errors.TestbedError) as err, run:
        run.start("n1", "worker", ["sleep", "120"])
        run.start("doomed", "worker", ["sleep", "120"])
        c.kill_node("doomed")
        run.wait_all(30, poll_s=0.2)
    assert "node 'doomed' died or became unreachable" in str(err.value)
    assert leftovers(c, "n1") == []
    record = json.loads((tmp_path / "run" / STATE_FILE).read_text())
    assert record["state"] == "recovery-needed"
    assert any("doomed" in p for p in record["problems"])

    # A rerun in the same folder starts clean on the nodes that answer, and keeps what it
    # could not check for a later recovery.
    with pytest.warns(UserWarning, match="doomed"), run_for(c, tmp_path, ["n1"]) as rerun:
        rerun.start("n1", "again", ["true"])
        assert rerun.wait_all(20, poll_s=0.1) == {"n1/again": 0}
    record = json.loads((tmp_path / "run" / STATE_FILE).read_text())
    assert [p["node"] for p in record["orphans"]["processes"]] == ["doomed"]
    assert leftovers(c, "n1") == []


DRIVER = """
import json, sys
from pathlib import Path
from reprise.testbed.inventory import Link, load_inventory
from reprise.testbed.lifecycle import SshLauncher, TestbedRun
from reprise.testbed.provision.ssh import Connections, SshProvider
inv, out = Path(sys.argv[1]), Path(sys.argv[2])
provider = SshProvider(load_inventory(inv), out / "state")
with TestbedRun(provider, SshLauncher(), out / "run", grace_s=1.0) as run:
    run.shape([Link(("a", "b"), 40)])
    procs = [run.start(n, "worker", ["sh", "-c", "sleep 300 & wait"]) for n in ("n1", "n2")]
    print(json.dumps([p.pgid for p in procs]), flush=True)
    run.wait_all(600)
"""


def start_driver(c: NetnsCluster, tmp_path: Path) -> tuple[subprocess.Popen[str], list[int]]:
    known = c.known_hosts(tmp_path / "known_hosts", ["n1", "n2"])
    inv = c.inventory(
        tmp_path / "inv.yaml", groups={"n1": "a", "n2": "b"}, ssh={"known_hosts": str(known)}
    )
    data = yaml.safe_load(inv.read_text())  # only n1, n2: other tests add throw-away nodes
    data["nodes"] = [n for n in data["nodes"] if n["name"] in ("n1", "n2")]
    inv.write_text(yaml.safe_dump(data))
    proc = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(inv), str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait(30)
        pytest.fail(f"driver failed: {proc.stderr.read() if proc.stderr else ''}")
    return proc, json.loads(line)


def qdiscs(c: NetnsCluster, name: str) -> str:
    return subprocess.run(
        ["ip", "netns", "exec", c.nodes[name].netns, "tc", "qdisc", "show", "dev", "eth0"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_sigterm_stops_everything(netns_cluster: NetnsCluster, tmp_path: Path) -> None:
    c = netns_cluster
    proc, pgids = start_driver(c, tmp_path)
    assert all(group_alive(p) for p in pgids)
    assert "5e1f:" in qdiscs(c, "n1")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "SIGTERM" in err
    assert [group_alive(p) for p in pgids] == [[], []]
    assert "5e1f:" not in qdiscs(c, "n1") + qdiscs(c, "n2")
    assert json.loads((tmp_path / "run" / STATE_FILE).read_text())["state"] == "closed"


def test_recover_after_kill_9(netns_cluster: NetnsCluster, tmp_path: Path) -> None:
    c = netns_cluster
    proc, pgids = start_driver(c, tmp_path)
    proc.kill()  # like Snakemake killed with -9: no cleanup ran
    proc.communicate(timeout=30)
    assert all(group_alive(p) for p in pgids) and "5e1f:" in qdiscs(c, "n2")
    problems, orphans = recover(tmp_path / "run", SshLauncher())
    assert problems == [] and orphans["processes"] == []
    assert [group_alive(p) for p in pgids] == [[], []]
    assert "5e1f:" not in qdiscs(c, "n1") + qdiscs(c, "n2")
    assert json.loads((tmp_path / "run" / STATE_FILE).read_text())["state"] == "closed"
