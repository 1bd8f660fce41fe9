"""The simulated Pollux beside the testbed run: the same jobs on Pollux applications' clock."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from reprise.data.clusters import cluster_from_name
from reprise.data.profiles import ThroughputProfiles
from reprise.data.traces import TraceJob, load_trace
from reprise.errors import ConfigError
from reprise.sim.options import SimOptions
from reprise.testbed.systems.adaptdl.simulated import (
    alone_seconds,
    on_application_clock,
    write_simulated_run,
)
from reprise.testbed.systems.adaptdl.trace import reduced_settings, write_reduced_trace
from reprise.testbed.trainers.names import MODELS

REPO = Path(__file__).resolve().parents[1]

# fast applications of Pollux's ground truth stand in for the models here
FAST = {"resnet50": "ncf", "bert": "ncf"}


def trace_job(
    idx: int, model: str, submit: int, duration: int, deadline: int, gpus: int = 1
) -> TraceJob:
    return TraceJob(idx, str(idx), submit, 100, model, deadline, 64, gpus, duration, False)


@pytest.fixture
def options(mirror: Path) -> SimOptions:
    return SimOptions(data_root=str(mirror), seed=0)


def test_jobs_keep_their_deadline_factor_on_the_application_clock(options: SimOptions) -> None:
    cluster = cluster_from_name("n2g2")
    trace = [
        trace_job(0, "resnet50", 10, 60, 10 + 90),  # factor 1.5
        trace_job(1, "bert", 40, 100, 40 + 80, gpus=2),  # factor 0.8
    ]
    mapped = on_application_clock(trace, cluster, options, FAST)
    assert [j.model for j in mapped] == ["ncf", "ncf"]
    ncf = alone_seconds("ncf", 1, cluster, options)
    ncf2 = alone_seconds("ncf", 2, cluster, options)  # on the 2 GPUs it asks for
    assert mapped[0].submit_time == 0  # arrivals from the first job
    assert mapped[0].relative_deadline == round(1.5 * ncf)
    assert mapped[1].relative_deadline == round(0.8 * ncf2)
    # arrivals stretched by the median of simulated over trace durations
    stretch = (ncf / 60 + ncf2 / 100) / 2
    assert mapped[1].submit_time == round(30 * stretch)


def test_unmapped_model_or_unknown_application_is_named(options: SimOptions) -> None:
    cluster = cluster_from_name("n2g2")
    with pytest.raises(ConfigError, match=r"no Pollux application for \['vgg16'\]"):
        on_application_clock([trace_job(0, "vgg16", 0, 60, 90)], cluster, options, FAST)
    with pytest.raises(ConfigError, match="are not Pollux applications"):
        on_application_clock(
            [trace_job(0, "vgg16", 0, 60, 90)], cluster, options, {"vgg16": "resnet"}
        )


def test_run_record_of_the_simulated_pollux(mirror: Path, tmp_path: Path) -> None:
    trace = [trace_job(0, "resnet50", 0, 60, 600), trace_job(1, "resnet50", 5, 60, 65)]
    summary = write_simulated_run(
        trace, cluster_from_name("n1g2"), mirror, 0, FAST, tmp_path, "tiny"
    )
    assert summary["run"]["kind"] == "sim" and summary["run"]["policy"] == "pollux"
    assert summary["jobs"] == 2 and summary["metrics"]["slo_jobs"] == 2
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    assert [j.model for j in load_trace(tmp_path / "trace.csv")] == ["ncf", "ncf"]


def test_a_placement_outside_pollux_ground_truth_is_reported_not_simulated(
    mirror: Path, tmp_path: Path
) -> None:
    # deepspeech2 on 16 GPUs gets 8 replicas per node, which upstream's measurements lack
    job = TraceJob(0, "0", 0, 100, "deepspeech2", 1000, 32, 16, 500, False)
    summary = write_simulated_run(
        [job],
        cluster_from_name("n4g8"),
        mirror,
        0,
        {"deepspeech2": "deepspeech2"},
        tmp_path,
        "paper",
    )
    assert "outside the measured configurations" in summary["not_simulated"]
    assert summary["metrics"] == {} and summary["run"]["cluster"] == "n4g8"


def test_the_configured_reduced_trace_has_pollux_shrink_a_grown_job_for_an_arrival(
    mirror: Path, a100_profiles: ThroughputProfiles, tmp_path: Path
) -> None:
    """The down re-size of `snakemake pollux_testbed` is the policy's decision on the committed
    reduced trace, not the machine's load: the simulated Pollux on the same trace and cluster
    shrinks a grown job in the round in which a later job gets its first replica (the
    simulator times jobs by their applications, so the trace's CPU rates do not matter)."""
    settings = yaml.safe_load((REPO / "config/config.yaml").read_text())["testbed"]
    pollux = settings["pollux_testbed"]
    trace_csv = tmp_path / "laptop.csv"
    write_reduced_trace(
        reduced_settings(pollux["reduced"]), a100_profiles, dict.fromkeys(MODELS, 100.0), trace_csv
    )
    summary = write_simulated_run(
        load_trace(trace_csv),
        cluster_from_name(pollux["simulated_cluster"]),
        mirror,
        pollux["seed"],
        pollux["applications"],
        tmp_path / "sim",
        "laptop",
    )
    with (tmp_path / "sim" / "allocations.csv").open() as fh:
        changes = list(csv.DictReader(fh))
    rounds: dict[str, list[dict[str, str]]] = {}
    for change in changes:
        rounds.setdefault(change["time_s"], []).append(change)
    shrunk_for_arrival = [
        (time, change["job"])
        for time, made in rounds.items()
        if any(c["replicas_before"] == "0" for c in made)
        for change in made
        if 0 < int(change["replicas_after"]) < int(change["replicas_before"])
    ]
    assert shrunk_for_arrival, changes
    assert summary["reallocations"]["up"] >= 1 and summary["reallocations"]["down"] >= 1
    assert summary["reallocations"]["started"] == len(load_trace(trace_csv))
