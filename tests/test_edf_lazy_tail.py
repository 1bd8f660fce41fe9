"""Plain EDF's incremental round (docs/policies/edf.md#the-lazy-tail,
#incremental-bookkeeping) against the plain computation: on random overloaded traces, planning
only the jobs whose plans can be read before the next round, from a deadline order kept sorted
as jobs come and go, and acting only on the jobs a round changes gives the same jobs, rounds and
counts as upstream's round, which re-sorts and re-plans every runnable job and walks the whole
runnable list."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from reprise.data.clusters import ClusterSpec
from reprise.data.generate import GeneratorParams, write_generated_trace
from reprise.data.profiles import ThroughputProfiles
from reprise.data.traces import load_trace
from reprise.policies.edf import EdfJob, _Edf, _EdfWithAdmission
from reprise.records.outcome import RunOutcome
from reprise.sim.engine import AllocationChange, Executor
from reprise.sim.events import Event
from reprise.sim.options import SimOptions


class _PlainEdf(_EdfWithAdmission):
    """Upstream's plain EDF round, literally: every runnable job planned in deadline order,
    every runnable job walked in the runnable list's order."""

    name = "edf"
    pays_modelled_overhead = False

    def decide(self, event: Event, now: float) -> None:
        jobs = self.jobs
        for idx in event.completions:
            self.placement.release(idx)
            self.complete(jobs[idx])
        arrivals = [jobs[i] for i in event.arrivals]
        if arrivals:
            self.plan_all(self.runnable + arrivals, event.time)
            for job in arrivals:
                self.admit(job)
        else:
            self.plan_all(self.runnable, event.time)
        for job in self.running.values():
            if job.gpus > 0:
                self.placement.release(job.idx)
        to_place: list[EdfJob] = []
        for job in list(self.runnable):
            if job.plan_gpus == 0 and not job.running:
                continue
            self.apply_plan(job, event.time, to_place)
        to_place.sort(key=lambda j: j.gpus, reverse=True)
        for job in to_place:
            self.place(job)


class _MeasuringExecutor:
    """A testbed stand-in: every job pays a few measured seconds, varying by job and round."""

    measured = True

    def apply(
        self, now: float, changes: Sequence[AllocationChange], restart: bool
    ) -> Mapping[int, float]:
        return {c.job: float((c.job * 7 + int(now)) % 13 + (5 if restart else 0)) for c in changes}


def _both(tmp_path: Path, profiles: ThroughputProfiles, seed: int) -> tuple[RunOutcome, RunOutcome]:
    rng = random.Random(seed)
    gpus_per_node = rng.choice((4, 8))
    cluster = ClusterSpec("random", 1, rng.choice((1, 2, 4, 8, 16)), gpus_per_node)
    # mean gaps from a light load down to a heavy overload (long queues of starved jobs)
    params = GeneratorParams(
        num_jobs=rng.randint(40, 200),
        lam=rng.choice((10.0, 30.0, 120.0, 600.0, 3000.0)),
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
    if rng.random() < 0.3:
        # coarse deadlines: many ties, where the runnable list's order decides
        q = rng.choice((600, 3600))
        trace = [
            t if t.best_effort else replace(t, deadline=-(-t.deadline // q) * q) for t in trace
        ]
    options = SimOptions(slot=rng.choice((60, 240)), record_gpu_map=rng.random() < 0.3)
    executor: Executor | None = _MeasuringExecutor() if rng.random() < 0.25 else None
    plain = _PlainEdf.simulate(trace, cluster, profiles, options, executor)
    run = _Edf(trace, cluster, profiles, options, executor)
    run.run()
    return plain, run.outcome()


@pytest.mark.parametrize("seed", range(40))
def test_incremental_round_equals_planning_every_job(
    tmp_path: Path, a100_profiles: ThroughputProfiles, seed: int
) -> None:
    plain, lazy = _both(tmp_path, a100_profiles, seed)
    assert lazy.jobs == plain.jobs
    assert lazy.rounds == plain.rounds
    assert (lazy.accepted, lazy.declined) == (plain.accepted, plain.declined)
    assert lazy.extra == plain.extra


def test_incremental_round_skips_work_under_overload(
    tmp_path: Path, a100_profiles: ThroughputProfiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The comparison above is not vacuous: overloaded runs leave starved running jobs and
    pending jobs unplanned in some rounds."""
    skipped_running: list[int] = []
    skipped_pending: list[int] = []
    original = _Edf.plan_round

    def counting(self: _Edf, now: float) -> int:
        planned = original(self, now)
        skipped_running.append(sum(1 for j in self.order[planned:] if j.running))
        skipped_pending.append(sum(1 for j in self.order[planned:] if not j.running))
        return planned

    monkeypatch.setattr(_Edf, "plan_round", counting)
    for seed in range(6):
        _both(tmp_path, a100_profiles, seed)
    assert sum(skipped_running) > 0
    assert sum(skipped_pending) > 0
