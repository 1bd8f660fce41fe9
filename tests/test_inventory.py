"""Cluster inventories: every shipped one loads; every mistake names the file and the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from reprise.errors import ProvisionError
from reprise.testbed.inventory import load_inventory, parse_inventory

REPO = Path(__file__).resolve().parents[1]
WHERE = Path("config/clusters/mine.yaml")


@pytest.mark.parametrize("path", sorted((REPO / "config/clusters").glob("*.yaml")), ids=str)
def test_shipped_inventories_load(path: Path) -> None:
    inventory = load_inventory(path)
    assert inventory.name == path.stem
    assert inventory.groups


def _error(doc: Any) -> str:
    with pytest.raises(ProvisionError) as info:
        parse_inventory(doc, WHERE)
    return str(info.value)


def test_misspelled_key_names_the_closest_allowed_one() -> None:
    message = _error({"provider": "ssh", "nodes": [{"name": "a", "adress": "10.0.0.1"}]})
    assert message.startswith(f"{WHERE}: at nodes[0]: unknown key 'adress'")
    assert "did you mean 'address'?" in message


def test_missing_key_is_named() -> None:
    message = _error({"provider": "docker"})
    assert "'docker' is a required property" in message and str(WHERE) in message


def test_unknown_provider_lists_the_choices() -> None:
    message = _error({"provider": "ec2", "nodes": [{"name": "a", "address": "x"}]})
    assert "at provider" in message and "'ssh'" in message


def test_link_to_a_group_that_does_not_exist() -> None:
    doc = {
        "provider": "ssh",
        "nodes": [{"name": "a", "address": "x", "group": "hpc"}],
        "links": [{"between": ["hpc", "cloud"], "rate_mbit": 50}],
    }
    assert "at links[0].between: no node group 'cloud'" in _error(doc)


def test_repeated_node_names() -> None:
    doc = {"provider": "ssh", "nodes": [{"name": "a", "address": "x"}] * 2}
    assert "node names must be unique; repeated: a" in _error(doc)


def test_a_key_is_given_by_path_never_inline() -> None:
    doc = {
        "provider": "ssh",
        "nodes": [{"name": "a", "address": "x", "host_key": "ssh-ed25519 AAA"}],
    }
    assert "at nodes[0].host_key" in _error(doc)


def test_missing_file_lists_the_known_clusters(tmp_path: Path) -> None:
    (tmp_path / "one.yaml").write_text(yaml.safe_dump({"provider": "slurm"}))
    with pytest.raises(
        ProvisionError, match=r"no cluster inventory .*two.yaml; clusters in .*: one"
    ):
        load_inventory(tmp_path / "two.yaml")


def test_unreadable_yaml_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("provider: [ssh\n")
    with pytest.raises(ProvisionError, match=r"bad.yaml: not a readable YAML document"):
        load_inventory(bad)


def test_slurm_paths_are_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    inv = parse_inventory(
        {"provider": "slurm", "python": ".venv/bin/python", "workdir": "w"}, WHERE
    )
    assert inv.workdir == str(tmp_path / "w")
    assert inv.python == str(tmp_path / ".venv/bin/python")
    plain = parse_inventory({"provider": "slurm", "python": "python3"}, WHERE)
    assert plain.python == "python3"  # a name on the PATH stays a name
