"""Gandiva: node-set placement with time-slicing and the policy loop
(docs/policies/gandiva.md#placement, docs/policies/gandiva.md#round)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from reprise.data.clusters import ClusterSpec
from reprise.data.profiles import ThroughputProfiles
from reprise.data.traces import TraceJob, load_trace
from reprise.errors import SimulationError
from reprise.policies import get_policy
from reprise.policies.gandiva.placement import GandivaPlacement, SlicedJob
from reprise.records.outcome import RunOutcome
from reprise.sim.options import SimOptions

TWO_NODES = ClusterSpec("n2g4", num_switch=1, nodes_per_switch=2, gpus_per_node=4)
ONE_NODE = ClusterSpec("n1g4", num_switch=1, nodes_per_switch=1, gpus_per_node=4)


def _job(idx: int, gpus: int, duration: int = 100, deadline: int = 10_000) -> SlicedJob:
    trace_job = TraceJob(
        idx=idx,
        job_id=str(idx),
        submit_time=0,
        iterations=1,
        model="m",
        deadline=deadline,
        batch_size=64,
        num_gpu=gpus,
        duration=duration,
        best_effort=False,
    )
    return SlicedJob(trace_job)


# -- placement, expected values derived by hand from upstream's cluster model --------------------


def test_strict_capacity_leaves_last_slot_of_a_set_empty() -> None:
    placement = GandivaPlacement(TWO_NODES)
    jobs = [_job(i, 1) for i in range(4)]
    assert all(placement.place(j) for j in jobs)
    sets = placement.sets[1]
    # capacity 4 one-GPU slots, but load + 1 < 4 admits only three jobs; the 4th opens node 1
    assert [len(s.jobs) for s in sets] == [1, 3]
    assert [s.nodes for s in sets] == [[1], [0]]
    assert placement.free_nodes == []


def test_oversubscription_time_slices_and_rotates_on_the_minute() -> None:
    placement = GandivaPlacement(ONE_NODE)
    first, second = _job(0, 4, duration=100), _job(1, 4, duration=100)
    assert placement.place(first)
    assert placement.place(second)  # no free node: shares the set of `first`
    (node_set,) = placement.sets[4]
    assert node_set.capacity == 1
    assert node_set.jobs == [first, second]
    # 30 s later (not a multiple of 60): only the head runs, no rotation
    finished, released = placement.time_slice(30, 30)
    assert (finished, released) == ([], False)
    assert (first.executed, second.executed) == (30, 0)
    # at t = 60 the running prefix moves to the back
    placement.time_slice(60, 30)
    assert node_set.jobs == [second, first]
    placement.mark_slots()
    assert (second.in_slot, first.in_slot) == (True, False)
    assert placement.gpu_map() == (1, 1, 1, 1)


def test_finished_job_is_back_dated_and_frees_its_nodes() -> None:
    placement = GandivaPlacement(ONE_NODE)
    job = _job(0, 2, duration=50)
    job.overhead = 4.0
    assert placement.place(job)
    finished, released = placement.time_slice(70, 60)
    # 60 - 4 s of progress = 56 >= 50: it ended 6 s before the round
    assert finished == [job]
    assert job.end_time == 64.0
    assert released
    assert placement.free_nodes == [0]
    assert placement.sets[2] == []


def test_no_set_and_no_free_node_means_waiting() -> None:
    placement = GandivaPlacement(ONE_NODE)
    assert placement.place(_job(0, 4))
    assert not placement.place(_job(1, 2))


def test_unknown_size_class_aborts() -> None:
    with pytest.raises(SimulationError, match="3-GPU job"):
        GandivaPlacement(ONE_NODE).place(_job(0, 3))


def test_rebalance_shrinks_a_class_below_its_share() -> None:
    cluster = ClusterSpec("n3g4", num_switch=1, nodes_per_switch=3, gpus_per_node=4)
    placement = GandivaPlacement(cluster)
    a, b = _job(0, 4), _job(1, 4)
    small = [_job(10 + i, 1) for i in range(8)]
    for j in [a, b, *small]:
        assert placement.place(j)
    # nodes 0 and 1 hold a and b; all eight 1-GPU jobs share node 2 (3 by capacity, then sliced)
    assert [s.jobs for s in placement.sets[4]] == [[a], [b]]
    assert [len(s.jobs) for s in placement.sets[1]] == [8]
    placement.rebalance()
    # demands 8 + 8 of 12 GPUs: the 1-GPU class wants 6 > 4 held but no node is free; the
    # 4-GPU class may keep floor(8/16*12) = 6 < 8 held, so ceil(2/4) = 1 set (the head) dissolves
    # and its job is time-sliced behind b
    assert [s.jobs for s in placement.sets[4]] == [[b, a]]
    assert placement.free_nodes == [0]


def test_expand_quirk_skips_reshuffle_for_single_node_sets() -> None:
    placement = GandivaPlacement(TWO_NODES)
    small = [_job(i, 1) for i in range(5)]
    big = _job(9, 4)
    for j in [*small[:3], big, *small[3:]]:
        assert placement.place(j)
    assert [len(s.jobs) for s in placement.sets[1]] == [5]  # 3 by capacity, then sliced
    big.executed = big.job.duration
    finished, released = placement.time_slice(1, 0)
    assert (finished, released) == ([big], True)
    placement.rebalance()
    # the class wants min(floor(5/5*8), 5) = 5 GPUs and holds 4: one new set on node 1. Upstream
    # reuses its loop counter, so jobs are NOT redistributed: the new set stays empty ...
    assert [len(s.jobs) for s in placement.sets[1]] == [5, 0]
    assert placement.free_nodes == []
    # ... and hands its node back at the next execution step
    assert placement.time_slice(2, 0) == ([], True)
    assert placement.free_nodes == [1]


# -- the policy on a tiny trace; expectations from the upstream simulator run on the same input --

TINY_TRACE = """\
job_id,submit_time,iteration,model_name,ddl,batch_size,num_gpu,duration,best_effort
0,0,100,resnet50,2500,64,4,1500,0
1,30,100,vgg16,1500,64,4,500,0
2,50,100,bert,700,64,1,300,0
3,50,100,bert,1800,64,1,400,0
4,100,100,gpt2,5000,128,8,700,0
5,130,100,resnet50,1000,128,2,200,0
6,400,100,inception3,3000,64,1,900,1
7,1000,100,resnet50,3000,64,4,300,0
8,1010,100,vgg16,2000,128,2,250,0
9,1200,100,bert,2500,128,1,100,0
"""

# upstream HEAD, `--schedule=gandiva --scheme=gandiva`, 1x2x4 GPUs, slot 60, A100:
# job_id -> (start_time, end_time) from its job.csv
TINY_EXPECTED = {
    "0": (0, 1556.0),
    "1": (60, 592.0),
    "2": (1320, 1620),
    "3": (1560, 1960),
    "4": (2220, 2920),
    "5": (2940, 3140),
    "6": (1320, 2220),
    "7": (1000, 1316.0),
    "8": (3180, 3430),
    "9": (1320, 1420),
}


def test_tiny_trace_matches_upstream(tmp_path: Path, a100_profiles: ThroughputProfiles) -> None:
    path = tmp_path / "tiny.csv"
    path.write_text(TINY_TRACE)
    trace = load_trace(path, a100_profiles)
    result = get_policy("gandiva")(trace, TWO_NODES, a100_profiles, SimOptions(slot=60))
    assert (result.accepted, result.declined) == (5, 4)
    got = {j.job_id: (j.start_time, j.end_time) for j in result.jobs}
    assert got == TINY_EXPECTED
    assert len(result.rounds) == 46  # rows of upstream's scheduling_events.csv
    assert result.jobs[6].met_deadline_published is None  # best-effort
    assert result.jobs[2].met_deadline_published is False


# -- golden: Figure 8(a) -------------------------------------------------------------------------

# Measured from upstream HEAD on elasticVpollux_e.csv, n16g4, slot 60, T4 (job.csv and
# scheduling_events.csv): sha256 over "job_id,start,end,preempt" lines sorted by job id, and over
# "time,ce" lines of every round.
FIG8A_JOBS_SHA = "1eb156a6d0bb17139540717b8f4ff7945803d8edfcf0beb21e05482b411a6e56"
FIG8A_ROUNDS_SHA = "c7edd308edf04878aa268a85f19e67c43cfbfb2e5849682b5036ba52b658cc2c"


def job_digest(result: RunOutcome) -> str:
    done = sorted((j for j in result.jobs if j.end_time is not None), key=lambda j: int(j.job_id))
    text = "\n".join(
        f"{j.job_id},{float(j.start_time or 0)!r},{float(j.end_time or 0)!r},{j.preempt}"
        for j in done
    )
    return hashlib.sha256(text.encode()).hexdigest()


def round_digest(result: RunOutcome) -> str:
    text = "\n".join(f"{float(r.time)!r},{float(r.ce)!r}" for r in result.rounds)
    return hashlib.sha256(text.encode()).hexdigest()


def test_fig8a_golden(
    fig8a_trace: list[TraceJob], n16g4: ClusterSpec, t4_profiles: ThroughputProfiles
) -> None:
    result = get_policy("gandiva")(fig8a_trace, n16g4, t4_profiles, SimOptions(gpu_type="T4"))
    assert (result.accepted, result.declined) == (18, 177)
    assert round(result.ratio_published_rule, 4) == 0.0923
    by_id = {j.job_id: j for j in result.jobs}
    assert (by_id["0"].start_time, by_id["0"].end_time) == (3715485, 3721137.0)
    assert (by_id["1"].start_time, by_id["1"].end_time) == (3717550, 3717626.0)
    assert (by_id["72"].start_time, by_id["72"].end_time) == (3762249, 3777858.0)
    assert (by_id["194"].start_time, by_id["194"].end_time) == (3887530, 5315679)
    assert len(result.rounds) == 23942
    assert job_digest(result) == FIG8A_JOBS_SHA
    assert round_digest(result) == FIG8A_ROUNDS_SHA
