"""Themis (docs/policies/themis.md): conic data, event snapping, tiny traces and the Figure 8(a)
golden run.

Expected values come from the upstream simulator (`scheduler.py --schedule=themis`, cvxpy 1.9.3 +
ECOS 2.0.14) run on the same inputs, or from cvxpy's `get_problem_data(ECOS)` for the conic data.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from reprise.data.clusters import ClusterSpec
from reprise.data.profiles import ThroughputProfiles
from reprise.data.traces import TraceJob, load_trace
from reprise.policies import get_policy
from reprise.policies.themis import _coalesce, _ConicModel, _Event, _Job, _Placer, simulate
from reprise.records.outcome import RunOutcome
from reprise.sim.options import SimOptions

T4 = SimOptions(slot=60, gpu_type="T4")
N1G4 = ClusterSpec("n1g4", 1, 1, 4)
N64G8 = ClusterSpec("n64g8", 2, 32, 8)
HEADER = "job_id,submit_time,iteration,model_name,ddl,batch_size,num_gpu,duration"


def _trace(
    tmp_path: Path, profiles: ThroughputProfiles, body: str, header: str = HEADER
) -> list[TraceJob]:
    path = tmp_path / "trace.csv"
    path.write_text(header + "\n" + body.strip() + "\n")
    return load_trace(path, profiles)


# ---- the conic program ------------------------------------------------------------------------


def test_conic_data_is_bit_identical_to_cvxpy() -> None:
    # Three jobs on 8 GPUs, t_ev = 1130: (g, tput, iters, submit, C) = (4, cifar10/2048@4, 300.0,
    # 1000, 0), (2, cifar10/2048@2, 171.39, 1010, 35.8), (1, cifar10/4096@1, 150, 1075, 12.5).
    # Expected arrays: cvxpy 1.9.3 get_problem_data(ECOS) of upstream's expression.
    gpus = np.array([4.0, 2.0, 1.0])
    tput = np.array([2.53513302294422, 1.193356620784188, 0.3562865663863035])
    iters = np.array([300.0, 171.39, 150.0])
    iso = np.minimum(3 / gpus, 1.0)
    denom = np.array([0.0, 35.8, 12.5]) + iters / iso
    elapsed = np.array([130.0, 120.0, 55.0])
    model = _ConicModel(3, 8)
    x = model.solve(gpus, tput, iters, elapsed, denom)
    assert model.data.tolist() == [
        -1.0, -1.0, -1.0,
        -1.0, 1.0, 4.0, -2.53513302294422, -2.53513302294422,
        -1.0, 1.0, 2.0, -1.193356620784188, -1.193356620784188,
        -1.0, 1.0, 1.0, -0.3562865663863035, -0.3562865663863035,
        0.75, -1.0, 1.0, 0.8272117380182441, -1.0, 1.0, 0.9230769230769231, -1.0, 1.0,
    ]  # fmt: skip
    assert model.indices.tolist() == [
        0, 1, 2, 3, 6, 9, 10, 11, 4, 7, 9, 13, 14, 5, 8, 9, 16, 17, 0, 10, 11, 1, 13, 14, 2, 16, 17
    ]  # fmt: skip
    assert model.indptr.tolist() == [0, 3, 8, 13, 18, 21, 24, 27]
    assert model.h.tolist() == [
        -0.325, -0.579178531782422, -0.3384615384615385, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 8.0,
        0.0, 0.0, 2.0, 0.0, 0.0, 2.0, 0.0, 0.0, 2.0,
    ]  # fmt: skip
    # cvxpy's x.value after solve(solver='ECOS'), to the last bit
    assert x.tolist() == [0.5829046544156732, 0.6919133167874029, 1.0000000000552578]


# ---- event snapping -----------------------------------------------------------------------------


def _job(idx: int, submit: int) -> _Job:
    spec = TraceJob(idx, str(idx), submit, 100, "cifar10", submit + 600, 2048, 1, 300, False)
    return _Job(spec=spec, tput=1.0, speedup=1.0, iters_left=100.0, time_left=300)


def test_coalesce_folds_three_near_events_and_keeps_far_ones() -> None:
    # the third event sits exactly one slot away: upstream folds it too (int(60) <= 60)
    jobs = [_job(i, t) for i, t in enumerate((10, 30, 60, 200))]
    events = [_Event(j.spec.submit_time, arrivals=[j]) for j in jobs]
    _coalesce(events, 0, 60)
    assert [e.time for e in events] == [60, 200]
    assert events[0].arrivals == jobs[:3]


def test_coalesce_snaps_a_lone_near_event_but_not_a_far_one() -> None:
    lone = [_Event(75)]
    _coalesce(lone, 30, 60)
    assert lone[0].time == 90
    far = [_Event(95), _Event(300)]
    _coalesce(far, 30, 60)
    assert [e.time for e in far] == [95, 300]  # caught one round later, on the grid


# ---- tiny traces, expected values from upstream runs ---------------------------------------------


def test_contention_on_four_gpus(tmp_path: Path, t4_profiles: ThroughputProfiles) -> None:
    # upstream: job.csv end times 1420/1360/1600/1520, ratio 0.75; scheduling_events.csv below
    trace = _trace(
        tmp_path,
        t4_profiles,
        """
0,1000,300,cifar10,2000,2048,2,500
1,1010,200,cifar10,1400,2048,2,300
2,1070,100,cifar10,3000,2048,4,100
3,1075,150,cifar10,1300,4096,1,400
""",
    )
    res = simulate(
        trace, N1G4, t4_profiles, SimOptions(slot=60, gpu_type="T4", record_gpu_map=True)
    )
    assert [j.end_time for j in res.jobs] == [1420, 1360, 1600, 1520]
    assert (res.accepted, res.declined) == (3, 1)
    assert [j.met_deadline_published for j in res.jobs] == [True, True, True, False]
    assert all(j.admitted and j.start_time is None for j in res.jobs)
    assert [r.time for r in res.rounds] == list(range(1000, 1601, 60))
    assert [r.gpu_map for r in res.rounds][:4] == [
        (0, 0, None, None),
        (1, 1, 0, 0),
        (1, 1, 3, None),
        (0, 0, 3, None),
    ]
    assert res.rounds[1].ce == 0.8375204518469269
    assert res.rounds[-1].ce == 0.0
    assert (res.rounds[2].running, res.rounds[2].pending) == (2, 2)


def test_best_effort_and_duration_clock(tmp_path: Path, t4_profiles: ThroughputProfiles) -> None:
    # upstream: ends 530/4760/620/800/1160, accepted 2, declined 2 (best-effort job 1 excluded);
    # job 0 stops on its 30 s duration, long before its iterations are done
    trace = _trace(
        tmp_path,
        t4_profiles,
        """
0,500,50,cifar10,900,2048,1,30,0
1,500,5000,cifar10,800,4096,4,9000,1
2,530,60,cifar10,600,2048,2,90,0
3,700,40,cifar10,5000,2048,1,45,0
4,1000,80,cifar10,1100,2048,2,95,0
""",
        header=HEADER + ",best_effort",
    )
    res = simulate(trace, N1G4, t4_profiles, T4)
    assert [j.end_time for j in res.jobs] == [530, 4760, 620, 800, 1160]
    assert (res.accepted, res.declined) == (2, 2)
    assert res.jobs[1].met_deadline_published is None
    assert len(res.rounds) == 72


TRACE_D = """
0,85,458,cifar10,877,2048,64,1487
1,185,2656,cifar10,4485,4096,8,1246
2,192,2620,imagenet,4944,3200,64,2600
3,290,2247,cifar10,6216,4096,16,1037
4,322,2882,cifar10,4154,2048,64,3278
5,378,1240,deepspeech2,2759,640,2,3582
6,381,321,deepspeech2,5494,640,16,1575
7,388,641,cifar10,4054,2048,64,3383
8,621,202,cifar10,2839,2048,1,2749
9,811,1737,cifar10,4749,2048,64,4255
10,914,2964,cifar10,4173,2048,8,3210
11,925,1562,cifar10,4784,2048,16,1124
12,926,1209,cifar10,1515,2048,4,1827
13,927,2194,cifar10,6008,2048,64,2455
14,953,2284,cifar10,2525,4096,64,2562
15,974,677,bert,4920,384,64,4234
16,1040,1305,cifar10,4031,4096,1,5855
17,1048,967,cifar10,6479,2048,8,4229
18,1103,372,deepspeech2,3349,640,2,2198
19,1146,239,bert,4340,384,16,5999
20,1202,500,imagenet,2440,3200,64,1608
21,1219,263,cifar10,4739,4096,8,5925
22,1257,721,imagenet,5719,3200,64,5810
23,1260,1781,deepspeech2,6898,640,4,2497
24,1276,1135,cifar10,3819,4096,16,6000
25,1289,2776,cifar10,3399,4096,4,5537
26,1299,2672,bert,5251,384,64,1643
27,1331,646,cifar10,6028,2048,2,1317
28,1339,1804,imagenet,5286,3200,8,3105
29,1420,1401,deepspeech2,3357,640,64,5260
"""


def test_two_switch_cluster(tmp_path: Path, t4_profiles: ThroughputProfiles) -> None:
    # upstream on n64g8 (2 switches, 512 GPUs, literal placement path): all 30 end times,
    # accepted 26, declined 4, 79 rounds
    trace = _trace(tmp_path, t4_profiles, TRACE_D)
    res = simulate(trace, N64G8, t4_profiles, T4)
    assert [j.end_time for j in res.jobs] == [
        265, 1405, 1885, 865, 1105, 3967, 865, 625, 925, 1345, 1825, 1225, 1705, 1705, 1705,
        2485, 4765, 1705, 3303, 1885, 1585, 1345, 1765, 3782, 1585, 3565, 2988, 1945, 4450, 3145,
    ]  # fmt: skip
    assert (res.accepted, res.declined) == (26, 4)
    assert len(res.rounds) == 79


def test_memoised_layout_equals_literal_placement(
    tmp_path: Path, t4_profiles: ThroughputProfiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    # on one switch the per-size-sequence memo must give the same GPU maps as re-placing;
    # end times, counts and the 130 rounds (GPU maps included) also matched upstream on n16g8
    trace = _trace(tmp_path, t4_profiles, TRACE_D)
    one_switch = ClusterSpec("n16g8", 1, 16, 8)
    options = SimOptions(slot=60, gpu_type="T4", record_gpu_map=True)
    memo = simulate(trace, one_switch, t4_profiles, options)
    assert [j.end_time for j in memo.jobs] == [
        385, 1405, 7825, 865, 7465, 3967, 865, 5125, 925, 6085, 1705, 1225, 1465, 7105, 7285,
        5605, 4765, 1405, 3303, 1885, 5125, 1345, 5425, 3782, 1585, 3565, 3528, 1945, 4450, 7585,
    ]  # fmt: skip
    assert (memo.accepted, memo.declined, len(memo.rounds)) == (18, 12, 130)
    original = _Placer.__init__

    def literal_init(self: _Placer, cluster: ClusterSpec, want_map: bool) -> None:
        original(self, cluster, want_map)
        self._memo = False

    monkeypatch.setattr(_Placer, "__init__", literal_init)
    literal = simulate(trace, one_switch, t4_profiles, options)
    assert [r.gpu_map for r in memo.rounds] == [r.gpu_map for r in literal.rounds]
    assert sum(1 for r in memo.rounds if r.pending) > 10  # the run does see contention


# ---- deferred solves -------------------------------------------------------------------------


def _twin_trace(seed: int) -> str:
    """Random jobs on a 4-GPU node, many of them submitted in identical pairs (twins tie in x)."""
    rng = np.random.default_rng(seed)
    rows = []
    t = 1000
    for _ in range(6):
        t += int(rng.integers(0, 400))
        gpus = int(rng.choice([1, 2, 4]))
        iters = int(rng.integers(50, 400))
        duration = int(rng.integers(60, 900))
        ddl = t + int(rng.integers(200, 3000))
        for _ in range(int(rng.integers(1, 3))):
            rows.append(f"{len(rows)},{t},{iters},cifar10,{ddl},2048,{gpus},{duration}")
    return "\n".join(rows)


def _ends_by_spec(trace: list[TraceJob], result: RunOutcome) -> dict[tuple[int, ...], list[int]]:
    """End times grouped by everything a job is made of except its id, so that jobs with
    identical rows are interchangeable."""
    spec = {
        j.idx: (j.submit_time, j.iterations, j.deadline, j.batch_size, j.num_gpu, j.duration)
        for j in trace
    }
    ends: dict[tuple[int, ...], list[int]] = {}
    for job in result.jobs:
        assert job.end_time is not None
        ends.setdefault(spec[job.idx], []).append(int(job.end_time))
    return {k: sorted(v) for k, v in ends.items()}


@pytest.mark.parametrize("seed", range(16))
def test_deferred_solves_change_no_outcome(
    seed: int, tmp_path: Path, t4_profiles: ThroughputProfiles
) -> None:
    # Recording the GPU map makes every round solve; without it, rounds where every job fits
    # are deferred. The program is then posed with its rows in another order, which moves
    # ECOS's last digits: jobs with identical rows (exact ties in every round) may trade
    # places, but every count, every round sample and the multiset of end times of each kind
    # of job must stay the same. (300 such traces: 283 identical, 17 with twins swapped.)
    trace = _trace(tmp_path, t4_profiles, _twin_trace(seed))
    lazy = simulate(trace, N1G4, t4_profiles, T4)
    eager = simulate(
        trace, N1G4, t4_profiles, SimOptions(slot=60, gpu_type="T4", record_gpu_map=True)
    )
    assert eager.extra["deferred_rounds"] == 0
    assert (lazy.accepted, lazy.declined) == (eager.accepted, eager.declined)
    assert _ends_by_spec(trace, lazy) == _ends_by_spec(trace, eager)
    assert [(r.time, r.ce, r.running, r.pending) for r in lazy.rounds] == [
        (r.time, r.ce, r.running, r.pending) for r in eager.rounds
    ]


def test_ties_after_deferred_rounds_replay_them(
    tmp_path: Path, t4_profiles: ThroughputProfiles
) -> None:
    # Twins 1 and 2 run beside job 0 (all fit, deferred) until job 3 arrives and the node is
    # contended: their x values then tie and the order the deferred rounds gave must be rebuilt.
    body = """
0,1000,900,cifar10,9000,2048,2,2000
1,1000,400,cifar10,9000,2048,1,2000
2,1000,400,cifar10,9000,2048,1,2000
3,1150,300,cifar10,4000,2048,2,900
"""
    trace = _trace(tmp_path, t4_profiles, body)
    lazy = simulate(trace, N1G4, t4_profiles, T4)
    eager = simulate(
        trace, N1G4, t4_profiles, SimOptions(slot=60, gpu_type="T4", record_gpu_map=True)
    )
    assert lazy.extra["deferred_rounds"] > 0
    assert lazy.extra["replayed_rounds"] > 0
    assert [j.end_time for j in lazy.jobs] == [j.end_time for j in eager.jobs]
    assert [r.ce for r in lazy.rounds] == [r.ce for r in eager.rounds]


# ---- Figure 8(a) golden -----------------------------------------------------------------------


# (job idx, end time) from upstream's job.csv for elasticVpollux_e.csv, n16g4, slot 60, T4
FIG8A_ENDS = {
    1: 3717705,
    0: 3721185,
    25: 3729645,
    5: 3744405,
    62: 3755745,
    42: 3769785,
    93: 3777045,
    97: 3777045,
    116: 3788445,
    129: 3818985,
    148: 3850725,
    165: 3866625,
    188: 3879585,
    186: 3897465,
    101: 3959025,
    193: 3900405,
    177: 4493685,
    192: 4507665,
    147: 4551945,
    158: 4566285,
    194: 4595145,
}
FIG8A_END_SUM = 768113475
"""Sum of all 195 end times in upstream's job.csv (every row matched when this was written)."""


@pytest.mark.slow
def test_fig8a_golden(
    fig8a_trace: list[TraceJob], n16g4: ClusterSpec, t4_profiles: ThroughputProfiles
) -> None:
    started = time.perf_counter()
    res = get_policy("themis")(fig8a_trace, n16g4, t4_profiles, T4)
    elapsed = time.perf_counter() - started
    assert (res.accepted, res.declined) == (61, 134)
    assert res.accepted / (res.accepted + res.declined) == pytest.approx(0.3128, abs=5e-5)
    ends = {j.idx: j.end_time for j in res.jobs}
    assert {k: ends[k] for k in FIG8A_ENDS} == FIG8A_ENDS
    assert sum(e for e in ends.values() if e is not None) == FIG8A_END_SUM
    assert len(res.rounds) == 14662
    # 14,085 rounds pose a program; 7,306 of them (every job fits, `ce` order-free) are never
    # solved, and no later tie ever asks for them
    assert res.extra["solver_calls"] == 6779
    assert res.extra["deferred_rounds"] == 7306
    assert elapsed < 600
