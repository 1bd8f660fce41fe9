"""Figure tables: reproduced ratios from run records beside the published numbers."""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from reprise.sim.records import read_summary

TABLE_COLUMNS = (
    "policy",
    "label",
    "trace",
    "cluster",
    "status",
    "ratio_published_rule",
    "published",
    "delta",
    "within_tolerance",
    "accepted",
    "total",
    "ratio_completion",
    "completion_minus_published_rule",
    "late_but_counted_met",
)


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.{digits}f}"


def figure_rows(
    paper: Mapping[str, Any], run_dirs: Sequence[Path], pending: Sequence[str]
) -> list[dict[str, str]]:
    """One row per (policy, trace, cluster) run plus one "not run" row per pending policy."""
    published: Mapping[str, float] = paper["published"]
    labels: Mapping[str, str] = paper["labels"]
    tolerance = float(paper.get("tolerance", 0.0))
    order = {p: i for i, p in enumerate(paper["order"])}
    rows: list[tuple[int, dict[str, str]]] = []
    for rundir in run_dirs:
        summary = read_summary(rundir)
        metrics = summary["metrics"]
        policy = summary["policy"]
        ratio = float(metrics["ratio_published_rule"])
        pub = published.get(policy)
        delta = None if pub is None else ratio - float(pub)
        completion = float(metrics["ratio_completion"])
        rows.append(
            (
                order.get(policy, len(order)),
                {
                    "policy": policy,
                    "label": labels.get(policy, policy),
                    "trace": summary.get("trace", ""),
                    "cluster": summary["cluster"]["name"],
                    "status": "ok",
                    "ratio_published_rule": _fmt(ratio),
                    "published": "" if pub is None else str(pub),
                    "delta": _fmt(delta),
                    "within_tolerance": ""
                    if delta is None
                    else str(abs(delta) <= tolerance + 1e-12).lower(),
                    "accepted": str(metrics["accepted"]),
                    "total": str(metrics["accepted"] + metrics["declined"]),
                    "ratio_completion": _fmt(completion),
                    "completion_minus_published_rule": _fmt(completion - ratio),
                    "late_but_counted_met": str(metrics["late_but_counted_met"]),
                },
            )
        )
    for policy in pending:
        pub = published.get(policy)
        row = dict.fromkeys(TABLE_COLUMNS, "")
        row.update(
            policy=policy,
            label=labels.get(policy, policy),
            status="not run",
            published="" if pub is None else str(pub),
        )
        rows.append((order.get(policy, len(order)), row))
    rows.sort(key=lambda item: item[0])
    return [row for _, row in rows]


def write_table(rows: Sequence[Mapping[str, str]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=TABLE_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def read_table(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))
