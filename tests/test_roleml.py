"""RoleML E-Tree: topology checks, CIFAR-10-format data, a real run of actor processes over gRPC."""

from __future__ import annotations

import csv
import json
import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip(
    "roleml", reason="the roleml extra is not installed (pip install -e '.[roleml]')"
)

from reprise.errors import ConfigError, DataError
from reprise.testbed.systems.roleml.data import load_split, make_digit_batches
from reprise.testbed.systems.roleml.local import free_port, local_actors, wait_listening
from reprise.testbed.systems.roleml.topology import CONDUCTOR, actor_specs, parse_topology

PAPER = {
    "root": "client1",
    "groups": {
        "client1": ["client1", "client4", "client5"],
        "client2": ["client2", "client6", "client7"],
    },
}
SMALL = {"root": "client1", "groups": {"client1": ["client1"], "client2": ["client2"]}}
SETTINGS = {"lr": 0.05, "batch_size": 32, "seed": 0, "local_steps": 2}


def test_paper_topology_has_six_clients_and_a_two_layer_tree(tmp_path: Path) -> None:
    topo = parse_topology("paper", PAPER, "config.yaml")
    assert topo.clients == ("client1", "client4", "client5", "client2", "client6", "client7")
    addresses = {a: f"127.0.0.1:{5000 + i}" for i, a in enumerate((*topo.clients, CONDUCTOR))}
    specs = actor_specs(topo, addresses, tmp_path, SETTINGS)
    root = specs["client1"]
    assert set(root["roles"]) == {"trainer", "aggregator-0", "aggregator-1", "coordinator"}
    assert root["relationships"]["source-1"] == ["client1/aggregator-0", "client2/aggregator-0"]
    assert specs["client2"]["relationships"]["source-0"] == [
        "client2/trainer",
        "client6/trainer",
        "client7/trainer",
    ]
    assert set(specs["client6"]["roles"]) == {"trainer"}
    assert specs[CONDUCTOR]["relationships"]["coordinator"] == ["client1/coordinator"]


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ({"root": "client9", "groups": SMALL["groups"]}, "root is 'client9'"),
        ({"root": "client1", "groups": {"client1": ["client4"]}}, "must be one of its members"),
        (
            {
                "root": "client1",
                "groups": {"client1": ["client1", "x"], "client2": ["client2", "x"]},
            },
            "client 'x' is in groups",
        ),
        ({"root": "client1", "groups": {"client1": "client1"}}, "must be a list"),
        ({"root": "client1", "groups": {}}, "groups must map"),
        ({"root": "client1", "grups": {}}, "unknown keys ['grups']"),
        ({"root": "client1", "groups": {"client1": ["client1", "conductor"]}}, "control node"),
    ],
)
def test_malformed_topology_is_named(spec: dict[str, object], says: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_topology("bad", spec, "config/config.yaml")
    assert "config/config.yaml: topologies.bad" in str(err.value)
    assert says in str(err.value)


def test_digit_batches_have_cifar_layout_and_split_per_client(tmp_path: Path) -> None:
    summary = make_digit_batches(tmp_path, 0.2, 0)
    with (tmp_path / "data_batch_1").open("rb") as f:
        batch = pickle.load(f, encoding="bytes")
    assert batch[b"data"].shape[1] == 3072 and batch[b"data"].dtype.name == "uint8"
    images, _ = load_split(tmp_path, "train", 1, 6)
    assert tuple(images.shape[1:]) == (3, 32, 32)
    sizes = [len(load_split(tmp_path, "train", i, 6)[1]) for i in range(6)]
    assert sum(sizes) == summary["train"] and max(sizes) - min(sizes) <= 1
    assert len(load_split(tmp_path, "test")[1]) == summary["test"]


def test_missing_or_foreign_batch_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="test_batch: missing CIFAR-10 batch"):
        load_split(tmp_path, "test")
    (tmp_path / "test_batch").write_bytes(pickle.dumps({"rows": []}))
    with pytest.raises(DataError, match="not a CIFAR-10 python batch"):
        load_split(tmp_path, "test")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "State:\tZ" in status.read_text())


def test_small_tree_trains_over_grpc_and_stops_every_process(tmp_path: Path) -> None:
    data = tmp_path / "data"
    make_digit_batches(data, 0.2, 0)
    topo = parse_topology("small", SMALL, "test")
    addresses = {a: f"127.0.0.1:{free_port()}" for a in (*topo.clients, CONDUCTOR)}
    specs = actor_specs(topo, addresses, data, SETTINGS)
    rounds_csv = tmp_path / "rounds.csv"
    specs[CONDUCTOR]["roles"]["driver"]["options"] = {
        "num_rounds": 4,
        "rounds_csv": str(rounds_csv),
    }
    with local_actors(tmp_path / "run") as actors:
        for client in topo.clients:
            actors.start(client, specs[client])
        actors.start(CONDUCTOR, specs[CONDUCTOR])
        assert actors.procs[CONDUCTOR].wait(240) == 0
        pids = [p.pid for p in actors.procs.values()]
    with rounds_csv.open() as f:
        rounds = list(csv.DictReader(f))
    assert [int(r["round"]) for r in rounds] == [0, 1, 2, 3]
    # the tree really learns: the last round's test accuracy is far above chance (0.1)
    assert float(rounds[-1]["accuracy"]) > 0.5
    assert all(not _alive(pid) for pid in pids)
    trainer_log = (tmp_path / "run" / "logs" / "client2.log").read_text()
    assert "local epoch 8" in trainer_log  # 4 rounds x 2 local steps under the layer-0 aggregator


def test_actor_ends_on_sigterm_when_started_with_sigint_ignored(tmp_path: Path) -> None:
    """A pipeline started in the background hands its children SIGINT ignored; an actor still
    ends on SIGTERM (and the run driver's SIGINT), closing its roles."""
    data = tmp_path / "data"
    make_digit_batches(data, 0.2, 0)
    topo = parse_topology("small", SMALL, "test")
    addresses = {a: f"127.0.0.1:{free_port()}" for a in (*topo.clients, CONDUCTOR)}
    spec = tmp_path / "client2.json"
    spec.write_text(json.dumps(actor_specs(topo, addresses, data, SETTINGS)["client2"]))
    log = tmp_path / "client2.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "reprise.testbed.systems.roleml.actor", str(spec)],
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        )
    try:
        wait_listening(addresses["client2"], proc, log, 120)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "actor process exits" in log.read_text()
