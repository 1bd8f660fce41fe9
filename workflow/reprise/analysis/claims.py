"""Machine-checked claims written next to the figures (results/claims/*.json)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

METRIC_GAP = 0.01
"""Largest accepted difference between the as-published and the completion-based ratio."""


def metric_agreement_claim(experiment: str, rows: Sequence[Mapping[str, str]]) -> dict[str, Any]:
    """Flag every run whose two deadline ratios differ by more than METRIC_GAP."""
    flagged = []
    checked = 0
    for row in rows:
        if row["status"] != "ok":
            continue
        checked += 1
        published = float(row["ratio_published_rule"])
        completion = float(row["ratio_completion"])
        if abs(published - completion) > METRIC_GAP:
            flagged.append(
                {
                    "policy": row["policy"],
                    "label": row["label"],
                    "trace": row["trace"],
                    "cluster": row["cluster"],
                    "ratio_published_rule": published,
                    "ratio_completion": completion,
                    "late_but_counted_met": int(row["late_but_counted_met"]),
                    "explanation": (
                        f"{row['late_but_counted_met']} job(s) finish after their deadline but are "
                        "counted as met by the policy's own rule"
                    ),
                }
            )
    return {
        "experiment": experiment,
        "claim": (
            "each policy's as-published deadline ratio agrees with the completion-based ratio "
            f"within {METRIC_GAP}"
        ),
        "holds": not flagged,
        "runs_checked": checked,
        "flagged": flagged,
    }


def write_claim(claim: Mapping[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(claim, indent=2, sort_keys=True) + "\n")
