"""The monitor log of a Pollux run and the deadline ratio read from it.

The monitor appends one JSON record per poll (one line: the time and every AdaptDLJob's state), as
upstream's run_monitor.py does. Upstream's parser differs from this one in three ways, each a bug:
it reads the whole file as one JSON document (so a log of more than one poll fails to parse unless
cut by hand to its last line), it turns timestamps into seconds from the day of the month, hour,
minute and second only (a run across a month's end gets negative job completion times), and it
skips completed jobs whose name is not in the trace (and crashes on unfinished ones). Here the log
is read line by line and each job's last record wins, timestamps are read whole (date, time,
fraction, zone), and trace jobs the log never shows are reported as missing, log jobs the trace
does not know as unknown.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reprise.data.traces import TraceJob
from reprise.errors import TestbedError, TraceError

GROUP = "adaptdl.petuum.com"
VERSION = "v1"
PLURAL = "adaptdljobs"
POLL_S = 60.0  # upstream's interval
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})"
)


def object_name(job_id: str) -> str:
    """The AdaptDLJob name of a trace job (a DNS label: lower case, digits, '-', <= 63)."""
    label = re.sub(r"[^a-z0-9-]+", "-", job_id.lower()).strip("-")
    name = f"job-{label}" if label else "job"
    return name[:63].rstrip("-")


def parse_timestamp(text: str) -> datetime:
    """An RFC 3339 time as Kubernetes writes it ("2022-06-04T04:55:19Z", with or without a
    fraction, any zone), as an aware datetime; a TraceError names a value that is not one."""
    match = _RFC3339.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise TraceError(f"timestamp {text!r} is not an RFC 3339 time such as 2022-06-04T04:55:19Z")
    zone = match.group(8)
    iso = text.strip().replace("t", "T").replace(" ", "T")
    if zone in ("Z", "z"):
        iso = iso[:-1] + "+00:00"
    try:
        return datetime.fromisoformat(iso).astimezone(UTC)
    except ValueError as exc:  # e.g. month 13 or February 30th
        raise TraceError(f"timestamp {text!r}: {exc}") from None


@dataclass(frozen=True)
class JobState:
    """One AdaptDLJob as the last record that listed it saw it."""

    name: str
    submitted: datetime
    completed: datetime | None
    epoch: int
    allocation: tuple[str, ...]
    batch_size: int
    seen_at: float
    """The monitor's clock (epoch seconds) of that record."""
    line: int


@dataclass(frozen=True)
class MonitorLog:
    path: Path
    jobs: dict[str, JobState]
    records: int
    truncated_last_line: bool
    """The last line was cut off (a monitor killed while writing): it was left out."""


def _job(path: Path, line: int, seen_at: float, raw: Any) -> JobState:
    where = f"{path}:{line}"
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise TraceError(f"{where}: a submitted_jobs entry without a name: {raw!r}")
    name = raw["name"]
    try:
        submitted = parse_timestamp(raw["submission_time"])
        done = raw.get("completion_time")
        completed = None if done is None else parse_timestamp(done)
    except KeyError:
        raise TraceError(f"{where}: job {name!r} has no submission_time") from None
    except TraceError as exc:
        raise TraceError(f"{where}: job {name!r}: {exc}") from None
    allocation = raw.get("allocation") or []
    return JobState(
        name=name,
        submitted=submitted,
        completed=completed,
        epoch=int(raw.get("epoch") or 0),
        allocation=tuple(str(a) for a in allocation),
        batch_size=int(raw.get("batch_size") or 0),
        seen_at=seen_at,
        line=line,
    )


def read_monitor_log(path: Path) -> MonitorLog:
    """Every record of the log in order; a job's state is that of the last record listing it.

    A malformed line is a TraceError naming it, except a cut-off last line, which is left out
    and flagged (the monitor is stopped by a signal and may die mid-write).
    """
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise TraceError(f"{path}: cannot read the monitor log: {exc.strerror}") from None
    numbered = [(i, text) for i, text in enumerate(lines, start=1) if text.strip()]
    jobs: dict[str, JobState] = {}
    records = 0
    truncated = False
    for pos, (line, text) in enumerate(numbered):
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            if pos == len(numbered) - 1 and records > 0:
                truncated = True
                break
            raise TraceError(
                f"{path}:{line}: not a JSON record ({exc.msg} at column {exc.colno}); the "
                "monitor writes one JSON object per line"
            ) from None
        if not isinstance(record, dict) or not isinstance(record.get("submitted_jobs"), list):
            raise TraceError(f"{path}:{line}: a record needs a 'submitted_jobs' list")
        seen_at = float(record.get("timestamp", 0.0))
        for raw in record["submitted_jobs"]:
            state = _job(path, line, seen_at, raw)
            jobs[state.name] = state
        records += 1
    if records == 0:
        raise TraceError(f"{path}: the monitor log holds no record")
    return MonitorLog(path=path, jobs=jobs, records=records, truncated_last_line=truncated)


@dataclass(frozen=True)
class Outcome:
    job_id: str
    name: str
    deadline_s: int
    """Relative deadline (trace deadline - trace submit time), seconds."""
    status: str
    """met, missed, unfinished (seen, never completed) or missing (never seen in the log)."""
    jct_s: float | None = None


@dataclass(frozen=True)
class DeadlineReport:
    outcomes: list[Outcome]
    unknown_jobs: list[str] = field(default_factory=list)
    """Jobs in the log that the trace does not list (counted nowhere, reported)."""
    truncated_last_line: bool = False

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def ratio(self) -> float:
        """Deadline satisfactory ratio: jobs that met their deadline over the trace's jobs."""
        return self.count("met") / len(self.outcomes) if self.outcomes else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "deadline_ratio": self.ratio,
            "jobs": len(self.outcomes),
            **{s: self.count(s) for s in ("met", "missed", "unfinished", "missing")},
            "unknown_jobs": list(self.unknown_jobs),
            "truncated_last_line": self.truncated_last_line,
        }


def deadline_report(log: MonitorLog, trace: Sequence[TraceJob]) -> DeadlineReport:
    """Each deadline job of the trace against the log: completion time minus submission time
    (both as Kubernetes stamped them) within the job's relative deadline counts as met."""
    known = names_of(trace)
    outcomes = []
    for job in trace:
        if job.best_effort:
            continue
        name = object_name(job.job_id)
        state = log.jobs.get(name)
        if state is None:
            outcomes.append(Outcome(job.job_id, name, job.relative_deadline, "missing"))
            continue
        if state.completed is None:
            outcomes.append(Outcome(job.job_id, name, job.relative_deadline, "unfinished"))
            continue
        jct = (state.completed - state.submitted).total_seconds()
        status = "met" if jct <= job.relative_deadline else "missed"
        outcomes.append(Outcome(job.job_id, name, job.relative_deadline, status, jct))
    unknown = sorted(set(log.jobs) - set(known))
    return DeadlineReport(outcomes, unknown, log.truncated_last_line)


def poll_record(objects: Mapping[str, Any], now: float) -> dict[str, Any]:
    """One monitor record from a list_namespaced_custom_object answer (upstream's fields)."""
    jobs = []
    for obj in objects.get("items", []):
        status = obj.get("status") or {}
        train = status.get("train") or {}
        jobs.append(
            {
                "name": obj["metadata"]["name"],
                "epoch": train.get("epoch", 0),
                "allocation": status.get("allocation") or [],
                "batch_size": train.get("globalBatchSize", 0),
                "submission_time": obj["metadata"]["creationTimestamp"],
                "completion_time": status.get("completionTimestamp"),
            }
        )
    return {"timestamp": now, "submitted_jobs": jobs}


def run_monitor(
    api: Any,
    namespace: str,
    out: Path,
    should_stop: Callable[[], bool],
    poll_s: float = POLL_S,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Append a record per poll of the namespace's AdaptDLJobs (through a CustomObjectsApi) until
    `should_stop()`; each line is flushed whole, so a killed monitor loses at most the line it
    was writing. Returns the number of records written."""
    written = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    while not should_stop():
        try:
            objects = api.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
        except Exception as exc:  # the API client raises ApiException and urllib3 errors
            raise TestbedError(
                f"listing {PLURAL}.{GROUP}/{VERSION} in namespace {namespace} failed: {exc}"
            ) from None
        with out.open("a") as fh:
            fh.write(json.dumps(poll_record(objects, clock()), sort_keys=True) + "\n")
            fh.flush()
        written += 1
        sleep(poll_s)
    return written


def names_of(trace: Iterable[TraceJob]) -> dict[str, str]:
    """AdaptDLJob name -> trace job id, refusing two jobs that map onto one name."""
    names: dict[str, str] = {}
    for job in trace:
        name = object_name(job.job_id)
        if name in names:
            raise TraceError(
                f"trace jobs {names[name]!r} and {job.job_id!r} get the same AdaptDLJob name "
                f"{name!r}; give them ids that differ in letters or digits"
            )
        names[name] = job.job_id
    return names
