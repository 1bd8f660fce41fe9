"""`samples_per_s: measure`: which models the measurement trains, and how its record becomes the
rates the reduced trace's work is made with."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reprise.data.profiles import ThroughputProfiles
from reprise.errors import ConfigError
from reprise.testbed.systems.adaptdl.calibrate import CalibrationSettings, rates_of
from reprise.testbed.systems.adaptdl.trace import (
    ReducedSettings,
    reduced_models,
    reduced_rows,
)


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
