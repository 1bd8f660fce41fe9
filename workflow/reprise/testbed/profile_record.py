"""A throughput-profiling run written as a run record (jobs.csv, events.csv, summary.json) plus
upstream-format profile CSVs and a tidy measurements table."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from reprise.atomic import write_text_atomic
from reprise.records.writer import EVENT_COLUMNS, JOB_COLUMNS
from reprise.testbed.profiling import Measurement, upstream_tables

MEASUREMENT_COLUMNS = (
    "model",
    "size",
    "global_batch",
    "workers",
    "iterations_per_s",
    "samples_per_s",
    "seconds",
    "wall_s",
    "started_s",
    "nodes",
    "backend",
    "device",
)


def _csv(rows: Sequence[Sequence[object]]) -> str:
    from io import StringIO

    out = StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerows(rows)
    return out.getvalue()


def job_rows(results: Sequence[Measurement]) -> list[tuple[object, ...]]:
    """Each measurement is a job of the run: submitted and started together, never late."""
    rows: list[tuple[object, ...]] = []
    for i, m in enumerate(results):
        end = round(m.started_s + m.wall_s, 3)
        rows.append(
            (
                i,
                f"{m.model}-b{m.global_batch}-w{m.workers}",
                m.model,
                m.global_batch,
                m.workers,
                m.started_s,
                "",
                1,
                1,
                m.started_s,
                end,
                m.workers,
                m.wall_s,
                "",
                "",
                0,
            )
        )
    return rows


def event_rows(results: Sequence[Measurement]) -> list[tuple[object, ...]]:
    """Workers in use over the run (one job at a time); efficiency is not defined here."""
    rows: list[tuple[object, ...]] = []
    for m in results:
        rows.append((m.started_s, m.workers, "", 1, 0))
        rows.append((round(m.started_s + m.wall_s, 3), 0, "", 0, 0))
    return rows


def write_profile_record(
    outdir: Path,
    results: Sequence[Measurement],
    per_model_s: Mapping[str, float],
    meta: Mapping[str, Any],
) -> dict[str, Any]:
    """Write the record; summary.json goes last, so its presence means the record is whole."""
    tables = upstream_tables(results)
    for model, text in tables.items():
        write_text_atomic(outdir / "profiles" / f"{model}.csv", text)
    measured = [MEASUREMENT_COLUMNS]
    for m in results:
        row = asdict(m)
        row["nodes"] = " ".join(m.nodes)
        measured.append(tuple(row[c] for c in MEASUREMENT_COLUMNS))
    write_text_atomic(outdir / "measurements.csv", _csv(measured))
    write_text_atomic(outdir / "jobs.csv", _csv([JOB_COLUMNS, *job_rows(results)]))
    write_text_atomic(outdir / "events.csv", _csv([EVENT_COLUMNS, *event_rows(results)]))
    summary = {
        **meta,
        "kind": "testbed",
        "metrics": {
            "measurements": len(results),
            "models": sorted(tables),
            "profiling_seconds_per_model": dict(per_model_s),
            "profiling_seconds_total": round(sum(per_model_s.values()), 3),
        },
    }
    write_text_atomic(outdir / "summary.json", json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary
