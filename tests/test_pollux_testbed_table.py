"""The Pollux testbed table: the testbed ratio beside the simulated Pollux, each side's completion
times over its jobs' durations, the testbed's pace, and a note saying what each side trains."""

from __future__ import annotations

import csv
import json
import math
import statistics
from pathlib import Path

from reprise.analysis.pollux_testbed import pollux_table
from reprise.data.clusters import cluster_from_name
from reprise.data.traces import TraceJob
from reprise.records.outcome import JobOutcome
from reprise.testbed.systems.adaptdl.simulated import write_simulated_run
from reprise.testbed.systems.adaptdl.trace import jct_over_duration

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO / "config/paper/pollux_testbed.yaml"


def trace_job(idx: int, submit: int, duration: int, deadline: int) -> TraceJob:
    return TraceJob(idx, str(idx), submit, 100, "resnet50", deadline, 64, 1, duration, False)


def write_testbed_summary(rundir: Path, **per_job: dict[str, float | None]) -> None:
    """A testbed summary as run_pollux_nodes writes it (the parts the table reads)."""
    rundir.mkdir(parents=True)
    summary = {
        "run": {"cluster": "local-adaptdl", "kind": "testbed"},
        "metrics": {"slo_jobs": 3},
        "deadline_ratio": 1 / 3,
        "monitor": {"met": 1, "jobs": 3},
        "reallocations": {"up": 2, "down": 1},
        "fault_restarts": 0,
        "incarnations": 6,
        "wall_s": 700.0,
        **per_job,
    }
    (rundir / "summary.json").write_text(json.dumps(summary))


def test_completion_over_duration_per_job() -> None:
    trace = [trace_job(0, 10, 60, 100), trace_job(1, 20, 40, 80)]
    jobs = [
        JobOutcome.of(trace[0], admitted=True, start_time=10, end_time=100, gpus_at_end=1,
                      met_deadline_published=True),
        JobOutcome.of(trace[1], admitted=True, start_time=None, end_time=None, gpus_at_end=0,
                      met_deadline_published=False),
    ]  # fmt: skip
    assert jct_over_duration(jobs, trace) == {"0": 1.5, "1": None}


def test_table_says_what_each_side_measures(mirror: Path, tmp_path: Path) -> None:
    trace = [trace_job(0, 0, 60, 600), trace_job(1, 5, 60, 65), trace_job(2, 9, 30, 50)]
    sim_dir = tmp_path / "sim"
    write_simulated_run(trace, cluster_from_name("n1g2"), mirror, 0, {"resnet50": "ncf"},
                        sim_dir, "laptop")  # fmt: skip
    paper_dir = tmp_path / "paper"
    deepspeech = TraceJob(0, "0", 0, 100, "deepspeech2", 1000, 32, 16, 500, False)
    write_simulated_run([deepspeech], cluster_from_name("n4g8"), mirror, 0,
                        {"deepspeech2": "deepspeech2"}, paper_dir, "paper")  # fmt: skip
    write_testbed_summary(
        tmp_path / "testbed",
        jct_over_duration={"0": 2.0, "1": 6.5, "2": None},
        pace={"0": 0.4, "1": 0.2, "2": None},
    )
    table = pollux_table(
        {"laptop": tmp_path / "testbed"}, {"laptop": sim_dir, "paper": paper_dir}, PAPER
    )
    laptop, paper = table.to_dict("records")
    # the testbed side: medians over the finished jobs of what the run recorded
    assert (laptop["testbed_jct_over_duration"], laptop["testbed_pace"]) == (4.25, 0.3)
    assert (laptop["testbed_met"], laptop["resized_up"], laptop["resized_down"]) == ("1/3", 2, 1)
    # the simulated side: completion over each mapped job's simulated time alone
    with (sim_dir / "jobs.csv").open() as fh:
        jct = {r["job_id"]: float(r["jct"]) for r in csv.DictReader(fh)}
    with (sim_dir / "trace.csv").open() as fh:
        alone = {r["job_id"]: int(r["duration"]) for r in csv.DictReader(fh)}
    expected = statistics.median(jct[k] / alone[k] for k in jct)
    assert laptop["simulated_jct_over_duration"] == round(expected, 2)
    assert "different work" in laptop["note"] and "testbed_pace" in laptop["note"]
    # the paper's scale: not simulated (upstream's ground truth lacks the placement), no testbed
    assert math.isnan(paper["simulated_ratio"]) and math.isnan(paper["testbed_pace"])
    assert paper["published_ratio"] == 0.32
    assert paper["note"].startswith("not simulated") and "different work" not in paper["note"]


def test_a_record_from_before_the_measures_gives_no_number(mirror: Path, tmp_path: Path) -> None:
    sim_dir = tmp_path / "sim"
    write_simulated_run([trace_job(0, 0, 60, 600)], cluster_from_name("n1g2"), mirror, 0,
                        {"resnet50": "ncf"}, sim_dir, "laptop")  # fmt: skip
    write_testbed_summary(tmp_path / "testbed")
    (laptop,) = pollux_table({"laptop": tmp_path / "testbed"}, {"laptop": sim_dir}, PAPER).to_dict(
        "records"
    )
    assert math.isnan(laptop["testbed_jct_over_duration"]) and math.isnan(laptop["testbed_pace"])
    assert laptop["testbed_ratio"] == 1 / 3
