"""The Pollux monitor log: read line by line (last record wins), full timestamps, trace jobs missing
from the log reported; on a recorded log of a run across the end of a month."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reprise.data.traces import load_trace
from reprise.errors import TestbedError, TraceError
from reprise.testbed.systems.adaptdl.monitor import (
    deadline_report,
    object_name,
    parse_timestamp,
    poll_record,
    read_monitor_log,
    run_monitor,
)

DATA = Path(__file__).parent / "data"
LOG = DATA / "adaptdl_monitor.jsonl"
TRACE = DATA / "adaptdl_trace.csv"


def test_every_line_is_read_and_each_jobs_last_record_wins() -> None:
    log = read_monitor_log(LOG)
    assert log.records == 5  # upstream's json.load stops at the second line ("Extra data")
    assert log.truncated_last_line  # the cut-off record is left out, not an error
    assert set(log.jobs) == {"job-0", "job-1", "job-2", "job-3", "job-9"}
    job1 = log.jobs["job-1"]
    assert job1.completed == datetime(2022, 7, 1, 1, 10, 0, 500000, tzinfo=UTC)
    assert job1.epoch == 15 and job1.line == 5
    job3 = log.jobs["job-3"]  # still running at the last complete record
    assert job3.completed is None and job3.allocation == ("node-3", "node-1")
    assert job3.batch_size == 256


def test_deadline_ratio_across_a_month_end_reports_missing_and_unknown_jobs() -> None:
    report = deadline_report(read_monitor_log(LOG), load_trace(TRACE))
    by_id = {o.job_id: o for o in report.outcomes}
    # job 0 ran from June 30th 23:20 to July 1st 00:40:12.345678: 4812.3 s, within 5290 s (a
    # day-of-month clock, as upstream's, gives it a JCT of minus 29 days)
    assert by_id["0"].status == "met" and by_id["0"].jct_s == pytest.approx(4812.345678)
    assert by_id["1"].status == "missed" and by_id["1"].jct_s == pytest.approx(6508.5)
    assert by_id["2"].status == "met" and by_id["2"].jct_s == pytest.approx(2573.0)
    assert by_id["3"].status == "unfinished"
    assert by_id["4"].status == "missing" and by_id["5"].status == "missing"
    assert report.unknown_jobs == ["job-9"]
    assert report.ratio == pytest.approx(2 / 6)  # over all trace jobs, missing ones included
    summary = report.summary()
    assert (summary["met"], summary["missed"], summary["unfinished"], summary["missing"]) == (
        2,
        1,
        1,
        2,
    )
    assert summary["truncated_last_line"] is True


def test_timestamps_keep_date_fraction_and_zone() -> None:
    assert parse_timestamp("2022-06-04T04:55:19Z") == datetime(2022, 6, 4, 4, 55, 19, tzinfo=UTC)
    assert parse_timestamp("2022-12-31T23:59:59.25+02:00") == datetime(
        2022, 12, 31, 21, 59, 59, 250000, tzinfo=UTC
    )
    # a year's end: four seconds, not minus a year
    delta = parse_timestamp("2023-01-01T00:00:03Z") - parse_timestamp("2022-12-31T23:59:59Z")
    assert delta.total_seconds() == 4
    with pytest.raises(TraceError, match="not an RFC 3339 time"):
        parse_timestamp("06/04/2022 04:55")
    with pytest.raises(TraceError, match="2022-02-30T00:00:00Z"):
        parse_timestamp("2022-02-30T00:00:00Z")


def test_a_broken_line_inside_the_log_is_an_error_naming_it(tmp_path: Path) -> None:
    lines = LOG.read_text().splitlines()
    bad = tmp_path / "monitor.jsonl"
    bad.write_text("\n".join([lines[0], lines[1][:40], lines[2]]) + "\n")
    with pytest.raises(TraceError, match=r"monitor\.jsonl:2: not a JSON record"):
        read_monitor_log(bad)
    no_time = tmp_path / "no_time.jsonl"
    record = json.loads(lines[0])
    del record["submitted_jobs"][0]["submission_time"]
    no_time.write_text(json.dumps(record) + "\n")
    with pytest.raises(TraceError, match=r"no_time\.jsonl:1: job 'job-0' has no submission_time"):
        read_monitor_log(no_time)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(TraceError, match="holds no record"):
        read_monitor_log(empty)


def test_object_names_are_dns_labels() -> None:
    assert object_name("0") == "job-0"
    assert object_name("bdd640fb-0667-1ad1-1c80-317fa3b1799d") == (
        "job-bdd640fb-0667-1ad1-1c80-317fa3b1799d"
    )
    assert object_name("My_Job.7") == "job-my-job-7"
    assert len(object_name("x" * 100)) == 63


class _Objects:
    """A CustomObjectsApi stand-in that answers from a list of AdaptDLJob objects."""

    def __init__(self, answers: list[dict[str, object]]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, ...]] = []

    def list_namespaced_custom_object(self, *args: str) -> dict[str, object]:
        self.calls.append(args)
        return self.answers[min(len(self.calls), len(self.answers)) - 1]


def _adaptdljob(name: str, created: str, status: dict[str, object]) -> dict[str, object]:
    return {
        "apiVersion": "adaptdl.petuum.com/v1",
        "kind": "AdaptDLJob",
        "metadata": {"name": name, "creationTimestamp": created},
        "status": status,
    }


def test_the_monitor_writes_records_the_parser_reads(tmp_path: Path) -> None:
    running = _adaptdljob(
        "job-0",
        "2022-06-30T23:20:00Z",
        {"allocation": ["n1", "n1"], "train": {"epoch": 2, "globalBatchSize": 256}},
    )
    done = _adaptdljob(
        "job-0",
        "2022-06-30T23:20:00Z",
        {"completionTimestamp": "2022-07-01T00:10:00Z", "train": {"epoch": 9}},
    )
    api = _Objects([{"items": [running]}, {"items": [done]}])
    out = tmp_path / "monitor.jsonl"
    clock = iter([100.0, 160.0])
    stops = iter([False, False, True])
    written = run_monitor(
        api, "pollux", out, lambda: next(stops), clock=lambda: next(clock), sleep=lambda s: None
    )
    assert written == 2
    assert api.calls == [("adaptdl.petuum.com", "v1", "pollux", "adaptdljobs")] * 2
    log = read_monitor_log(out)
    assert log.jobs["job-0"].completed == datetime(2022, 7, 1, 0, 10, tzinfo=UTC)
    assert log.jobs["job-0"].seen_at == 160.0
    assert poll_record({"items": [running]}, 1.0)["submitted_jobs"][0]["batch_size"] == 256


def test_a_failing_api_stops_the_monitor_with_the_reason(tmp_path: Path) -> None:
    class Failing:
        def list_namespaced_custom_object(self, *args: str) -> object:
            raise OSError("connection refused")

    with pytest.raises(TestbedError, match=r"adaptdljobs\.adaptdl\.petuum\.com/v1 .* refused"):
        run_monitor(Failing(), "ns", tmp_path / "m.jsonl", lambda: False, sleep=lambda s: None)
