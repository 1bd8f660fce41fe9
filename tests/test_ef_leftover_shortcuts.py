"""ElasticFlow's leftover pass reuses and shortcuts prices (docs/policies/elasticflow.md#leftover):
a marginal is kept where a grant's timeline edit cannot have changed it (`marginal_holds`), else
priced in one pass (`price_certified`), and only else by the planner. Whole runs on generated
overloaded traces must come out exactly as with every marginal priced by the planner after every
grant."""

from __future__ import annotations

from pathlib import Path

import pytest

from reprise.data.clusters import ClusterSpec
from reprise.data.generate import GeneratorParams, write_generated_trace
from reprise.data.profiles import ThroughputProfiles
from reprise.data.traces import load_trace
from reprise.policies.elasticflow.planner import TimelineEdit
from reprise.policies.elasticflow.policy import EfJob, _ElasticFlow, _ElasticFlowWithoutAdmission
from reprise.records.outcome import RunOutcome
from reprise.sim.options import SimOptions


class _PlannerPriced:
    """Neither reuse nor the one-pass shortcut: every marginal from the planner (in the
    Python pass, which calls these methods for every job)."""

    compiled_leftover = False

    def marginal_holds(self, job: EfJob, edit: TimelineEdit, d_al: float) -> bool:
        return False

    def price_certified(self, job: EfJob, now: float) -> bool:
        return False


class _PlainWithAdmission(_PlannerPriced, _ElasticFlow):
    pass


class _PlainWithoutAdmission(_PlannerPriced, _ElasticFlowWithoutAdmission):
    pass


def _record(outcome: RunOutcome) -> tuple[object, ...]:
    """Everything a run record holds, less the counters of how prices were found."""
    return (outcome.jobs, outcome.rounds, outcome.accepted, outcome.declined)


@pytest.mark.parametrize(
    ("fast", "plain"),
    [(_ElasticFlow, _PlainWithAdmission), (_ElasticFlowWithoutAdmission, _PlainWithoutAdmission)],
)
@pytest.mark.parametrize(("seed", "gap", "gpus"), [(1, 40.0, 32), (2, 90.0, 64), (3, 20.0, 64)])
def test_shortcut_prices_give_the_planner_priced_run(
    tmp_path: Path,
    a100_profiles: ThroughputProfiles,
    fast: type[_ElasticFlow],
    plain: type[_ElasticFlow],
    seed: int,
    gap: float,
    gpus: int,
) -> None:
    path = tmp_path / "trace.csv"
    write_generated_trace(GeneratorParams(num_jobs=120, lam=gap, seed=seed), a100_profiles, path)
    trace = load_trace(path, a100_profiles)
    cluster = ClusterSpec(f"n{gpus // 8}g8", 1, gpus // 8, 8)
    options = SimOptions(slot=240, gpu_type="A100")
    got = fast.simulate(trace, cluster, a100_profiles, options)
    want = plain.simulate(trace, cluster, a100_profiles, options)
    assert _record(got) == _record(want)
    assert got.extra["scale_ups"] == want.extra["scale_ups"] > 0
