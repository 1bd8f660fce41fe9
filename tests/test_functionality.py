"""ElasticFlow's testbed experiments without nodes: the functionality trace, the simulations put
beside a testbed run, the table's explanations, Figures 12(a) and 7 from run records."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

pytest.importorskip("grpc")

from infra.workflow import copy_workflow, job_blocks, run_snakemake

from reprise.analysis.figure7 import over_time
from reprise.analysis.figure12a import profiling_table
from reprise.data.clusters import load_cluster_spec
from reprise.data.profiles import load_profiles
from reprise.data.traces import load_trace
from reprise.errors import ConfigError
from reprise.functionality import (
    Fate,
    RecordingExecutor,
    ReplayExecutor,
    differences,
    settings_from_config,
    trace_params,
    write_trace,
)
from reprise.plots.figure7 import figure7_series, plot_figure7
from reprise.records.result import RunResult
from reprise.records.writer import write_run_record
from reprise.sim.options import SimOptions
from reprise.testbed_scheduler import STEP_COLUMNS, policy_runner

REPO = Path(__file__).resolve().parents[1]
SCHED = "ElasticFlow-artifact/ElasticFlow/scheduler"
CONFIG = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["testbed"]


@pytest.fixture
def configured(mirror: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    block = CONFIG["functionality"]
    profiles = load_profiles(mirror / SCHED / "throughputs_A100")
    cluster = load_cluster_spec(mirror / SCHED / "cluster_specs" / f"{block['cluster_spec']}.csv")
    path = tmp_path / "trace.csv"
    write_trace(trace_params(block), profiles, cluster, path)
    return load_trace(path, profiles), cluster, profiles, settings_from_config(block)


def test_the_configured_trace_is_seeded_and_loads_the_server_as_published(
    configured, tmp_path: Path, mirror: Path
) -> None:  # type: ignore[no-untyped-def]
    trace, cluster, profiles, settings = configured
    assert len(trace) == 10 and {t.model for t in trace} == {"resnet50_cifar10"}
    again = tmp_path / "again.csv"
    write_trace(trace_params(CONFIG["functionality"]), profiles, cluster, again)
    assert again.read_text() == (tmp_path / "trace.csv").read_text()
    options = SimOptions(slot=settings.slot)
    counts = {
        p: policy_runner(p)(trace, cluster, profiles, options, None) for p in settings.policies
    }
    # upstream's simulator overhead: ElasticFlow and EDF match the published 6/4 and 1/9
    assert (counts["ef-accessctrl"].accepted, counts["ef-accessctrl"].declined) == (6, 4)
    assert (counts["edf"].accepted, counts["edf"].declined) == (1, 9)
    paper = yaml.safe_load((REPO / "config" / "paper" / "functionality.yaml").read_text())
    assert set(paper["published"]) == set(settings.policies) and "source" in paper


def test_replaying_recorded_charges_reproduces_the_run(configured, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    trace, cluster, profiles, settings = configured
    options = SimOptions(slot=settings.slot)
    charges: list[dict[str, object]] = []

    class Recorder(RecordingExecutor):
        def apply(self, now, changes, restart):  # type: ignore[no-untyped-def]
            out = super().apply(now, changes, restart)
            for job, seconds in out.items():
                charges.append({"time": now, "job": job, "action": "start",
                                "runtime_charged_s": seconds, "policy_charged": True})  # fmt: skip
            return out

    run = policy_runner("dlas-gpu")
    first = run(trace, cluster, profiles, options, Recorder(cluster.num_gpus))
    restarts = tmp_path / "restarts.csv"
    with restarts.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(STEP_COLUMNS), restval="")
        writer.writeheader()
        writer.writerows(charges)
    replay = ReplayExecutor(restarts)
    second = run(trace, cluster, profiles, options, replay)
    assert [Fate.of(j) for j in first.jobs] == [Fate.of(j) for j in second.jobs]
    assert replay.unmatched == 0 and sum(replay.paid.values()) > 0


def test_a_differing_job_is_named_with_the_seconds_charged_to_it() -> None:
    a = [Fate(0, "0", True, 90.0, 100, True), Fate(1, "1", False, None, 50, None)]
    b = [Fate(0, "0", True, 104.0, 100, False), Fate(1, "1", False, None, 50, None)]
    notes = differences(a, b, {0: 1.0}, {0: 4.0}, "on the testbed", "modelled")
    assert notes == [
        "job 0: counted met (end 90, deadline 100) on the testbed, counted missed (end 104, "
        "deadline 100) modelled: restarts charged it 1 s on the testbed vs 4 s modelled"
    ]
    assert differences(a, a, {}, {}, "x", "y") == []


def test_policies_without_an_executor_seam_are_refused_with_the_reason() -> None:
    with pytest.raises(ConfigError, match="Pollux simulates its own cluster"):
        policy_runner("pollux")
    # Chronus takes the executor (docs/policies/chronus.md#on-a-testbed)
    assert policy_runner("chronus") and policy_runner("chronus-greedy")


def test_every_scheduled_block_reads_and_figure_paper_files_have_sources() -> None:
    for name in ("functionality", "figure6a", "figure6a_cpu", "figure6b"):
        settings = settings_from_config(CONFIG[name])
        assert settings.runtime.slot_s == settings.slot == 240
        paper = yaml.safe_load((REPO / "config" / "paper" / f"{name}.yaml").read_text())
        assert "source" in paper and paper["published"]["ef-accessctrl"]["accepted"] > 0


def test_figure12a_puts_profiling_seconds_beside_the_published(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    summary = {
        "cluster": "local-docker",
        "metrics": {"profiling_seconds_per_model": {"resnet50": 55.0}},
        "settings": {"models": ["resnet50"], "workers": [1, 2], "global_batch_sizes": [16],
                     "size": "tiny"},
    }  # fmt: skip
    (run / "summary.json").write_text(json.dumps(summary))
    (run / "measurements.csv").write_text("model,workers\nresnet50,1\nresnet50,2\n")
    table = profiling_table(run, REPO / "config" / "paper" / "figure12a.yaml").set_index("model")
    assert table.loc["resnet50", "published_s"] == 549.759
    assert table.loc["resnet50", "measured_over_published"] == 0.1
    assert table.loc["resnet50", "measurements"] == 2
    assert pd_isna(table.loc["vgg16", "measured_s"]) and table.loc["vgg16", "published_s"] > 0


def pd_isna(value: object) -> bool:
    return value is None or value != value


def test_figure7_counts_submissions_acceptances_and_gpus_per_hour(tmp_path: Path) -> None:
    run = tmp_path / "figure6b"
    (run / "ef-accessctrl").mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({"policies": {"ef-accessctrl": {}}}))
    (run / "ef-accessctrl" / "jobs.csv").write_text(
        "idx,submit_time,admitted\n0,0,1\n1,100,0\n2,4000,1\n"
    )
    (run / "ef-accessctrl" / "events.csv").write_text(
        "time,gpus_in_use,ce,running,pending\n0,4,0.5,1,0\n3700,8,0.9,2,0\n"
    )
    table = over_time(run, step_min=60)
    assert table.to_dict("list") == {
        "policy": ["ef-accessctrl", "ef-accessctrl"],
        "minute": [0.0, 60.0],
        "gpus_in_use": [4, 8],
        "submitted": [2, 1],
        "accepted": [1, 1],
    }


def test_figure7_is_drawn_from_a_recorded_run(configured, tmp_path: Path, mirror: Path) -> None:  # type: ignore[no-untyped-def]
    # a run of two policies recorded as the testbed writes it (simulated outcomes stand in)
    trace, cluster, profiles, settings = configured
    run = tmp_path / "figure6b"
    options = SimOptions(slot=settings.slot, gpu_type="A100")
    policies = ["ef-accessctrl", "edf"]
    for policy in policies:
        outcome = policy_runner(policy)(trace, cluster, profiles, options, None)
        record = RunResult("testbed", "figure6b", "t", None, cluster.name, policy, None, outcome)
        write_run_record(record, run / policy, {})
    (run / "summary.json").write_text(json.dumps({"policies": {p: {} for p in policies}}))
    table = over_time(run)
    table.to_csv(tmp_path / "figure7.csv", index=False)
    series = figure7_series(table)
    # (a): each policy's GPUs at 5-minute steps, never above the server's 8
    assert list(series.gpus) == policies
    for hours, gpus in series.gpus.values():
        assert hours[:3] == [0, 5 / 60, 10 / 60] and 0 < max(gpus) <= cluster.num_gpus
    # (b): per 10 minutes, all 10 submissions and ElasticFlow's 6 acceptances
    assert series.hours_b[:2] == [0, 10 / 60]
    assert sum(series.submitted) == 10 and sum(series.accepted) == 6
    spec = mirror / SCHED / "cluster_specs" / "n1g8.csv"
    pdf, png = tmp_path / "figure7.pdf", tmp_path / "figure7.png"
    plot_figure7(tmp_path / "figure7.csv", pdf, png, spec)
    assert pdf.read_bytes().startswith(b"%PDF") and png.read_bytes().startswith(b"\x89PNG")


def test_the_slurm_profile_asks_for_the_gpu_inventories_nodes_and_gpus(tmp_path: Path) -> None:
    # provisioning and the run are each one Slurm job holding every node of the inventory
    root = copy_workflow(tmp_path / "wf")
    profile = str(root / "workflow" / "profiles" / "slurm")
    result = run_snakemake(root, "figure6a", "figure6b", "-n", "--profile", profile, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    for rule in ("provision", "schedule_run"):
        asked = sorted(
            next(f for f in job["resources"].split(", ") if f.startswith("nodes="))
            + " "
            + next(f for f in job["resources"].split(", ") if f.startswith("gres="))
            for job in job_blocks(output, rule)
        )
        assert asked == ["nodes=16 gres=gpu:8", "nodes=4 gres=gpu:8"], (rule, asked)
