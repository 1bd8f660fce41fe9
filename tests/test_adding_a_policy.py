"""docs/adding-a-policy.md is enough to add a policy: its example, taken from the page as it is,
registered with one entry, runs through the workflow's simulation driver into a run record."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

from reprise.data.clusters import ClusterSpec
from reprise.data.profiles import ThroughputProfiles
from reprise.data.traces import TraceJob
from reprise.policies import get_policy
from reprise.policies.registry import REGISTRY, PolicyEntry, policy_labels
from reprise.records.reader import read_run
from reprise.sim.options import SimOptions
from reprise.simulate import run_simulation

REPO = Path(__file__).resolve().parents[1]
GUIDE = REPO / "docs" / "adding-a-policy.md"
ART = "ElasticFlow-artifact/ElasticFlow"


@pytest.fixture
def fifo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The guide's example module, importable, with the registry entry the guide shows."""
    (code,) = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.S)
    (tmp_path / "fifo_example.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "fifo_example", raising=False)
    entry = PolicyEntry("fifo_example", "simulate", "FIFO", "#556b2f")
    monkeypatch.setitem(REGISTRY, "fifo", entry)
    # the example keeps the import rule: engine, data, records, errors; no policy
    imported = {
        node.module
        for node in ast.walk(ast.parse(code))
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert not any(m.startswith("reprise.policies") for m in imported)
    return "fifo"


def test_the_guides_example_runs_into_a_run_record(fifo: str, mirror: Path, tmp_path: Path) -> None:
    summary = run_simulation(
        trace=mirror / ART / "traces_for_ElasticFlow/elasticVpollux_e.csv",
        cluster_spec=mirror / ART / "scheduler/cluster_specs/n16g4.csv",
        profile_dir=mirror / ART / "scheduler/throughputs_T4",
        policy=fifo,
        options=SimOptions(slot=60, gpu_type="T4"),
        outdir=tmp_path / "run",
        experiment="example",
        trace_name="elasticVpollux_e",
    )
    metrics = summary["metrics"]
    assert metrics["completed_jobs"] == 195
    assert metrics["accepted"] + metrics["declined"] == metrics["slo_jobs"] == 195
    run = read_run(tmp_path / "run")
    assert (run.kind, run.policy, run.trace, run.cluster) == (
        "sim",
        "fifo",
        "elasticVpollux_e",
        "n16g4",
    )
    assert policy_labels()["fifo"] == "FIFO"


def test_the_guides_example_serves_jobs_in_arrival_order(
    fifo: str, fig8a_trace: list[TraceJob], n16g4: ClusterSpec, t4_profiles: ThroughputProfiles
) -> None:
    options = SimOptions(slot=60, gpu_type="T4")
    result = get_policy(fifo)(fig8a_trace, n16g4, t4_profiles, options)
    order = sorted(fig8a_trace, key=lambda t: (t.submit_time, t.idx))
    starts = [result.jobs[t.idx].start_time for t in order]
    assert all(s is not None for s in starts)
    assert starts == sorted(starts)  # nobody overtakes: first in, first out
    assert max(r.gpus_in_use for r in result.rounds) <= 64
