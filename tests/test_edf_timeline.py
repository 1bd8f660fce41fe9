"""The in-place EDF planner against the literal one (`edf_plan`) on random timelines."""

from __future__ import annotations

import random

import pytest

from reprise.data.traces import TraceJob
from reprise.errors import SimulationError
from reprise.policies.edf import EdfJob, FreeTimeline, edf_plan, edf_plan_inplace
from reprise.sim.timeline import merge_runs

COLUMNS = ((1, 2, 4, 8), (1, 2, 4, 8, 16, 32, 64), (2, 4, 8), (1, 3, 2, 8))


def _random_job(rng: random.Random, n: int, t0: float) -> EdfJob:
    columns = rng.choice(COLUMNS)
    rates = {g: rng.uniform(0.5, 2.0) * g ** rng.uniform(0.5, 1.0) for g in columns}
    base = min(max(columns), n)
    if base not in rates:
        rates[base] = rng.uniform(1.0, 4.0)
    deadline = int(t0 + rng.choice((0, 50, 300, 2000, 10**6)))
    trace = TraceJob(0, "0", 0, 1, "m", deadline, 1, 1, 0, False)
    iters = rng.choice((rng.uniform(1, 50), rng.uniform(50, 5000), float(rng.randint(1, 900))))
    return EdfJob(trace, base, columns, rates, iters)


def _random_timeline(rng: random.Random, n: int, t0: float) -> dict[float, int]:
    timeline: dict[float, int] = {t0: rng.randint(0, n)}
    t = t0
    for _ in range(rng.randint(0, 12)):
        t += rng.choice((1, 7, 60, 120, 333, 59.5))
        timeline[t] = rng.randint(0, n)
    return merge_runs(timeline)


@pytest.mark.parametrize("seed", range(40))
def test_inplace_planner_equals_the_literal_one(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.choice((4, 16, 64))
    slot = rng.choice((60, 240))
    t0 = rng.choice((0, 17, 3600.5))
    literal = _random_timeline(rng, n, t0) if seed % 2 else {t0: n}
    fast = FreeTimeline.of(literal)
    for _ in range(30):
        job = _random_job(rng, n, t0)
        try:
            gpus, end, ok, literal = edf_plan(job, t0, literal, n, slot)
        except SimulationError:
            with pytest.raises(SimulationError):
                edf_plan_inplace(job, fast, n, slot)
            return
        assert edf_plan_inplace(job, fast, n, slot) == (gpus, end, ok)
        assert fast.as_dict() == literal
        assert list(fast.as_dict()) == list(literal)
