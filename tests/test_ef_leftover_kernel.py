"""ElasticFlow's compiled leftover pass (policies/elasticflow/leftover.py, leftover_kernel.py)
against the Python pass it replaces (`_EfSim.distribute_plain`): whole runs, every grant's plan,
every price, and the kernel's small helpers against their Python originals."""

from __future__ import annotations

import dataclasses
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from reprise.data.clusters import ClusterSpec
from reprise.data.generate import GeneratorParams, write_generated_trace
from reprise.data.profiles import ThroughputProfiles
from reprise.data.traces import TraceJob, load_trace
from reprise.policies.elasticflow import leftover
from reprise.policies.elasticflow import leftover_kernel as kernel
from reprise.policies.elasticflow.planner import TimelineEdit
from reprise.policies.elasticflow.policy import _EfSim, _ElasticFlow, _ElasticFlowWithoutAdmission
from reprise.policies.elasticflow.pricing import SortedTimeline
from reprise.records.outcome import RunOutcome
from reprise.sim.options import SimOptions
from reprise.sim.timing import align


class _PythonWithAdmission(_ElasticFlow):
    compiled_leftover = False


class _PythonWithoutAdmission(_ElasticFlowWithoutAdmission):
    compiled_leftover = False


CASES = [
    # (seed, mean gap, GPUs, slot, best-effort share)
    (1, 40.0, 32, 240, 0.0),
    (2, 90.0, 64, 240, 0.0),
    (3, 20.0, 64, 60, 0.0),
    (4, 30.0, 32, 60, 0.3),
]


def _trace(
    tmp_path: Path, profiles: ThroughputProfiles, seed: int, gap: float, be: float
) -> list[TraceJob]:
    path = tmp_path / "trace.csv"
    params = GeneratorParams(num_jobs=120, lam=gap, seed=seed, best_effort_share=be)
    write_generated_trace(params, profiles, path)
    return load_trace(path, profiles)


def _record(outcome: RunOutcome) -> tuple[object, ...]:
    """What a run record holds, and the run's counters."""
    return (outcome.jobs, outcome.rounds, outcome.accepted, outcome.declined, outcome.extra)


@pytest.mark.parametrize(
    ("compiled", "python"),
    [(_ElasticFlow, _PythonWithAdmission), (_ElasticFlowWithoutAdmission, _PythonWithoutAdmission)],
)
@pytest.mark.parametrize(("seed", "gap", "gpus", "slot", "be"), CASES)
def test_the_compiled_pass_gives_the_python_run(
    tmp_path: Path,
    a100_profiles: ThroughputProfiles,
    compiled: type[_EfSim],
    python: type[_EfSim],
    seed: int,
    gap: float,
    gpus: int,
    slot: int,
    be: float,
) -> None:
    trace = _trace(tmp_path, a100_profiles, seed, gap, be)
    cluster = ClusterSpec(f"n{gpus // 8}g8", 1, gpus // 8, 8)
    options = SimOptions(slot=slot, gpu_type="A100")
    got = compiled.simulate(trace, cluster, a100_profiles, options)
    want = python.simulate(trace, cluster, a100_profiles, options)
    assert _record(got) == _record(want)
    assert got.extra["scale_ups"] > 0


def test_the_compiled_pass_gives_the_python_run_on_figure_8a(
    fig8a_trace: list[TraceJob], t4_profiles: ThroughputProfiles
) -> None:
    cluster = ClusterSpec("n16g4", 1, 16, 4)
    options = SimOptions(slot=60, gpu_type="T4")
    got = _ElasticFlow.simulate(fig8a_trace, cluster, t4_profiles, options)
    want = _PythonWithAdmission.simulate(fig8a_trace, cluster, t4_profiles, options)
    assert _record(got) == _record(want)


def _run_checked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, profiles: ThroughputProfiles
) -> dict[str, int]:
    """A compiled run on an overloaded trace, with every compiled grant plan and every kernel
    price compared to the Python planner's and to a fresh Python price."""
    counts = {"offers": 0, "fixed": 0, "share": 0, "prices": 0}
    compiled_offer = leftover._compiled_offer
    price = leftover._price

    def checked_offer(
        sim: _EfSim, rows: leftover.LeftoverRows, r: int, now: float
    ) -> leftover.CompiledOffer | None:
        made = compiled_offer(sim, rows, r, now)
        if made is not None:
            want = sim.offer_for(rows.jobs[r], now)
            assert list(made.alloc.items()) == list(want.alloc.items())
            assert list(made.timeline.items()) == list(want.timeline.items())
            assert (made.end, made.real_end) == (want.end, want.real_end)
            assert made.tk.tolist() == list(want.timeline)
            counts["offers"] += 1
            counts[want.branch] += 1
        return made

    def checked_price(
        sim: _EfSim, rows: leftover.LeftoverRows, free: int, now: float, only_growable: bool
    ) -> None:
        price(sim, rows, free, now, only_growable)
        calls = sim.marginal_calls
        for r in np.flatnonzero(rows.status == kernel.PRICED).tolist():
            fresh = dataclasses.replace(rows.jobs[r])
            sim.price(fresh, free, now)
            assert fresh.marginal == rows.jf[r, kernel.MARGINAL]
            counts["prices"] += 1
        sim.marginal_calls = calls

    monkeypatch.setattr(leftover, "_compiled_offer", checked_offer)
    monkeypatch.setattr(leftover, "_price", checked_price)
    trace = _trace(tmp_path, profiles, seed=5, gap=30.0, be=0.0)
    cluster = ClusterSpec("n8g8", 1, 8, 8)
    _ElasticFlow.simulate(trace, cluster, profiles, SimOptions(slot=60, gpu_type="A100"))
    return counts


def test_every_compiled_plan_and_price_is_the_pythons(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, a100_profiles: ThroughputProfiles
) -> None:
    counts = _run_checked(monkeypatch, tmp_path, a100_profiles)
    assert counts["fixed"] > 50
    assert counts["share"] > 50
    assert counts["prices"] > 1000


# ---- the kernel's helpers against their Python originals --------------------------------------


def _random_timeline(rng: random.Random, ascending: bool = True) -> dict[float, int]:
    keys: list[float] = sorted(rng.sample(range(0, 4000, 60), rng.randint(1, 12)))
    keys = [k + (0.5 if rng.random() < 0.1 else 0) for k in keys]
    if not ascending and len(keys) > 1:
        rng.shuffle(keys)
    return {k: rng.randint(0, 16) for k in keys}


def _arrays(timeline: dict[float, int]) -> tuple[Any, Any]:
    return (
        np.array(list(timeline), dtype=np.float64),
        np.array(list(timeline.values()), dtype=np.int64),
    )


@pytest.mark.parametrize("seed", range(5))
def test_the_timeline_edit_equals_the_pythons(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(400):
        old = _random_timeline(rng, ascending=rng.random() < 0.9)
        new = dict(old)
        for k in rng.sample(list(new), min(len(new), rng.randint(0, 3))):
            new[k] = rng.randint(0, 16)
        if rng.random() < 0.5:
            new[float(rng.randrange(0, 4000, 30))] = rng.randint(0, 16)
        want = TimelineEdit(old, new)
        starts, ends, everywhere = kernel.timeline_edit(*_arrays(old), *_arrays(new))
        assert everywhere == want.everywhere
        if not everywhere:
            assert starts.tolist() == want._starts
            assert ends.tolist() == want._ends


@pytest.mark.parametrize("seed", range(5))
def test_the_timeline_flags_equal_sorted_timeline(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(400):
        timeline = _random_timeline(rng, ascending=rng.random() < 0.8)
        if rng.random() < 0.2 and len(timeline) > 1:
            keys = list(timeline)
            timeline[keys[1]] = timeline[keys[0]]  # a repeated value: not compressed
        listed = SortedTimeline(timeline)
        ordered, integral = kernel.timeline_flags(*_arrays(timeline))
        assert ordered == (listed.keys is not None)
        assert integral == listed.integral


def test_align_equals_the_pythons() -> None:
    rng = random.Random(7)
    for _ in range(20_000):
        base = rng.choice([0.0, float(rng.randint(-(10**6), 10**6)), rng.uniform(-1e6, 1e6)])
        t = rng.choice([float(rng.randint(-(10**7), 10**7)), rng.uniform(-1e7, 1e7), base])
        slot = rng.choice([1, 7, 60, 240, 360])
        got = kernel._align(base, t, slot)
        want = align(base, t, slot)
        assert got == want or (math.isnan(got) and math.isnan(want))
