"""Figure 12(b)'s cases, table and figure from a run record (no nodes needed)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

pytest.importorskip("grpc")

from reprise.errors import ConfigError
from reprise.plots.figure12b import plot_figure12b
from reprise.testbed.nodes import Node
from reprise.testbed.runtime.figure12b import (
    MEASUREMENT_COLUMNS,
    Case,
    overhead_table,
    placements,
    settings_from_config,
    write_table,
)

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO / "config" / "paper" / "figure12b.yaml"


def cpu_nodes(count: int = 3, slots: int = 2) -> list[Node]:
    return [
        Node(f"n{i}", "default", f"10.0.0.{i}", f"10.0.0.{i}", slots=slots) for i in range(count)
    ]


def test_configured_cases_fit_cpu_nodes_or_say_why_not() -> None:
    block = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["testbed"]["figure12b"]
    settings = settings_from_config(block)
    found = {c.name: placements(c, cpu_nodes()) for c in settings.cases}
    up = found["1->2"]
    assert not isinstance(up, str)
    assert up[0].slots == (("n0", 0),) and up[1].slots == (("n0", 0), ("n0", 1))
    move = found["migration"]
    assert not isinstance(move, str)
    assert move[0].nodes == ["n0"] and move[1].nodes == ["n1"] and move[1].world_size == 2
    assert found["8->16"] == "needs 16 slots; the cluster has 6"
    # the paper's sizes on two 8-GPU servers: every case fits
    gpus = cpu_nodes(2, 8)
    assert all(not isinstance(placements(c, gpus), str) for c in settings.cases)
    internode = placements(Case("8->16", 8, 16), gpus)
    assert not isinstance(internode, str) and internode[1].nodes == ["n0", "n1"]


def test_bad_cases_are_refused_with_the_key() -> None:
    block = {"models": ["bert"], "global_batch": 6, "cases": [{"case": "x", "from": 1, "to": 4}]}
    with pytest.raises(ConfigError, match="global_batch 6 does not split over 4"):
        settings_from_config(block)
    block = {"models": ["bert"], "cases": [{"case": "m", "from": 2, "to": 4, "migrate": True}]}
    with pytest.raises(ConfigError, match="a migration keeps the job's size"):
        settings_from_config(block)


def write_run(folder: Path) -> Path:
    folder.mkdir(parents=True)
    cases = [{"name": "1->2"}, {"name": "8->16"}, {"name": "migration"}]
    summary = {
        "cluster": "local-docker",
        "settings": {"models": ["resnet50"], "cases": cases},
        "skipped": {"8->16": "needs 16 slots; the cluster has 6"},
    }
    (folder / "summary.json").write_text(json.dumps(summary))
    rows = [
        ("1->2", -1, 9.0, True),  # the warm-up pass
        ("1->2", 0, 0.5, True),
        ("1->2", 1, 1.5, True),
        ("migration", 0, 2.0, True),
        ("migration", 1, 240.0, False),
    ]
    with (folder / "measurements.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=MEASUREMENT_COLUMNS, restval="0")
        writer.writeheader()
        for case, rep, seconds, stable in rows:
            writer.writerow(
                {
                    "model": "resnet50",
                    "case": case,
                    "repetition": rep,
                    "measured_s": seconds,
                    "charged_s": min(int(seconds), 20),
                    "stable": stable,
                }
            )
    return folder


def test_table_puts_measured_beside_published_and_explains_gaps(tmp_path: Path) -> None:
    rows = overhead_table(write_run(tmp_path / "run"), PAPER)
    by = {(r["model"], r["case"]): r for r in rows}
    up = by[("resnet50", "1->2")]
    assert (up["measured_n"], up["measured_mean_s"], up["measured_min_s"]) == (2, 1.0, 0.5)
    assert up["published_s"] == 1.884 and up["measured_over_published"] == 0.53
    assert by[("resnet50", "8->16")]["note"] == "not measured: needs 16 slots; the cluster has 6"
    assert "1 repetition(s) not stable" in by[("resnet50", "migration")]["note"]
    assert by[("vgg16", "1->2")]["note"] == "not measured: not in this run's configuration"
    assert "BERT's five values" in by[("deepspeech2", "migration")]["note"]
    assert len(rows) == 6 * 5
    table = tmp_path / "figure12b.csv"
    write_table(rows, table)
    plot_figure12b(table, tmp_path / "f.pdf", tmp_path / "f.png")
    assert (tmp_path / "f.pdf").stat().st_size > 0 and (tmp_path / "f.png").stat().st_size > 0
