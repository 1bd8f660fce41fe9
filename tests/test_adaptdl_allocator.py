"""Pollux's policy on our controller: rounds of the shared core's search made from AdaptDL hints."""

from __future__ import annotations

import numpy as np
import pytest

from reprise.errors import ConfigError
from reprise.policies.pollux.goodput import PerfParams
from reprise.testbed.systems.adaptdl.allocator import PolicyJob, PolluxAllocator, max_replicas
from reprise.testbed.systems.adaptdl.supervisor import JobHints

# a job whose step time is mostly compute: more replicas pay off
SCALES = PerfParams(0.02, 0.004, 0.05, 0.005, 0.01, 0.002, 1.2)


def hints(name: str, profiled: int = 1, bounds: tuple[int, int] | None = (8, 64)) -> JobHints:
    return JobHints(
        job=name,
        perf=SCALES,
        grad_sqr=0.5,
        grad_var=20.0,
        init_batch_size=64,
        max_batch_size=256,
        local_bsz_bounds=bounds,
        max_profiled_replicas=profiled,
        gradient_accumulation=True,
        received_at=0.0,
    )


def job(alloc: PolluxAllocator, name: str, submitted: float, h: JobHints | None) -> PolicyJob:
    return PolicyJob(name, submitted, alloc.empty(), h, initial_local_bsz=(8, 64))


def test_replica_cap_follows_adaptdl_allocator() -> None:
    assert max_replicas(None) == 1  # no hints yet: the initial allocation
    assert max_replicas(hints("a", profiled=1)) == 2  # twice what was profiled
    assert max_replicas(hints("a", profiled=3)) == 6
    # 256 / 64 = 4 replicas at the smallest local batch
    assert max_replicas(hints("a", profiled=8, bounds=(64, 128))) == 4


def test_new_job_gets_one_replica_on_the_first_node_with_room() -> None:
    alloc = PolluxAllocator([1, 2], seed=0)
    first = job(alloc, "a", 0, None)
    first.alloc = alloc.initial(first, [first])
    assert first.alloc.tolist() == [1, 0]
    second = job(alloc, "b", 1, None)
    second.alloc = alloc.initial(second, [first, second])
    assert second.alloc.tolist() == [0, 1]
    third = job(alloc, "c", 2, None)
    third.alloc = alloc.initial(third, [first, second, third])
    fourth = job(alloc, "d", 3, None)
    assert alloc.initial(fourth, [first, second, third]).tolist() == [0, 0]  # full: it waits


def test_round_grows_a_job_with_hints_and_keeps_one_without() -> None:
    alloc = PolluxAllocator([2, 2], seed=0)
    fitted = job(alloc, "fitted", 0, hints("fitted"))
    fresh = job(alloc, "fresh", 5, None)
    fitted.alloc = np.array([1, 0], dtype=np.int8)
    fresh.alloc = np.array([0, 1], dtype=np.int8)
    chosen = alloc.allocate([fitted, fresh], now=60)
    assert set(chosen) == {"fitted", "fresh"}
    assert chosen["fitted"].sum() == 2  # grew to its cap, twice the replicas profiled
    assert chosen["fresh"].sum() <= 1  # no goodput model yet
    used = chosen["fitted"] + chosen["fresh"]
    assert (used <= alloc.capacity).all()
    assert alloc.searches == 1


def test_a_queued_job_makes_the_round_shrink_a_grown_one() -> None:
    """The down re-size of a testbed run: two grown jobs hold every slot, a third waits; the next
    round gives it a replica by taking one from a grown job (in every seed tried)."""
    for seed in range(5):
        alloc = PolluxAllocator([2, 2], seed=seed)
        a = job(alloc, "a", 0, hints("a", profiled=2))
        b = job(alloc, "b", 10, hints("b", profiled=2))
        waiting = job(alloc, "c", 150, None)
        a.alloc = np.array([2, 0], dtype=np.int8)
        b.alloc = np.array([0, 2], dtype=np.int8)
        chosen = alloc.allocate([a, b, waiting], now=160)
        assert chosen["c"].sum() == 1, seed
        assert chosen["a"].sum() + chosen["b"].sum() == 3, seed  # one of them gave a replica
        assert ((chosen["a"] + chosen["b"] + chosen["c"]) <= alloc.capacity).all()


def test_crowded_cluster_never_oversubscribed_and_seeded() -> None:
    def run(seed: int) -> list[list[int]]:
        alloc = PolluxAllocator([2, 2], seed=seed)
        jobs = [job(alloc, f"j{i}", i, hints(f"j{i}", profiled=2)) for i in range(6)]
        chosen = alloc.allocate(jobs, now=120)
        total = sum(chosen.values())
        assert isinstance(total, np.ndarray) and (total <= 2).all()
        return [chosen[j.name].tolist() for j in jobs]

    assert run(3) == run(3)


def test_cluster_without_slots_is_refused() -> None:
    with pytest.raises(ConfigError, match="replica slots"):
        PolluxAllocator([0, 0], seed=0)
