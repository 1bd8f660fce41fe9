"""Pollux on a real testbed, as a table: per scale, the testbed deadline ratio (Pollux's policy on
our controller with AdaptDL jobs) beside the simulated Pollux on the same trace and cluster, and
the published Figure 6(a) bar where the configuration is the paper's. The two sides train
different work on the same deadline factors, so each side's completion times over its jobs'
durations stand beside the ratios, with the testbed's pace and a note saying what each trains."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from reprise.errors import DataError
from reprise.records.reader import read_summary

COLUMNS = (
    "scale", "jobs", "testbed_cluster", "testbed_ratio", "testbed_met", "resized_up",
    "resized_down", "fault_restarts", "incarnations", "testbed_wall_s", "testbed_jct_over_duration",
    "testbed_pace", "testbed_samples_per_s", "simulated_cluster", "simulated_resized_up",
    "simulated_resized_down", "simulated_ratio", "simulated_jct_over_duration",
    "published_ratio", "note",
)  # fmt: skip
SAME_TRACE = (
    "the two sides train different work: a testbed job trains a fixed number of samples of the "
    "model zoo's tiny model on CPU replicas, its duration that work at testbed_samples_per_s "
    "(measured on the run's nodes before the trace was made, or configured) on the replicas it "
    "asks for (a compressed clock, so each restart's start-up weighs more than at the paper's "
    "scale), its replicas sharing the nodes' CPU cores (a grown job gains compute only from idle "
    "cores); a simulated job is its model's Pollux application trained to its target on "
    "upstream's measured GPU ground truth (a GPU per replica), its duration the simulated time "
    "alone on its GPUs, the arrivals stretched by the median ratio of the two durations. "
    "Shared: the jobs' order, deadline factors (deadline = factor x duration) and the cluster's "
    "shape. *_jct_over_duration: median over the jobs of completion time over duration (a job "
    "meets its deadline when this is at most its factor, 0.5-1.5 in this trace); testbed_pace: "
    "median replica-seconds of work at that rate over replica-seconds held (1: the replicas "
    "trained at the rate the durations assume, restarts cost nothing); *_resized_*: Pollux's "
    "re-sizes of a running job on each side"
)
"""The note of a scale run on both sides: what each side's ratio measures."""


def read_paper(path: Path) -> dict[str, Any]:
    """config/paper/pollux_testbed.yaml: the published ratio, its trace and cluster, its source."""
    try:
        doc: dict[str, Any] = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise DataError(f"{path}: unreadable paper file ({exc})") from None
    for key in ("published", "cluster", "jobs", "source"):
        if not isinstance(doc, dict) or key not in doc:
            raise DataError(f"{path}: missing key {key!r}")
    return doc


def _testbed(summary: Mapping[str, Any]) -> dict[str, Any]:
    monitor = summary.get("monitor", {})
    resized = summary.get("reallocations", {})
    return {
        "testbed_cluster": summary["run"]["cluster"],
        "testbed_ratio": summary["deadline_ratio"],
        "testbed_met": f"{monitor.get('met', 0)}/{monitor.get('jobs', 0)}",
        "resized_up": resized.get("up", 0),
        "resized_down": resized.get("down", 0),
        "fault_restarts": summary.get("fault_restarts", 0),
        "incarnations": summary.get("incarnations", 0),
        "testbed_wall_s": summary.get("wall_s"),
        "testbed_jct_over_duration": _median(summary.get("jct_over_duration")),
        "testbed_pace": _median(summary.get("pace")),
        "testbed_samples_per_s": _rates(summary.get("samples_per_s")),
    }


def _rates(rates: Mapping[str, Any] | None) -> str:
    """The rates the testbed trace's work was made with, and their source ("" in a record
    written before they were kept)."""
    if not rates:
        return ""
    by_model = ", ".join(f"{m} {r:g}" for m, r in sorted(rates["rates"].items()))
    return f"{rates['source']}: {by_model}"


def _median(per_job: Mapping[str, float | None] | None) -> float:
    """The median of a run record's per-job values over the finished jobs (NaN: none, or a
    record written before the value was kept)."""
    values = [v for v in (per_job or {}).values() if v is not None]
    return round(statistics.median(values), 2) if values else math.nan


def _simulated(summary: Mapping[str, Any]) -> tuple[float, str]:
    if summary.get("not_simulated"):
        return math.nan, f"not simulated: {summary['not_simulated']}"
    return float(summary["metrics"]["ratio_published_rule"]), ""


def pollux_table(
    testbed: Mapping[str, Path], simulated: Mapping[str, Path], paper: Path
) -> pd.DataFrame:
    """One row per scale in `simulated` (run folders by scale); `testbed` holds the scales run on
    nodes here; the paper's value goes on the row of the scale named `paper`."""
    published = read_paper(paper)
    rows = []
    for scale, rundir in simulated.items():
        sim = read_summary(rundir)
        ratio, note = _simulated(sim)
        row: dict[str, Any] = {
            "scale": scale,
            "jobs": sim.get("jobs", sim["metrics"].get("slo_jobs")),
            "simulated_cluster": sim["run"]["cluster"],
            "simulated_ratio": ratio,
            "simulated_jct_over_duration": _median(sim.get("jct_over_duration")),
            "simulated_resized_up": sim.get("reallocations", {}).get("up"),
            "simulated_resized_down": sim.get("reallocations", {}).get("down"),
            "published_ratio": published["published"] if scale == "paper" else math.nan,
        }
        if scale in testbed:
            row.update(_testbed(read_summary(testbed[scale])))
            note = "; ".join(n for n in (note, SAME_TRACE) if n)
        elif scale == "paper":
            note = "; ".join(
                n
                for n in (
                    note,
                    f"testbed: {published['cluster']} GPUs on Kubernetes (AdaptDLJob manifests "
                    "are produced and validated offline; not run on this machine)",
                )
                if n
            )
        row["note"] = note
        rows.append(row)
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    counts = ["jobs", "resized_up", "resized_down", "fault_restarts", "incarnations"]
    counts += ["simulated_resized_up", "simulated_resized_down"]
    return table.astype({c: "Int64" for c in counts})
