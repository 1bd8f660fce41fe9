"""Golden test against the authors' committed Figure 10 logs (plot_figure/logs/figure10/).

The Figure 10 trace is deterministic (seed 1, deadline factor fixed at 1.5). With the version
switches at their defaults (the code of the paper's time), every EF-code-base policy must give the
same per-job completion times and the same per-round cluster efficiency as the committed logs.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from reprise.data.clusters import load_cluster_spec
from reprise.data.generate import GeneratorParams, write_generated_trace
from reprise.data.profiles import ThroughputProfiles
from reprise.data.traces import TraceJob, load_trace
from reprise.policies import get_policy
from reprise.sim.options import SimOptions

LOGS = "ElasticFlow-artifact/plot_figure/logs/figure10"
FIG10 = GeneratorParams(num_jobs=100, lam=1500, seed=1, min_ddl=1.5, max_ddl=1.5)


@pytest.fixture(scope="module")
def fig10_trace(
    a100_profiles: ThroughputProfiles, tmp_path_factory: pytest.TempPathFactory
) -> list[TraceJob]:
    path = tmp_path_factory.mktemp("fig10") / "fig10.csv"
    write_generated_trace(FIG10, a100_profiles, path)
    return load_trace(path, a100_profiles)


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("policy", ["edf", "gandiva", "dlas-gpu", "themis", "ef-accessctrl"])
def test_completions_and_efficiency_match_the_committed_logs(
    policy: str, fig10_trace: list[TraceJob], a100_profiles: ThroughputProfiles, mirror: Path
) -> None:
    cluster = load_cluster_spec(
        mirror / "ElasticFlow-artifact/ElasticFlow/scheduler/cluster_specs/n16g8.csv"
    )
    result = get_policy(policy)(
        fig10_trace, cluster, a100_profiles, SimOptions(slot=240, gpu_type="A100")
    )
    logged_jobs = read_rows(mirror / LOGS / policy / "job.csv")
    ours = {str(j.idx): j for j in result.jobs}
    assert len(logged_jobs) == sum(1 for j in result.jobs if j.end_time is not None)
    for row in logged_jobs:
        job = ours[row["job_id"]]
        assert job.end_time == pytest.approx(float(row["end_time"]), abs=1e-6), row["job_id"]
    logged_rounds = read_rows(mirror / LOGS / policy / "scheduling_events.csv")
    assert [float(r["time"]) for r in logged_rounds] == pytest.approx(
        [r.time for r in result.rounds]
    )
    assert [float(r["ce"]) for r in logged_rounds] == pytest.approx(
        [r.ce for r in result.rounds], abs=1e-8
    )
