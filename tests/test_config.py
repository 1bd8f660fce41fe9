"""Config validation: the schema and the cross-checks name the offending key."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from reprise.config import (
    check_config,
    data_root_of,
    pending_policies,
    policy_data_files,
    policy_instances,
    runs_of,
    split_instance,
    trace_instances,
)
from reprise.data.fetch import load_catalog
from reprise.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def config(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.chdir(REPO)
    doc: dict[str, Any] = yaml.safe_load((REPO / "config/config.yaml").read_text())
    return doc


def schema() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((REPO / "config/schema/config.schema.yaml").read_text())
    return doc


def test_project_config_is_valid(config: dict[str, Any]) -> None:
    jsonschema.validate(config, schema())
    check_config(config, load_catalog(REPO / config["data"]["catalog"]))


def test_misspelled_key_is_rejected_by_the_schema(config: dict[str, Any]) -> None:
    bad = copy.deepcopy(config)
    bad["experiments"]["figure8a"]["slots"] = 60
    with pytest.raises(jsonschema.ValidationError, match="slots"):
        jsonschema.validate(bad, schema())


def test_unknown_policy_is_rejected_by_the_schema(config: dict[str, Any]) -> None:
    bad = copy.deepcopy(config)
    bad["experiments"]["figure8a"]["policies"] = ["edf", "fifo"]
    with pytest.raises(jsonschema.ValidationError, match="fifo"):
        jsonschema.validate(bad, schema())


@pytest.mark.parametrize(
    ("mutate", "key"),
    [
        (lambda c: c["experiments"]["figure8a"]["runs"][0].update(trace="nope"), "runs[0].trace"),
        (
            lambda c: c["experiments"]["figure8a"]["runs"][0].update(cluster="n3g3"),
            "runs[0].cluster",
        ),
        (
            lambda c: c["traces"]["elasticVpollux_e"].update(upstream="x.csv"),
            "elasticVpollux_e.upstream",
        ),
        (lambda c: c["experiments"]["figure8a"].update(paper="missing.yaml"), "figure8a.paper"),
    ],
)
def test_cross_checks_name_the_key(config: dict[str, Any], mutate: Any, key: str) -> None:
    bad = copy.deepcopy(config)
    mutate(bad)
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        check_config(bad, load_catalog(REPO / config["data"]["catalog"]))


def test_generated_traces_expand_to_one_instance_per_seed() -> None:
    config = {
        "traces": {"g": {"generated": {"num_jobs": 5, "lam": 1}, "deadline_seeds": [0, 3]}},
        "experiments": {"e": {"runs": [{"trace": "g", "cluster": "n8g8"}], "policies": ["edf"]}},
    }
    assert trace_instances(config, "g") == ["g.s0", "g.s3"]
    assert [r.directory for r in runs_of(config, "e")] == [
        "results/runs/sim/e/g.s0/n8g8/edf",
        "results/runs/sim/e/g.s3/n8g8/edf",
    ]
    assert split_instance("g.s3") == ("g", 3)
    assert split_instance("cluster01") == ("cluster01", None)


def test_seeded_policy_expands_to_one_run_per_seed() -> None:
    exp: dict[str, Any] = {
        "runs": [{"trace": "t", "cluster": "n16g4"}],
        "policies": ["edf", "pollux"],
        "seeds": {"pollux": [0, 2]},
    }
    config = {"traces": {"t": {"upstream": "x.csv"}}, "experiments": {"e": exp}}
    assert [r.policy for r in runs_of(config, "e")] == ["edf", "pollux.s0", "pollux.s2"]
    assert split_instance("pollux.s2") == ("pollux", 2)
    assert pending_policies(exp) == []
    # without a seeds entry a randomised policy runs once, with seed 0
    assert policy_instances({"policies": ["pollux"]}, "pollux") == ["pollux.s0"]
    # an empty seed list is how a user (or a fast test) leaves it out: shown as "not run"
    exp["seeds"]["pollux"] = []
    assert [r.policy for r in runs_of(config, "e")] == ["edf"]
    assert pending_policies(exp) == ["pollux"]


def test_pollux_reads_its_ground_truth_below_the_upstream_root(config: dict[str, Any]) -> None:
    catalog = load_catalog(REPO / config["data"]["catalog"])
    files = policy_data_files(catalog, "pollux.s1")
    apps = {Path(f).parent.name for f in files}
    assert apps == {"bert", "cifar10", "deepspeech2", "imagenet", "ncf", "yolov3"}
    assert all(Path(f).name.endswith(".csv") for f in files)
    assert data_root_of("pollux.s1", files) == "resources/upstream"
    assert policy_data_files(catalog, "edf") == []
    assert data_root_of("edf", []) == ""


def test_seeds_only_for_randomised_policies(config: dict[str, Any]) -> None:
    bad = copy.deepcopy(config)
    bad["experiments"]["figure8a"]["seeds"] = {"edf": [0]}
    with pytest.raises(ConfigError, match=r"figure8a\.seeds\.edf"):
        check_config(bad, load_catalog(REPO / config["data"]["catalog"]))
    bad["experiments"]["figure8a"]["seeds"] = {"pollux": [-1]}
    with pytest.raises(jsonschema.ValidationError, match="-1"):
        jsonschema.validate(bad, schema())
