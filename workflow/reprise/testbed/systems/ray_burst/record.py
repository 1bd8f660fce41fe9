"""A Ray burst run's record: jobs.csv (one row per task), events.csv (transfers), summary.json."""

from __future__ import annotations

import csv
import json
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

JOB_COLUMNS = (
    "input", "role", "node_id", "host", "start", "finish", "transfer_bytes", "transfer_s",
    "compute_s",
)  # fmt: skip
EVENT_COLUMNS = ("input", "role", "node_id", "start", "finish", "bytes", "seconds")


def _rows(
    items: Sequence[Mapping[str, Any]], columns: Sequence[str], t0: float
) -> list[dict[str, Any]]:
    rows = []
    for item in items:
        row = {c: item.get(c, "") for c in columns}
        row["start"] = round(float(item["started"]) - t0, 4)
        row["finish"] = round(float(item["ended"]) - t0, 4)
        rows.append(row)
    return sorted(rows, key=lambda r: (r["start"], r["input"]))


def _write_csv(path: Path, columns: Sequence[str], rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)


def write_record(
    outdir: Path, result: Mapping[str, Any], meta: Mapping[str, Any]
) -> dict[str, Any]:
    """Write the three files and return the summary; a transfer done by a stage task counts
    toward its input's task (the data-aware scheduler copies before the task starts)."""
    outdir.mkdir(parents=True, exist_ok=True)
    t0 = float(result["started"])
    staged = {s["input"]: s for s in result.get("stages", [])}
    tasks = []
    for task in result["tasks"]:
        task = dict(task)
        stage = staged.get(task["input"])
        if stage is not None and int(stage.get("bytes", 0)) > 0:
            task["transfer_bytes"] = int(stage["bytes"])
            task["transfer_s"] = float(stage["seconds"])
        tasks.append(task)
    jobs = _rows(tasks, JOB_COLUMNS, t0)
    events = [
        {**row, "bytes": s.get("bytes", 0), "seconds": round(float(s.get("seconds", 0)), 4)}
        for s, row in zip(
            result.get("stages", []),
            _rows(result.get("stages", []), EVENT_COLUMNS, t0),
            strict=True,
        )
    ]
    _write_csv(outdir / "jobs.csv", JOB_COLUMNS, jobs)
    _write_csv(outdir / "events.csv", EVENT_COLUMNS, events)
    cloud = [t for t in tasks if t.get("role") == "cloud"]
    metrics = {
        "total_s": round(float(result["total_s"]), 4),
        "tasks": len(tasks),
        "tasks_on_cloud": len(cloud),
        "inputs_to_cloud": len(cloud),
        "bytes_to_cloud": sum(int(t.get("transfer_bytes", 0)) for t in cloud),
        "transfer_s": round(sum(float(t.get("transfer_s", 0)) for t in tasks), 4),
        "compute_s": round(sum(float(t.get("compute_s", 0)) for t in tasks), 4),
        "requeued": len(result.get("requeued", [])),
    }
    summary = {
        **meta,
        "metrics": metrics,
        "controller": {"python": platform.python_version(), "host": platform.node()},
    }
    (outdir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary
