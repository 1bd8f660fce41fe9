"""Trace loading: both column spellings, best-effort jobs, errors naming file, row, column."""

from __future__ import annotations

from pathlib import Path

import pytest

from reprise.data.profiles import ThroughputProfiles
from reprise.data.traces import INT64_MAX, load_trace, submission_order
from reprise.errors import TraceError

HEADER = "job_id,submit_time,iteration,model_name,ddl,batch_size,num_gpu,duration"
PUBLIC = "job_id,submission_time,num_iteration,model_name,deadline,batch_size,num_gpu,duration"


def write(tmp_path: Path, text: str, name: str = "t.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_both_spellings_give_identical_jobs(tmp_path: Path) -> None:
    rows = "\n0,100,50,bert,900,384,2,400\n1,50,10,ncf,70,32768,1,15\n"
    a = load_trace(write(tmp_path, HEADER + rows, "a.csv"))
    b = load_trace(write(tmp_path, PUBLIC + rows, "b.csv"))
    assert a == b
    assert [j.idx for j in a] == [0, 1]
    assert [j.idx for j in submission_order(a)] == [1, 0]
    assert a[0].deadline == 900 and a[0].iterations == 50 and a[0].submit_time == 100


def test_best_effort_job_gets_no_deadline(tmp_path: Path) -> None:
    text = HEADER + ",best_effort\n0,0,5,bert,100,384,1,10,1\n1,0,5,bert,100,384,1,10,0\n"
    jobs = load_trace(write(tmp_path, text))
    assert jobs[0].best_effort and jobs[0].deadline == INT64_MAX
    assert not jobs[1].best_effort and jobs[1].deadline == 100


@pytest.mark.parametrize(
    ("row", "fragment"),
    [
        ("0,abc,5,bert,100,384,1,10", "row 2, column 'submit_time'"),
        ("0,-5,5,bert,100,384,1,10", "row 2, column 'submit_time': negative"),
        ("0,10,5,bert,5,384,1,10", "row 2, column 'ddl': deadline 5 is before the submit time 10"),
        ("0,10,5,bert,100,384,0,10", "row 2, column 'num_gpu'"),
        ("0,10,5,bert,100,384,1,", "row 2, column 'duration'"),
    ],
)
def test_bad_rows_name_file_row_and_column(tmp_path: Path, row: str, fragment: str) -> None:
    path = write(tmp_path, HEADER + "\n" + row + "\n")
    with pytest.raises(TraceError) as err:
        load_trace(path)
    assert str(path) in str(err.value)
    assert fragment in str(err.value)


def test_corrupted_later_row_is_located(tmp_path: Path) -> None:
    good = "\n".join(f"{i},{i * 10},5,bert,{i * 10 + 100},384,1,10" for i in range(5))
    path = write(tmp_path, HEADER + "\n" + good + "\n5,50,5x,bert,200,384,1,10\n")
    with pytest.raises(TraceError, match=r"row 7, column 'iteration'"):
        load_trace(path)


def test_missing_column_lists_accepted_spellings(tmp_path: Path) -> None:
    path = write(tmp_path, "job_id,submit_time\n0,1\n")
    with pytest.raises(TraceError, match=r"missing column 'iteration'.*num_iteration"):
        load_trace(path)


def test_unknown_model_is_rejected_with_profiles(
    tmp_path: Path, t4_profiles: ThroughputProfiles
) -> None:
    path = write(tmp_path, HEADER + "\n0,0,5,resnet50,100,64,1,10\n")
    with pytest.raises(TraceError, match="row 2, column 'model_name': unknown model 'resnet50'"):
        load_trace(path, t4_profiles)


def test_figure8a_trace_loads(fig8a_trace: list) -> None:
    assert len(fig8a_trace) == 195
    assert {j.model for j in fig8a_trace} == {
        "bert",
        "cifar10",
        "deepspeech2",
        "imagenet",
        "ncf",
        "yolov3",
    }
    assert not any(j.best_effort for j in fig8a_trace)
