"""The Figure 6(a) trace as upstream's generator makes it, the Pollux workload file, and the
reduced trace for CPU nodes."""

from __future__ import annotations

from pathlib import Path

import pytest

from reprise.data.generate import GeneratorParams, write_generated_trace
from reprise.data.profiles import ThroughputProfiles
from reprise.data.traces import TraceJob, load_trace
from reprise.errors import ConfigError
from reprise.testbed.systems.adaptdl.trace import (
    ReducedSettings,
    pollux_workload,
    reduced_rows,
    write_figure6a_trace,
    write_pollux_workload,
    write_reduced_trace,
)

DATA = Path(__file__).parent / "data"
CPU_RATES = {m: 100.0 for m in ("resnet50", "vgg16", "inception3", "gpt2", "bert", "deepspeech2")}


def test_figure6a_trace_is_the_seeded_25_job_generator_output(
    a100_profiles: ThroughputProfiles, tmp_path: Path
) -> None:
    dest = tmp_path / "figure6a.csv"
    assert write_figure6a_trace(a100_profiles, dest) == 25
    jobs = load_trace(dest, a100_profiles)
    assert len(jobs) == 25 and jobs[0].submit_time == 0
    # seed 0, lam 900: the generator's first jobs
    assert (jobs[0].model, jobs[0].batch_size, jobs[0].num_gpu, jobs[0].duration) == (
        "deepspeech2",
        32,
        1,
        501063,
    )
    assert (jobs[1].job_id, jobs[1].submit_time, jobs[1].model) == ("1", 129, "inception3")
    for job in jobs:
        assert 0.5 * job.duration - 1 <= job.relative_deadline <= 1.5 * job.duration
        assert job.num_gpu <= 16 and not job.best_effort
    again = tmp_path / "again.csv"
    write_figure6a_trace(a100_profiles, again)
    assert again.read_bytes() == dest.read_bytes()


def test_pollux_workload_rows(tmp_path: Path) -> None:
    jobs = load_trace(DATA / "adaptdl_trace.csv")
    rows = pollux_workload(jobs)
    assert rows[0] == ("0", 0, "bert", 1, 128, 14707 * 128)
    assert rows[2] == ("2", 127, "inceptionv3", 1, 128, 10561 * 128)  # upstream's model dir name
    assert [r[1] for r in rows] == sorted(r[1] for r in rows)
    out = tmp_path / "workload.csv"
    write_pollux_workload(jobs, out)
    lines = out.read_text().splitlines()
    assert lines[0] == "name,time,application,num_replicas,batch_size,samples"
    assert lines[5] == "4,274,resnet50,4,128,1943552"


def test_reduced_trace_keeps_the_generators_jobs_on_a_compressed_clock(
    a100_profiles: ThroughputProfiles, tmp_path: Path
) -> None:
    settings = ReducedSettings(num_jobs=6, max_replicas=2)
    rows = reduced_rows(settings, a100_profiles, CPU_RATES)
    full = load_trace_rows(a100_profiles, tmp_path)
    assert [r[3] for r in rows] == [j.model for j in full[:6]]  # same models in the same order
    for row, job in zip(rows, full[:6], strict=True):
        _, submit, iterations, _, ddl, batch, replicas, seconds, _ = row
        assert 60 <= seconds <= 240 and replicas == min(job.num_gpu, 2)
        assert submit == int(job.submit_time / 60)
        factor = job.relative_deadline / job.duration
        assert ddl - submit == int(factor * seconds)
        assert iterations * batch >= seconds * 100 * replicas
    dest = tmp_path / "reduced.csv"
    assert write_reduced_trace(settings, a100_profiles, CPU_RATES, dest) == 6
    assert len(load_trace(dest)) == 6


def load_trace_rows(profiles: ThroughputProfiles, tmp: Path) -> list[TraceJob]:
    """The unreduced generator output for the same seed."""
    dest = tmp / "full.csv"
    write_generated_trace(GeneratorParams(num_jobs=6, lam=900, seed=0), profiles, dest)
    return load_trace(dest)


def test_reduced_trace_errors(a100_profiles: ThroughputProfiles) -> None:
    with pytest.raises(ConfigError, match="no CPU rate for deepspeech2"):
        reduced_rows(ReducedSettings(), a100_profiles, {"vgg16": 1.0})
    with pytest.raises(ConfigError, match="time_scale 2 must be in"):
        reduced_rows(ReducedSettings(time_scale=2), a100_profiles, CPU_RATES)
