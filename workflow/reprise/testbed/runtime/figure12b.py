"""Figure 12(b): how long scaling a job up or down, or moving it to another node, keeps it from
training, measured with the elastic runtime on a provisioned cluster.

Each measurement starts one job at the case's first size, lets it train, re-places it at the
second size (or, for migration, on other nodes) and records the seconds until it reports
"stable" again; then the job stops. Cases that do not fit the cluster's slots are recorded as
skipped, with the reason, rather than scaled down.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from reprise.atomic import write_text_atomic
from reprise.errors import ConfigError, TestbedError
from reprise.testbed.frame import provisioned, say
from reprise.testbed.nodes import Node
from reprise.testbed.runtime.client import ElasticRuntime, JobSpec, Placement, RuntimeSettings

PHASES = ("queued", "rendezvous", "build", "restore", "ddp_and_data", "first_steps")
"""Where rank 0's restart went (ElasticRuntime's Restart.phases)."""
MEASUREMENT_COLUMNS = (
    "model",
    "case",
    "repetition",
    "kind",
    "world_from",
    "world_to",
    "slots_from",
    "slots_to",
    "measured_s",
    "charged_s",
    "stop_s",
    "checkpoint_iteration",
    "checkpoint_bytes",
    "fetch_s",
    "fetch_bytes",
    "start_s",
    "stable",
    "attempts",
    *(f"{p}_s" for p in PHASES),
    "warning",
)


@dataclass(frozen=True)
class Case:
    """Scale a job from `before` to `after` ranks; `migrate`: on nodes it did not use."""

    name: str
    before: int
    after: int
    migrate: bool = False


@dataclass(frozen=True)
class Figure12bSettings:
    models: tuple[str, ...]
    cases: tuple[Case, ...]
    size: str = "tiny"
    global_batch: int = 16
    repetitions: int = 3
    settle_s: float = 2.0
    threads: int = 1
    seed: int = 0
    warmup: bool = True
    """One unrecorded pass over the cases first (repetition -1 in measurements.csv): the first
    job a slot's trainer runs pays one-time costs (lazy imports, its first process group)."""
    runtime: RuntimeSettings = field(default_factory=RuntimeSettings)


def settings_from_config(entry: Mapping[str, Any]) -> Figure12bSettings:
    """The `testbed.figure12b` block of config/config.yaml (schema-checked)."""
    cases = tuple(
        Case(str(c["case"]), int(c["from"]), int(c["to"]), bool(c.get("migrate", False)))
        for c in entry["cases"]
    )
    for c in cases:
        if c.before < 1 or c.after < 1:
            raise ConfigError(f"testbed.figure12b case {c.name}: sizes must be at least 1")
        if c.migrate and c.before != c.after:
            raise ConfigError(
                f"testbed.figure12b case {c.name}: a migration keeps the job's size "
                f"(from {c.before}, to {c.after})"
            )
    rt = dict(entry.get("runtime", {}))
    settings = Figure12bSettings(
        models=tuple(entry["models"]),
        cases=cases,
        size=str(entry.get("size", "tiny")),
        global_batch=int(entry.get("global_batch", 16)),
        repetitions=int(entry.get("repetitions", 3)),
        settle_s=float(entry.get("settle_s", 2.0)),
        threads=int(entry.get("threads", 1)),
        seed=int(entry.get("seed", 0)),
        warmup=bool(entry.get("warmup", True)),
        runtime=RuntimeSettings(**rt),
    )
    for c in cases:
        for n in (c.before, c.after):
            if settings.global_batch % n:
                raise ConfigError(
                    f"testbed.figure12b: global_batch {settings.global_batch} does not split "
                    f"over {n} ranks (case {c.name}); use a multiple of every case size"
                )
    return settings


def _pack(nodes: Sequence[Node], count: int) -> Placement | None:
    """Fill the nodes' slots in order (upstream's consolidated placement); None if too few."""
    slots = [(n.name, s) for n in nodes for s in range(n.slots)]
    return Placement(tuple(slots[:count])) if count <= len(slots) else None


def placements(case: Case, nodes: Sequence[Node]) -> tuple[Placement, Placement] | str:
    """The case's two placements on these nodes, or why it does not fit."""
    capacity = sum(n.slots for n in nodes)
    if not case.migrate:
        before, after = _pack(nodes, case.before), _pack(nodes, case.after)
        if before is None or after is None:
            need = max(case.before, case.after)
            return f"needs {need} slots; the cluster has {capacity}"
        return before, after
    before = _pack(nodes, case.before)
    if before is None:
        return f"needs {case.before} slots; the cluster has {capacity}"
    rest = [n for n in nodes if n.name not in before.nodes]
    after = _pack(rest, case.after)
    if after is None:
        free = sum(n.slots for n in rest)
        return (
            f"moving {case.after} ranks to other nodes needs {case.after} slots on nodes the "
            f"job does not use; the cluster has {free} there"
        )
    return before, after


def measure(
    rt: ElasticRuntime,
    settings: Figure12bSettings,
    model: str,
    case: Case,
    repetition: int,
    where: tuple[Placement, Placement],
) -> dict[str, Any]:
    """Start, let train, re-place (the measured step), stop; one row of measurements.csv."""
    job = f"{model}-{case.name.replace('>', '').replace('-', 'to')}-r{repetition}"
    rt.add_job(
        JobSpec(
            job,
            model,
            settings.global_batch,
            size=settings.size,
            seed=settings.seed,
            threads=settings.threads,
        )
    )
    before, after = where
    rt.apply({job: before})
    start = rt.restarts[-1]
    if not start.stable:
        raise TestbedError(f"job {job} never trained at its first placement: {start.warning}")
    time.sleep(settings.settle_s)
    rt.apply({job: after})
    change = rt.restarts[-1]
    rt.apply({job: None})
    row = {k: v for k, v in asdict(change).items() if k in MEASUREMENT_COLUMNS}
    row.update(model=model, case=case.name, repetition=repetition, start_s=start.measured_s)
    row.update({f"{p}_s": change.phases.get(p) for p in PHASES})
    return row


def csv_text(columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in columns})
    return out.getvalue()


def run_figure12b(
    inventory_path: Path,
    state_dir: Path,
    outdir: Path,
    settings: Figure12bSettings,
    image_record: Path | None = None,
    progress: Callable[[str], None] = say,
) -> dict[str, Any]:
    """Provision, measure every (model, case, repetition) that fits, tear down, write the
    record: measurements.csv, events.csv (every runtime report), summary.json."""
    rows: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    with provisioned(inventory_path, state_dir, outdir / "run", image_record, progress) as (
        run,
        frame,
    ):
        fits: dict[str, tuple[Placement, Placement]] = {}
        for case in settings.cases:
            where = placements(case, run.nodes)
            if isinstance(where, str):
                skipped[case.name] = where
                progress(f"case {case.name} skipped: {where}")
            else:
                fits[case.name] = where
        with ElasticRuntime(run, settings.runtime, progress) as rt:
            total = settings.repetitions * len(settings.models) * len(fits)
            if settings.warmup:
                for case in settings.cases:
                    if case.name in fits:
                        model = settings.models[0]
                        rows.append(measure(rt, settings, model, case, -1, fits[case.name]))
                        progress(f"warm-up {case.name}: {rows[-1]['measured_s']:.2f} s")
            for rep in range(settings.repetitions):
                for model in settings.models:
                    for case in settings.cases:
                        if case.name not in fits:
                            continue
                        row = measure(rt, settings, model, case, rep, fits[case.name])
                        rows.append(row)
                        done = sum(r["repetition"] >= 0 for r in rows)
                        progress(
                            f"[{done}/{total}] {model} {case.name} rep {rep}: "
                            f"{row['measured_s']:.2f} s to stable"
                        )
            events = rt.events_rows()
            warnings = list(rt.warnings)
    outdir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(outdir / "measurements.csv", csv_text(MEASUREMENT_COLUMNS, rows))
    event_columns = list(events[0]) if events else ["kind"]
    write_text_atomic(outdir / "events.csv", csv_text(event_columns, events))
    summary = {
        **frame.meta("figure12b"),
        "settings": {
            "models": list(settings.models),
            "cases": [asdict(c) for c in settings.cases],
            "size": settings.size,
            "global_batch": settings.global_batch,
            "repetitions": settings.repetitions,
            "settle_s": settings.settle_s,
            "threads": settings.threads,
            "warmup": settings.warmup,
            "runtime": asdict(settings.runtime),
        },
        "skipped": skipped,
        "warnings": warnings,
        "metrics": {
            "measurements": sum(r["repetition"] >= 0 for r in rows),
            "not_stable": sum(not r["stable"] for r in rows if r["repetition"] >= 0),
        },
    }
    write_text_atomic(outdir / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


TABLE_COLUMNS = (
    "model",
    "case",
    "case_label",
    "measured_n",
    "measured_mean_s",
    "measured_min_s",
    "measured_max_s",
    "charged_mean_s",
    "stop_mean_s",
    "fetch_mean_bytes",
    "published_s",
    "measured_over_published",
    "cluster",
    "note",
)


def load_paper(path: Path) -> dict[str, Any]:
    import yaml

    paper = yaml.safe_load(path.read_text())
    for key in ("published", "cases", "models", "source"):
        if key not in paper:
            raise ConfigError(f"{path}: no {key!r} (published Figure 12(b) values and source)")
    return dict(paper)


def overhead_table(run_dir: Path, paper_path: Path) -> list[dict[str, Any]]:
    """One row per (model, case): the measured seconds to "stable" (mean, min, max over the
    repetitions) beside the published seconds; a case the cluster could not hold says why."""
    import pandas as pd

    paper = load_paper(paper_path)
    summary = json.loads((run_dir / "summary.json").read_text())
    frame = pd.read_csv(run_dir / "measurements.csv")
    frame = frame[frame["repetition"] >= 0]  # the warm-up pass is not a measurement
    skipped: dict[str, str] = summary.get("skipped", {})
    notes = {m: n["text"] for n in paper.get("notes", []) for m in n.get("models", [])}
    run_models = list(summary["settings"]["models"])
    run_cases = [c["name"] for c in summary["settings"]["cases"]]
    models = list(dict.fromkeys([*run_models, *paper["models"]]))
    cases = list(dict.fromkeys([*run_cases, *paper["cases"]]))
    rows: list[dict[str, Any]] = []
    for model in models:
        for case in cases:
            mine = frame[(frame["model"] == model) & (frame["case"] == case)]
            published = paper["published"].get(model, {}).get(case)
            row: dict[str, Any] = {
                "model": model,
                "case": case,
                "case_label": paper.get("case_labels", {}).get(case, case),
                "measured_n": len(mine),
                "published_s": published,
                "cluster": summary["cluster"],
            }
            why = [notes[model]] if model in notes else []
            if len(mine):
                seconds = mine["measured_s"].astype(float)
                row.update(
                    measured_mean_s=round(float(seconds.mean()), 3),
                    measured_min_s=round(float(seconds.min()), 3),
                    measured_max_s=round(float(seconds.max()), 3),
                    charged_mean_s=round(float(mine["charged_s"].astype(float).mean()), 3),
                    stop_mean_s=round(float(mine["stop_s"].astype(float).mean()), 3),
                    fetch_mean_bytes=round(float(mine["fetch_bytes"].astype(float).mean())),
                )
                if published:
                    row["measured_over_published"] = round(row["measured_mean_s"] / published, 2)
                unstable = int((~mine["stable"].astype(bool)).sum())
                if unstable:
                    why.append(f"{unstable} repetition(s) not stable within the slot")
            elif case in skipped:
                why.append(f"not measured: {skipped[case]}")
            elif model not in run_models or case not in run_cases:
                why.append("not measured: not in this run's configuration")
            row["note"] = "; ".join(why)
            rows.append(row)
    return rows


def write_table(rows: Sequence[Mapping[str, Any]], out: Path) -> None:
    write_text_atomic(out, csv_text(TABLE_COLUMNS, rows))
