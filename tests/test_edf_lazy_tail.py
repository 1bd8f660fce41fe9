"""EDF's lazy tail (docs/policies/edf.md#the-lazy-tail) against the plain computation: on random
overloaded traces, planning only the jobs whose plans can be read before the next round gives
the same jobs, rounds and counts as planning every runnable job every round."""

from __future__ import annotations

import random
from pathlib import Path
from typing import ClassVar

import pytest

from reprise.data.clusters import ClusterSpec
from reprise.data.generate import GeneratorParams, write_generated_trace
from reprise.data.profiles import ThroughputProfiles
from reprise.data.traces import load_trace
from reprise.policies.edf import EdfJob, _Edf
from reprise.records.outcome import RunOutcome
from reprise.sim.options import SimOptions


class _PlainEdf(_Edf):
    skip_unread: ClassVar[bool] = False


def _both(tmp_path: Path, profiles: ThroughputProfiles, seed: int) -> tuple[RunOutcome, RunOutcome]:
    rng = random.Random(seed)
    gpus_per_node = rng.choice((4, 8))
    cluster = ClusterSpec("random", 1, rng.choice((1, 2, 4, 8, 16)), gpus_per_node)
    # mean gaps from a light load down to a heavy overload (long queues of starved jobs)
    params = GeneratorParams(
        num_jobs=rng.randint(40, 160),
        lam=rng.choice((30.0, 120.0, 600.0, 3000.0)),
        seed=seed,
        deadline_seed=seed,
        min_ddl=rng.choice((0.5, 1.0)),
        max_ddl=rng.choice((1.5, 3.0)),
        best_effort_share=rng.choice((0.0, 0.3)),
        max_gpus=min(16, cluster.num_gpus),
    )
    path = tmp_path / f"trace{seed}.csv"
    write_generated_trace(params, profiles, path)
    trace = load_trace(path, profiles)
    options = SimOptions(slot=rng.choice((60, 240)), record_gpu_map=rng.random() < 0.3)
    plain = _PlainEdf.simulate(trace, cluster, profiles, options)
    run = _Edf(trace, cluster, profiles, options)
    run.run()
    return plain, run.outcome()


@pytest.mark.parametrize("seed", range(24))
def test_lazy_tail_equals_planning_every_job(
    tmp_path: Path, a100_profiles: ThroughputProfiles, seed: int
) -> None:
    plain, lazy = _both(tmp_path, a100_profiles, seed)
    assert lazy.jobs == plain.jobs
    assert lazy.rounds == plain.rounds
    assert (lazy.accepted, lazy.declined) == (plain.accepted, plain.declined)
    assert lazy.extra == plain.extra


def test_lazy_tail_skips_planning_under_overload(
    tmp_path: Path, a100_profiles: ThroughputProfiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The comparison above is not vacuous: overloaded runs leave starved running jobs
    unplanned in some rounds."""
    skipped: list[int] = []
    original = _Edf.needed_until

    def counting(
        self: _Edf, jobs: list[EdfJob], first: int, stop: int, now: float, end: float
    ) -> int:
        until = original(self, jobs, first, stop, now, end)
        skipped.append(sum(1 for j in jobs[until:stop] if j.running))
        return until

    monkeypatch.setattr(_Edf, "needed_until", counting)
    for seed in range(6):
        _both(tmp_path, a100_profiles, seed)
    assert sum(skipped) > 0
