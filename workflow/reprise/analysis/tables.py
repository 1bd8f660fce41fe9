"""Figure tables: reproduced ratios from run records beside the published numbers.

A paper file says how its numbers are keyed: `group_by: none` (one value per policy), `trace`
(Figures 8b and 11: per trace) or `cluster` (Figure 9: per cluster size). Runs of the same group
and policy that differ only in their seed (the trace's deadline seed, or a randomised policy's
own seed) are aggregated into mean and spread. `policy_tolerance` in a paper file overrides the
figure's `tolerance` for single policies (a randomised baseline published from one run).
`group_labels` names the groups as the paper does; `notes` (reprise.analysis.notes) explain values.
"""

from __future__ import annotations

import csv
import math
import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from reprise.analysis.notes import explained, note_for, paper_notes
from reprise.records.reader import RecordedRun, read_run

TABLE_COLUMNS = (
    "group",
    "group_label",
    "policy",
    "label",
    "trace",
    "cluster",
    "status",
    "seeds",
    "ratio_published_rule",
    "ratio_std",
    "published",
    "delta",
    "within_tolerance",
    "accepted",
    "total",
    "ratio_completion",
    "completion_minus_published_rule",
    "late_but_counted_met",
    "best_effort_mean_jct",
    "note",
    "explained",
)


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.{digits}f}"


def _group_of(run: RecordedRun, group_by: str) -> str:
    if group_by == "trace":
        return run.trace
    if group_by == "cluster":
        return run.cluster
    return ""


def _published(paper: Mapping[str, Any], group: str, policy: str) -> float | None:
    table = paper["published"]
    if paper.get("group_by", "none") != "none":
        table = table.get(group, {})
    value = table.get(policy)
    return None if value is None else float(value)


def _mean(values: Sequence[float]) -> float | None:
    clean = [v for v in values if not math.isnan(v)]
    return statistics.fmean(clean) if clean else None


def figure_rows(
    paper: Mapping[str, Any], run_dirs: Sequence[Path], pending: Sequence[str]
) -> list[dict[str, str]]:
    """One row per (group, policy) plus one "not run" row per pending policy and group."""
    labels: Mapping[str, str] = paper["labels"]
    tolerance = float(paper.get("tolerance", 0.0))
    policy_tolerance: Mapping[str, float] = paper.get("policy_tolerance", {})
    group_by = str(paper.get("group_by", "none"))
    order = {p: i for i, p in enumerate(paper["order"])}
    group_labels: Mapping[str, str] = paper.get("group_labels", {})
    notes = paper_notes(paper)
    runs: dict[tuple[str, str], list[RecordedRun]] = defaultdict(list)
    for rundir in run_dirs:
        run = read_run(rundir)
        runs[(_group_of(run, group_by), run.policy)].append(run)
    groups = sorted({g for g, _ in runs}) or [""]
    rows: list[tuple[str, int, dict[str, str]]] = []
    for (group, policy), recorded in runs.items():
        metrics = [r.metrics for r in recorded]
        ratios = [float(m["ratio_published_rule"]) for m in metrics]
        ratio = statistics.fmean(ratios)
        completion = _mean([float(m["ratio_completion"]) for m in metrics])
        jct = _mean([float(m["best_effort_mean_jct"] or math.nan) for m in metrics])
        pub = _published(paper, group, policy)
        delta = None if pub is None else ratio - pub
        traces = sorted({r.trace for r in recorded})
        seeds = sorted(r.seed for r in recorded if r.seed is not None)
        allowed = float(policy_tolerance.get(policy, tolerance))
        row = {
            "group": group,
            "group_label": group_labels.get(group, group),
            "policy": policy,
            "label": labels.get(policy, policy),
            "trace": ";".join(traces),
            "cluster": ";".join(sorted({r.cluster for r in recorded})),
            "status": "ok",
            "seeds": ";".join(map(str, seeds)),
            "ratio_published_rule": _fmt(ratio),
            "ratio_std": _fmt(statistics.stdev(ratios)) if len(ratios) > 1 else "",
            "published": "" if pub is None else f"{pub:g}",
            "delta": _fmt(delta),
            "within_tolerance": "" if delta is None else str(abs(delta) <= allowed + 1e-12).lower(),
            "accepted": str(sum(m["accepted"] for m in metrics)),
            "total": str(sum(m["accepted"] + m["declined"] for m in metrics)),
            "ratio_completion": _fmt(completion),
            "completion_minus_published_rule": _fmt(
                None if completion is None else completion - ratio
            ),
            "late_but_counted_met": str(sum(m["late_but_counted_met"] for m in metrics)),
            "best_effort_mean_jct": _fmt(jct, 1),
        }
        row["note"] = note_for(notes, row)
        row["explained"] = explained(notes, row)
        rows.append((group, order.get(policy, len(order)), row))
    for group in groups:
        for policy in pending:
            pub = _published(paper, group, policy)
            row = dict.fromkeys(TABLE_COLUMNS, "")
            row.update(
                group=group,
                group_label=group_labels.get(group, group),
                policy=policy,
                label=labels.get(policy, policy),
                status="not run",
                published="" if pub is None else f"{pub:g}",
            )
            rows.append((group, order.get(policy, len(order)), row))
    group_order = {g: i for i, g in enumerate(paper.get("groups", groups))}
    rows.sort(key=lambda item: (group_order.get(item[0], len(group_order)), item[0], item[1]))
    return [row for _, _, row in rows]


def write_table(
    rows: Sequence[Mapping[str, str]], path: Path, extra_columns: Sequence[str] = ()
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        columns = [*extra_columns, *TABLE_COLUMNS]
        writer = csv.DictWriter(fh, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def read_table(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))
