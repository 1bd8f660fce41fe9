"""`samples_per_s: measure`: which models the measurement trains, and how its record becomes the
rates the reduced trace's work is made with."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from reprise.data.profiles import ThroughputProfiles
from reprise.errors import ConfigError, TestbedError
from reprise.testbed.systems.adaptdl.calibrate import (
    CalibrationSettings,
    Slot,
    measurement_slots,
    rates_of,
    schedule,
    summarize,
)
from reprise.testbed.systems.adaptdl.trace import (
    ReducedSettings,
    reduced_models,
    reduced_rows,
    reduced_settings,
)

REPO = Path(__file__).resolve().parents[1]


def test_the_measured_models_are_the_trace_s_with_their_first_batch(
    a100_profiles: ThroughputProfiles,
) -> None:
    settings = ReducedSettings(num_jobs=8, time_scale=0.05, min_duration_s=40, max_duration_s=120)
    models = reduced_models(settings, a100_profiles)
    rows = reduced_rows(settings, a100_profiles, dict.fromkeys(models, 100.0))
    assert list(models) == list(dict.fromkeys(r[3] for r in rows))  # order of first arrival
    for model, batch in models.items():
        assert batch == next(r[5] for r in rows if r[3] == model)


def test_measured_rates_make_the_work_and_fixed_ones_still_do(
    a100_profiles: ThroughputProfiles, tmp_path: Path
) -> None:
    record = tmp_path / "rates.json"
    record.write_text(json.dumps({"samples_per_s": {"deepspeech2": 500.0, "inception3": 200.0}}))
    assert rates_of("measure", record) == {"deepspeech2": 500.0, "inception3": 200.0}
    assert rates_of({"vgg16": 210}, None) == {"vgg16": 210.0}
    settings = ReducedSettings(num_jobs=2, time_scale=0.05, min_duration_s=40, max_duration_s=120)
    slow = reduced_rows(settings, a100_profiles, rates_of("measure", record))
    fast = reduced_rows(settings, a100_profiles, {"deepspeech2": 1000.0, "inception3": 400.0})
    # twice the rate, twice the samples in the same duration
    for a, b in zip(slow, fast, strict=True):
        assert a[7] == b[7] and abs(b[2] - 2 * a[2]) <= 1


def test_bad_rates_or_settings_are_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="neither rates by model nor 'measure'"):
        rates_of("measured", None)
    with pytest.raises(ConfigError, match="no rates were made"):
        rates_of("measure", None)
    with pytest.raises(ConfigError, match="unreadable rates"):
        rates_of("measure", tmp_path / "missing.json")
    with pytest.raises(ConfigError, match="replicas_per_node"):
        CalibrationSettings(replicas_per_node=0).check()
    with pytest.raises(ConfigError, match="replicas_per_model"):
        CalibrationSettings(replicas_per_model=0).check()
    with pytest.raises(ConfigError, match="no replica slots"):
        measurement_slots([("a", 0), ("b", 0)], 2)


def test_the_committed_measurement_shares_three_full_rounds_among_the_five_models(
    a100_profiles: ThroughputProfiles,
) -> None:
    """`snakemake pollux_testbed` measures its five models in 3 rounds (not one round per model):
    every slot of both nodes busy in every round, no model twice in a round, and each model on
    both nodes."""
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())["testbed"]["pollux_testbed"]
    cluster = yaml.safe_load((REPO / "config/clusters" / f"{config['cluster']}.yaml").read_text())
    group = cluster["docker"]["groups"][0]
    nodes = [(f"n{i}", group["slots"]) for i in range(group["count"])]
    calib = CalibrationSettings(**config["calibrate"])
    models = list(reduced_models(reduced_settings(config["reduced"]), a100_profiles))
    slots = measurement_slots(nodes, calib.replicas_per_node)
    rounds = schedule(models, slots, calib.replicas_per_model)
    assert len(models) == 5 and len(rounds) == 3
    assert set(slots) == {Slot(name, k) for name, n in nodes for k in range(n)}
    for placed in rounds:
        assert {slot for slot, _ in placed} == set(slots)  # the cluster is full while measuring
        assert len({model for _, model in placed}) == len(placed)
    for model in models:
        where = [slot.node for placed in rounds for slot, m in placed if m == model]
        assert len(where) >= calib.replicas_per_model and set(where) == {"n0", "n1"}


def test_one_model_fills_every_slot_and_slots_are_capped_by_the_node() -> None:
    slots = measurement_slots([("a", 2), ("b", 1)], 2)
    assert slots == [Slot("a", 0), Slot("b", 0), Slot("a", 1)]  # nodes alternate
    (only,) = schedule(["resnet50"], slots, 2)
    assert [m for _, m in only] == ["resnet50"] * 3  # a spare slot runs one more, not nothing
    assert len(schedule(["a", "b", "c"], slots, 1)) == 1
    assert len(schedule(["a", "b", "c", "d"], slots, 1)) == 2


def test_a_model_s_rate_is_the_mean_of_its_replicas_in_every_round() -> None:
    """What the trace is made with, and the record's check of the window: the largest relative
    difference between the two halves of a replica's window."""

    def replica(model: str, rate: float, halves: list[float], node: str) -> dict[str, object]:
        return {"model": model, "samples_per_s": rate, "halves": halves, "node": node, "slot": 0}

    replicas = [
        replica("vgg16", 300.0, [290.0, 310.0], "a"),
        replica("gpt2", 800.0, [800.0, 800.0], "b"),
        replica("vgg16", 200.0, [150.0, 250.0], "b"),
    ]
    got = summarize({"gpt2": 128, "vgg16": 64}, replicas)
    assert list(got) == ["gpt2", "vgg16"]  # the models' order, whatever the rounds' order
    assert got["vgg16"]["samples_per_s"] == 250.0 and got["vgg16"]["replicas"] == [300.0, 200.0]
    assert got["vgg16"]["on"] == ["a/0", "b/0"] and got["vgg16"]["batch_size"] == 64
    assert got["vgg16"]["spread"] == 0.5 and got["gpt2"]["spread"] == 0.0
    assert summarize({"gpt2": 128, "vgg16": 64}, list(reversed(replicas)))["gpt2"] == got["gpt2"]
    with pytest.raises(TestbedError, match="no replica of bert"):
        summarize({"bert": 64}, replicas)
