"""ElasticFlow's incremental leftover pass (docs/policies/elasticflow.md#leftover) against the
plain one: on random generated traces and clusters, every pass grants the same jobs in the same
order and leaves the same prices, plans, job order and counters as re-pricing every job after
each grant and sorting them again; whole runs give the same jobs, rounds and counters."""

from __future__ import annotations

import copy
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from reprise.data.clusters import ClusterSpec
from reprise.data.generate import GeneratorParams, write_generated_trace
from reprise.data.profiles import ThroughputProfiles
from reprise.data.traces import TraceJob, load_trace
from reprise.policies.elasticflow.leftover import CERT, FIXED, PriceIndex
from reprise.policies.elasticflow.planner import TimelineEdit, allocation_gpu_time
from reprise.policies.elasticflow.policy import EfJob, _EfSim, _ElasticFlow
from reprise.policies.elasticflow.policy import _ElasticFlowWithoutAdmission as _NoAdmission
from reprise.policies.elasticflow.pricing import SortedTimeline
from reprise.records.outcome import RunOutcome
from reprise.sim.options import SimOptions


def plain_leftover(sim: _EfSim, now: float) -> None:
    """The plain pass: price every job, sort by price descending, grant the first that fits,
    re-price every job that can grow (also once nothing is left) and sort again."""
    used = 0
    for job in sim.runnable:
        job.next_gpus = job.curve.next_level(job.gpus)
        job.own_gpu_time = allocation_gpu_time(job.alloc, job.end_time)
        used += job.gpus
    free = sim.n - used
    assert sim.timeline.get(now) == free
    if free == 0:
        return
    sim.stamp += 2
    for job in sim.runnable:
        sim.price(job, free, now)
    sim.runnable.sort(key=_marginal, reverse=True)
    granted = True
    while free > 0 and granted:
        granted = False
        edit: TimelineEdit | None = None
        for job in sim.runnable:
            if job.next_gpus - job.gpus > free or job.next_gpus == job.gpus:
                continue
            edit, free = sim.grant(job, now, free)
            granted = True
            break
        sim.stamp += 1
        for job in sim.runnable:
            if job.next_gpus - job.gpus > 0:
                sim.price(job, free, now, edit)
        sim.runnable.sort(key=_marginal, reverse=True)


def _marginal(job: EfJob) -> float:
    return job.marginal


def _job_state(job: EfJob) -> tuple[Any, ...]:
    offer = job.offer
    plan = None if offer is None else (offer.alloc, offer.end, offer.real_end, offer.timeline)
    return (
        job.idx, job.gpus, job.next_gpus, job.alloc, job.end_time, job.real_end,
        job.start_time, job.pending, job.running, job.marginal, plan, job.own_gpu_time,
        job.price_break, job.price_fixed_end, job.price_cert, job.checked_end, job.whole_plan,
    )  # fmt: skip


def _state(sim: _EfSim) -> tuple[Any, ...]:
    return (
        [_job_state(j) for j in sim.runnable],
        [j.idx for j in sim.pending],
        [j.idx for j in sim.running],
        sim.timeline,
        sim.marginal_calls,
        sim.grants,
        [(e.time, e.arrivals, e.completions) for e in sim.events],
    )


class _Checked:
    """Mixin: every leftover pass runs the plain pass on a copy first and compares."""

    passes = 0
    grant_log: list[int]

    def grant(self, job: EfJob, now: float, free: int) -> tuple[TimelineEdit, int]:
        self.grant_log.append(job.idx)
        return super().grant(job, now, free)  # type: ignore[misc]

    def distribute_leftover(self, now: float) -> None:
        sim: _EfSim = self  # type: ignore[assignment]
        keep = {id(sim.profiles): sim.profiles, id(sim.cluster): sim.cluster}
        twin = copy.deepcopy(sim, keep)
        twin.grant_log = []
        self.grant_log = []
        plain_leftover(twin, now)
        super().distribute_leftover(now)  # type: ignore[misc]
        assert self.grant_log == twin.grant_log
        assert _state(sim) == _state(twin)
        type(self).passes += 1


class _CheckedEf(_Checked, _ElasticFlow):
    pass


class _CheckedEfNoAdmission(_Checked, _NoAdmission):
    pass


class _IndexedEf(_Checked, _ElasticFlow):
    index_from = 0  # every pass through the PriceIndex, however few jobs grow


class _IndexedEfNoAdmission(_Checked, _NoAdmission):
    index_from = 0


CHECKED = (_CheckedEf, _IndexedEf, _CheckedEfNoAdmission, _IndexedEfNoAdmission)


class _AlwaysIndexedEf(_ElasticFlow):
    index_from = 0


class _PlainEf(_ElasticFlow):
    def distribute_leftover(self, now: float) -> None:
        plain_leftover(self, now)


CLUSTERS = ((1, 4), (2, 4), (1, 8), (4, 8), (8, 8), (16, 8), (32, 8))
"""(nodes, GPUs per node): from a node that fits one big job to clusters with many growers."""


def _case(
    tmp_path: Path, profiles: ThroughputProfiles, seed: int
) -> tuple[list[TraceJob], ClusterSpec, SimOptions]:
    """A generated trace on a random cluster: loads from idle (long gaps, many leftover GPUs
    and grants) to overloaded, deadlines tight to loose, some best-effort jobs."""
    rng = random.Random(seed)
    nodes, per_node = CLUSTERS[seed % len(CLUSTERS)]
    cluster = ClusterSpec("random", 1, nodes, per_node)
    jobs = rng.randint(20, 70)
    gap = rng.choice((30.0, 120.0, 600.0, 3000.0))
    tight, loose = rng.choice(((0.5, 1.5), (1.0, 3.0), (0.5, 3.0)))
    share = rng.choice((0.0, 0.3))
    params = GeneratorParams(jobs, gap, seed, seed, tight, loose, share, min(16, nodes * per_node))
    path = tmp_path / f"trace{seed}.csv"
    write_generated_trace(params, profiles, path)
    slot = rng.choice((60, 240))
    options = SimOptions(slot=slot, gpu_type="A100", ef_scaleup_updates_real_end=seed % 3 == 0)
    return load_trace(path, profiles), cluster, options


def _compare(res: RunOutcome, plain: RunOutcome) -> None:
    assert res.jobs == plain.jobs
    assert res.rounds == plain.rounds
    assert (res.accepted, res.declined) == (plain.accepted, plain.declined)
    assert res.extra == plain.extra


@pytest.mark.parametrize("seed", range(20))
def test_every_pass_equals_the_plain_pass(
    tmp_path: Path, a100_profiles: ThroughputProfiles, seed: int
) -> None:
    trace, cluster, options = _case(tmp_path, a100_profiles, seed)
    checked = CHECKED[seed % 4]
    before = _Checked.passes
    checked.simulate(trace, cluster, a100_profiles, options)
    assert _Checked.passes >= before


@pytest.mark.parametrize("seed", range(16, 28))
def test_whole_runs_equal_the_plain_pass(
    tmp_path: Path, a100_profiles: ThroughputProfiles, seed: int
) -> None:
    trace, cluster, options = _case(tmp_path, a100_profiles, seed)
    plain = _PlainEf.simulate(trace, cluster, a100_profiles, options)
    incremental = _AlwaysIndexedEf if seed % 2 else _ElasticFlow
    _compare(incremental.simulate(trace, cluster, a100_profiles, options), plain)


def test_the_incremental_pass_keeps_prices(
    tmp_path: Path, a100_profiles: ThroughputProfiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The comparisons above are not vacuous: grants keep fixed and certified prices
    without re-pricing them, and re-price others."""
    kept = {FIXED: 0, CERT: 0}
    priced: list[int] = []
    original_kept = PriceIndex.kept
    original_price = _EfSim.price

    def counting_kept(
        self: PriceIndex, edit: TimelineEdit, timeline: SortedTimeline
    ) -> npt.NDArray[np.bool_]:
        out = original_kept(self, edit, timeline)
        for kind in kept:
            kept[kind] += int(np.count_nonzero(out & (self.kind == kind)))
        return out

    def counting_price(
        self: _EfSim, job: EfJob, free: int, now: float, edit: TimelineEdit | None = None
    ) -> None:
        if edit is not None:
            priced.append(job.idx)
        original_price(self, job, free, now, edit)

    monkeypatch.setattr(PriceIndex, "kept", counting_kept)
    monkeypatch.setattr(_EfSim, "price", counting_price)
    for seed in range(4):
        trace, cluster, options = _case(tmp_path, a100_profiles, seed)
        _AlwaysIndexedEf.simulate(trace, cluster, a100_profiles, options)
    assert kept[FIXED] > 0
    assert kept[CERT] > 0
    assert priced


def _edit_by_walk(old: dict[float, int], new: dict[float, int]) -> tuple[Any, ...]:
    """Spans and steady end of a timeline edit by walking every key of both timelines."""
    ka, kb = sorted(old), sorted(new)
    keys = sorted({*ka, *kb})
    starts: list[float] = []
    ends: list[float] = []
    va = vb = 0
    open_at: float | None = None
    first_shift: int | None = None
    steady = math.inf
    for t in keys:
        va = old.get(t, va)
        vb = new.get(t, vb)
        if first_shift is None:
            first_shift = vb - va
        elif vb - va != first_shift and steady == math.inf:
            steady = t
        if va != vb and open_at is None:
            open_at = t
        elif va == vb and open_at is not None:
            starts.append(open_at)
            ends.append(t)
            open_at = None
    if open_at is not None:
        starts.append(open_at)
        ends.append(math.inf)
    return starts, ends, steady


@pytest.mark.parametrize("seed", range(40))
def test_timeline_edit_equals_walking_every_key(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(200):
        keys = sorted(rng.sample(range(1, 60), rng.randint(0, 12)))
        old = {0.0: rng.randint(0, 4), **{float(k): rng.randint(0, 4) for k in keys}}
        new = dict(old)
        for _ in range(rng.randint(0, 4)):
            k = float(rng.choice(range(1, 60)))
            if rng.random() < 0.3 and k in new:
                del new[k]
            else:
                new[k] = rng.randint(0, 4)
        if rng.random() < 0.5:
            new[0.0] = rng.randint(0, 4)
        new = dict(sorted(new.items()))
        edit = TimelineEdit(old, new)
        assert not edit.everywhere
        starts, ends, steady = _edit_by_walk(old, new)
        assert edit.spans == (starts, ends)
        assert edit.steady_until == steady
