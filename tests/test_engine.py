"""The engine's executor seam and the import rules between sim, policies, records and analysis.

The seam: ElasticFlow driven through the engine with executors that report given overheads,
as a testbed executor reports measured ones; upstream's testbed mode charges what it measured,
capped at a configured maximum, to every policy, plain EDF and Themis included, which pay nothing
in simulation (docs/engine.md#overheads).
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest

from reprise.data.clusters import ClusterSpec
from reprise.data.profiles import ThroughputProfiles
from reprise.data.traces import TraceJob, load_trace
from reprise.policies import edf, themis
from reprise.policies.elasticflow.policy import simulate_with_admission, simulate_without_admission
from reprise.records.outcome import RunOutcome
from reprise.sim.engine import AllocationChange, SimulatedExecutor
from reprise.sim.options import SimOptions

LIBRARY = Path(__file__).resolve().parents[1] / "workflow" / "reprise"
HEADER = "job_id,submit_time,iteration,model_name,ddl,batch_size,num_gpu,duration\n"
# ncf runs on 1 GPU at 46.914 it/s on a T4: 5600 iterations take 120 s, the deadline is 120 s
ONE_JOB = "0,0,5600,ncf,120,32768,1,120\n"
N1G2 = ClusterSpec("n1g2", 1, 1, 2)
N1G1 = ClusterSpec("n1g1", 1, 1, 1)


class ReportingExecutor:
    """Reports `seconds` of overhead for every job it is handed, and keeps what it was handed;
    `measured` says whether they stand for a testbed's measured seconds or a model's."""

    def __init__(self, seconds: float, measured: bool = True) -> None:
        self.seconds = seconds
        self.measured = measured
        self.rounds: list[tuple[float, list[AllocationChange], bool]] = []

    def apply(
        self, now: float, changes: Sequence[AllocationChange], restart: bool
    ) -> Mapping[int, float]:
        self.rounds.append((now, list(changes), restart))
        return {change.job: self.seconds for change in changes}


def _trace(tmp_path: Path, rows: str, profiles: ThroughputProfiles) -> list[TraceJob]:
    path = tmp_path / "trace.csv"
    path.write_text(HEADER + rows)
    return load_trace(path, profiles)


def _ends(result: RunOutcome) -> list[float | None]:
    return [job.end_time for job in result.jobs]


@pytest.mark.parametrize(
    ("seconds", "cap", "end"), [(4, None, 124), (7, None, 127), (20, None, 140), (500, 20, 140)]
)
def test_the_overhead_an_executor_reports_is_charged_capped_at_the_maximum(
    seconds: float, cap: float | None, end: float, tmp_path: Path, t4_profiles: ThroughputProfiles
) -> None:
    trace = _trace(tmp_path, ONE_JOB, t4_profiles)
    executor = ReportingExecutor(seconds)
    options = SimOptions(slot=60, gpu_type="T4", max_overhead=cap)
    result = simulate_with_admission(trace, N1G2, t4_profiles, options, executor)
    # the job ran from 0 on one GPU; its end moved by exactly the charged overhead
    assert result.jobs[0].start_time == 0 and result.jobs[0].end_time == end
    assert [r.time for r in result.rounds] == [0, end]
    (first_round,) = executor.rounds
    assert first_round == (0, [AllocationChange(job=0, gpus=1, cached=False)], False)


def test_measured_overheads_change_the_verdict_of_ef_without_admission(
    tmp_path: Path, t4_profiles: ThroughputProfiles
) -> None:
    # `ef` judges the recorded end: no overhead meets the 120 s deadline, 4 s (the model's
    # value for one GPU) misses it
    trace = _trace(tmp_path, ONE_JOB, t4_profiles)
    options = SimOptions(slot=60, gpu_type="T4")
    free = simulate_without_admission(trace, N1G2, t4_profiles, options, ReportingExecutor(0))
    paid = simulate_without_admission(trace, N1G2, t4_profiles, options, ReportingExecutor(4))
    assert (free.accepted, free.declined) == (1, 0)
    assert (paid.accepted, paid.declined) == (0, 1)
    assert free.jobs[0].met_deadline_published and not paid.jobs[0].met_deadline_published


def test_simulated_executor_is_the_default(
    fig8a_trace: list[TraceJob], n16g4: ClusterSpec, t4_profiles: ThroughputProfiles
) -> None:
    trace = fig8a_trace[:30]
    options = SimOptions(slot=60, gpu_type="T4")
    default = simulate_with_admission(trace, n16g4, t4_profiles, options)
    explicit = simulate_with_admission(
        trace, n16g4, t4_profiles, options, SimulatedExecutor(n16g4.num_gpus)
    )
    assert default.jobs == explicit.jobs and default.rounds == explicit.rounds


def test_measured_overheads_change_later_decisions(
    fig8a_trace: list[TraceJob], n16g4: ClusterSpec, t4_profiles: ThroughputProfiles
) -> None:
    # a slow relaunch (the testbed cap, 20 s, every round) against a free one: the schedule the
    # planner builds on top of the charged time differs, not only the end times
    trace = fig8a_trace[:30]
    options = SimOptions(slot=60, gpu_type="T4", max_overhead=20)
    free = simulate_with_admission(trace, n16g4, t4_profiles, options, ReportingExecutor(0))
    slow = ReportingExecutor(60)
    capped = simulate_with_admission(trace, n16g4, t4_profiles, options, slow)
    at_cap = simulate_with_admission(trace, n16g4, t4_profiles, options, ReportingExecutor(20))
    assert capped.jobs == at_cap.jobs and capped.rounds == at_cap.rounds
    assert [r.gpus_in_use for r in free.rounds] != [r.gpus_in_use for r in capped.rounds]
    assert _ends(free) != _ends(capped)
    # every round handed over exactly the jobs that hold GPUs
    assert all(all(c.gpus > 0 for c in changes) for _, changes, _ in slow.rounds)


@pytest.mark.parametrize(
    ("simulate", "end_when_paid"),
    # Themis' lease loses the 4 s; the job's work then runs out in its third lease, which
    # upstream ends at the lease's end (180), not at the second it ran out
    [(edf.simulate, 124), (themis.simulate, 180)],
    ids=["edf", "themis"],
)
def test_on_a_testbed_edf_and_themis_pay_the_measured_overhead(
    simulate: Callable[..., RunOutcome],
    end_when_paid: float,
    tmp_path: Path,
    t4_profiles: ThroughputProfiles,
) -> None:
    # upstream's testbed mode (pkusys/ElasticFlow@04a0109a ElasticFlow/scheduler/scheduler.py,
    # one_queue_edf_sim_jobs L1375, themis_sim_jobs L2491-2524) charges every re-placed job
    # the seconds it took to be stable; its simulator charges these two policies nothing
    trace = _trace(tmp_path, ONE_JOB, t4_profiles)
    options = SimOptions(slot=60, gpu_type="T4")
    testbed = ReportingExecutor(4)
    paid = simulate(trace, N1G1, t4_profiles, options, testbed)
    model = ReportingExecutor(4, measured=False)
    free = simulate(trace, N1G1, t4_profiles, options, model)
    assert free.jobs[0].end_time == 120 and free.jobs[0].met_deadline_published
    assert (free.accepted, free.declined) == (1, 0) and model.rounds == []
    assert paid.jobs[0].end_time == end_when_paid and not paid.jobs[0].met_deadline_published
    assert paid.declined == 1
    # asked once: when the job was placed (nothing changes in later rounds)
    assert testbed.rounds == [(0, [AllocationChange(job=0, gpus=1, cached=False)], False)]


# ---- import rules -----------------------------------------------------------------------------


def _imports(path: Path) -> set[str]:
    """The `reprise...` modules a file imports (absolute imports; the library uses no others)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name == "reprise" or name.startswith("reprise.")}


def _modules(package: str) -> list[Path]:
    return sorted((LIBRARY / package).rglob("*.py"))


def _policy_of(path: Path) -> str | None:
    """The policy a file belongs to: its package or module name below policies/."""
    parts = path.relative_to(LIBRARY / "policies").parts
    if len(parts) == 1:
        name = parts[0].removesuffix(".py")
        return None if name in ("__init__", "registry") else name
    return parts[0]


def _under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_sim_imports_no_policy_and_no_testbed() -> None:
    for path in _modules("sim"):
        bad = [
            m
            for m in _imports(path)
            if _under(m, "reprise.policies") or _under(m, "reprise.testbed")
        ]
        assert not bad, f"{path.relative_to(LIBRARY)} imports {bad}"


def test_a_policy_imports_no_other_policy() -> None:
    for path in _modules("policies"):
        own = _policy_of(path)
        if own is None:
            continue
        for module in _imports(path):
            if _under(module, "reprise.policies"):
                assert module.split(".")[2] == own, (
                    f"{path.relative_to(LIBRARY)} (policy {own}) imports {module}"
                )


def test_analysis_imports_only_records() -> None:
    # reprise.errors holds the exception types every stage shares, not a stage
    allowed = ("reprise.records", "reprise.analysis", "reprise.errors")
    for path in _modules("analysis"):
        bad = [m for m in _imports(path) if not any(_under(m, a) for a in allowed)]
        assert not bad, f"{path.relative_to(LIBRARY)} imports {bad}"


def test_records_import_no_stage() -> None:
    stages = ("reprise.sim", "reprise.policies", "reprise.testbed", "reprise.analysis")
    for path in _modules("records"):
        bad = [m for m in _imports(path) if any(_under(m, s) for s in stages)]
        assert not bad, f"{path.relative_to(LIBRARY)} imports {bad}"
