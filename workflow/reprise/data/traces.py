"""ElasticFlow-format job traces: loading with validation (both column spellings accepted)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from reprise.data.profiles import ThroughputProfiles
from reprise.errors import TraceError

INT64_MAX = 2**63 - 1
"""Deadline given to best-effort jobs (upstream uses sys.maxsize)."""

# canonical name -> accepted spellings, first one preferred
_COLUMNS: dict[str, tuple[str, ...]] = {
    "job_id": ("job_id",),
    "submit_time": ("submit_time", "submission_time"),
    "iteration": ("iteration", "num_iteration"),
    "model_name": ("model_name",),
    "ddl": ("ddl", "deadline"),
    "batch_size": ("batch_size",),
    "num_gpu": ("num_gpu",),
    "duration": ("duration",),
}
_INT_COLUMNS = ("submit_time", "iteration", "ddl", "batch_size", "num_gpu", "duration")


@dataclass(frozen=True, slots=True)
class TraceJob:
    """One job of a trace. `idx` is the row index in file order (upstream's job_idx)."""

    idx: int
    job_id: str
    submit_time: int
    iterations: int
    model: str
    deadline: int
    """Absolute deadline on the trace clock; INT64_MAX for best-effort jobs."""
    batch_size: int
    num_gpu: int
    duration: int
    best_effort: bool
    raw_deadline: int | None = None
    """The `ddl` cell as written, kept for best-effort jobs too (Chronus' converter reads it)."""

    @property
    def relative_deadline(self) -> int:
        return self.deadline - self.submit_time


def _resolve_columns(path: Path, fieldnames: list[str]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for canon, spellings in _COLUMNS.items():
        found = [s for s in spellings if s in fieldnames]
        if not found:
            raise TraceError(
                f"{path}: missing column {canon!r} (accepted spellings: {', '.join(spellings)}); "
                f"header is {fieldnames}"
            )
        mapping[canon] = found[0]
    return mapping


def load_trace(path: Path | str, profiles: ThroughputProfiles | None = None) -> list[TraceJob]:
    """Read a trace in file order. With `profiles`, unknown (model, batch) pairs are rejected."""
    path = Path(path)
    delimiter = " " if path.suffix == ".txt" else ","
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh, delimiter=delimiter)
        if not reader.fieldnames:
            raise TraceError(f"{path}: empty file, expected a header line")
        mapping = _resolve_columns(path, list(reader.fieldnames))
        has_be = "best_effort" in reader.fieldnames
        jobs: list[TraceJob] = []
        for idx, row in enumerate(reader):
            line = idx + 2
            ints: dict[str, int] = {}
            for canon in _INT_COLUMNS:
                col = mapping[canon]
                text = (row.get(col) or "").strip()
                if not text.lstrip("-").isdigit():
                    raise TraceError(
                        f"{path}: row {line}, column {col!r}: {text!r} is not an integer"
                    )
                ints[canon] = int(text)
            for canon in ("submit_time", "iteration", "duration"):
                if ints[canon] < 0:
                    raise TraceError(
                        f"{path}: row {line}, column {mapping[canon]!r}: "
                        f"negative value {ints[canon]}"
                    )
            for canon in ("batch_size", "num_gpu"):
                if ints[canon] <= 0:
                    raise TraceError(
                        f"{path}: row {line}, column {mapping[canon]!r}: must be positive, "
                        f"got {ints[canon]}"
                    )
            best_effort = False
            if has_be:
                text = (row.get("best_effort") or "").strip()
                if text not in ("0", "1"):
                    raise TraceError(
                        f"{path}: row {line}, column 'best_effort': {text!r} must be 0 or 1"
                    )
                best_effort = text == "1"
            deadline = INT64_MAX if best_effort else ints["ddl"]
            if not best_effort and deadline < ints["submit_time"]:
                raise TraceError(
                    f"{path}: row {line}, column {mapping['ddl']!r}: deadline {deadline} is before "
                    f"the submit time {ints['submit_time']} (deadlines are absolute times)"
                )
            model = (row.get(mapping["model_name"]) or "").strip()
            if profiles is not None and not profiles.has(model, ints["batch_size"]):
                raise TraceError(
                    f"{path}: row {line}, column 'model_name': unknown model {model!r} with batch "
                    f"size {ints['batch_size']} (profiles in {profiles.source} know "
                    f"{', '.join(sorted(profiles.models))})"
                )
            jobs.append(
                TraceJob(
                    idx=idx,
                    job_id=(row.get("job_id") or "").strip(),
                    submit_time=ints["submit_time"],
                    iterations=ints["iteration"],
                    model=model,
                    deadline=deadline,
                    batch_size=ints["batch_size"],
                    num_gpu=ints["num_gpu"],
                    duration=ints["duration"],
                    best_effort=best_effort,
                    raw_deadline=ints["ddl"],
                )
            )
    if not jobs:
        raise TraceError(f"{path}: the trace holds no jobs")
    return jobs


def submission_order(jobs: list[TraceJob]) -> list[TraceJob]:
    """Stable sort by submit time, as upstream's loader does after reading."""
    return sorted(jobs, key=lambda j: j.submit_time)
