"""ElasticFlow-format job traces: loading with validation (both column spellings accepted)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from reprise.data.profiles import ThroughputProfiles
from reprise.errors import TraceError

INT64_MAX = 2**63 - 1
"""Deadline given to best-effort jobs (upstream uses sys.maxsize)."""

MAGNITUDE_LIMIT = 10**12
"""Largest iteration count or time (s) a trace may hold. Upstream traces stay below 3e7; the
simulators compute times in float64, where values near 2**53 stop adding up exactly, so a
larger number is a typo, not a job."""

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
    line: int = field(default=0, compare=False)
    """Line of the file the job was read from (for error messages); 0 if not read from a file."""

    @property
    def relative_deadline(self) -> int:
        return self.deadline - self.submit_time


@dataclass(frozen=True)
class RawRow:
    """One data row as written: its line in the file and its cells by header name."""

    line: int
    cells: dict[str, str]


def _decode(path: Path) -> str:
    """The file's text; a UTF-8 byte-order mark is dropped, any other non-UTF-8 byte named."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise TraceError(
            f"{path}: line {line}, byte {column}: 0x{data[exc.start]:02x} is not UTF-8 (Latin-1 "
            f"or Windows-1252?); save the trace as UTF-8, e.g. `iconv -f latin1 -t utf-8 "
            f"{path.name} > fixed.csv`"
        ) from None


def _delimiter(path: Path, header: str) -> str:
    """Read from the header line, whatever the suffix says: ',' then tab, else spaces."""
    for candidate in (",", "\t", ";"):
        if candidate in header:
            if candidate == ";":
                raise TraceError(
                    f"{path}: line 1: the header is separated by ';'; a trace is comma-separated "
                    f"(or space-separated): replace ';' with ','"
                )
            return candidate
    return " "


def read_rows(path: Path | str) -> tuple[list[str], list[RawRow], str]:
    """Header, data rows and delimiter of a trace; every row has exactly the header's fields."""
    path = Path(path)
    text = _decode(path)
    first = text.split("\n", 1)[0].strip("\r")
    if not first.strip():
        raise TraceError(f"{path}: empty file or empty first line, expected a header line")
    delimiter = _delimiter(path, first)
    reader = csv.reader(
        io.StringIO(text, newline=""), delimiter=delimiter, skipinitialspace=delimiter == " "
    )
    header = [h.strip() for h in next(reader)]
    shown = "tab" if delimiter == "\t" else repr(delimiter)
    rows: list[RawRow] = []
    for cells in reader:
        if not cells or all(not c.strip() for c in cells):
            continue
        if delimiter == " " and cells[-1] == "":
            cells = cells[:-1]  # a trailing space is no extra field
        if len(cells) != len(header):
            raise TraceError(
                f"{path}: row {reader.line_num} has {len(cells)} fields but the header has "
                f"{len(header)} (fields separated by {shown}, read from the header line); "
                f"fix the row or the separators"
            )
        rows.append(RawRow(reader.line_num, dict(zip(header, cells, strict=True))))
    return header, rows, delimiter


def _resolve_columns(path: Path, fieldnames: list[str], delimiter: str) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for canon, spellings in _COLUMNS.items():
        found = [s for s in spellings if s in fieldnames]
        if not found:
            raise TraceError(
                f"{path}: missing column {canon!r} (accepted spellings: {', '.join(spellings)}); "
                f"header is {fieldnames}, split at {delimiter!r}"
            )
        mapping[canon] = found[0]
    return mapping


def _row_ints(path: Path, row: RawRow, mapping: dict[str, str]) -> dict[str, int]:
    ints: dict[str, int] = {}
    for canon in _INT_COLUMNS:
        col = mapping[canon]
        text = row.cells[col].strip()
        if not text.lstrip("-").isdigit():
            raise TraceError(f"{path}: row {row.line}, column {col!r}: {text!r} is not an integer")
        ints[canon] = int(text)
    for canon in ("submit_time", "duration"):
        if ints[canon] < 0:
            raise TraceError(
                f"{path}: row {row.line}, column {mapping[canon]!r}: negative value {ints[canon]}"
            )
    for canon in ("iteration", "batch_size", "num_gpu"):
        if ints[canon] <= 0:
            raise TraceError(
                f"{path}: row {row.line}, column {mapping[canon]!r}: must be positive, "
                f"got {ints[canon]}"
            )
    for canon in ("submit_time", "iteration", "duration", "batch_size"):
        if ints[canon] > MAGNITUDE_LIMIT:
            raise TraceError(
                f"{path}: row {row.line}, column {mapping[canon]!r}: {ints[canon]} is beyond "
                f"{MAGNITUDE_LIMIT:.0e}, far above any real job; is a digit or unit wrong?"
            )
    return ints


def load_trace(path: Path | str, profiles: ThroughputProfiles | None = None) -> list[TraceJob]:
    """Read a trace in file order. With `profiles`, unknown (model, batch) pairs are rejected."""
    path = Path(path)
    header, rows, delimiter = read_rows(path)
    mapping = _resolve_columns(path, header, delimiter)
    has_be = "best_effort" in header
    jobs: list[TraceJob] = []
    first_line: dict[str, int] = {}
    for idx, row in enumerate(rows):
        line = row.line
        ints = _row_ints(path, row, mapping)
        job_id = row.cells["job_id"].strip()
        if not job_id:
            raise TraceError(f"{path}: row {line}, column 'job_id': empty; every job needs an id")
        if job_id in first_line:
            raise TraceError(
                f"{path}: row {line}, column 'job_id': {job_id!r} is already the id of row "
                f"{first_line[job_id]}; job ids must be unique"
            )
        first_line[job_id] = line
        best_effort = False
        if has_be:
            text = row.cells["best_effort"].strip()
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
        if not best_effort and deadline > MAGNITUDE_LIMIT:
            raise TraceError(
                f"{path}: row {line}, column {mapping['ddl']!r}: deadline {deadline} is beyond "
                f"{MAGNITUDE_LIMIT:.0e}; mark a job without deadline with best_effort = 1"
            )
        model = row.cells[mapping["model_name"]].strip()
        if profiles is not None and not profiles.has(model, ints["batch_size"]):
            raise TraceError(
                f"{path}: row {line}, column 'model_name': unknown model {model!r} with batch "
                f"size {ints['batch_size']} (profiles in {profiles.source} know "
                f"{', '.join(sorted(profiles.models))})"
            )
        jobs.append(
            TraceJob(
                idx=idx,
                job_id=job_id,
                submit_time=ints["submit_time"],
                iterations=ints["iteration"],
                model=model,
                deadline=deadline,
                batch_size=ints["batch_size"],
                num_gpu=ints["num_gpu"],
                duration=ints["duration"],
                best_effort=best_effort,
                raw_deadline=ints["ddl"],
                line=line,
            )
        )
    if not jobs:
        raise TraceError(f"{path}: the trace holds no jobs")
    return jobs


def submission_order(jobs: list[TraceJob]) -> list[TraceJob]:
    """Stable sort by submit time, as upstream's loader does after reading."""
    return sorted(jobs, key=lambda j: j.submit_time)
