"""The node-side poll of a launched process: a process that ends between the poll's two looks
(its exit status written after the first) is reported with its status, not as vanished."""

from __future__ import annotations

import builtins
import contextlib
import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from reprise.testbed.lifecycle import _REMOTE


def _poll(log: Path, pgid: int, open_: Any = builtins.open) -> str:
    """Run the node-side helper's `poll` here, with `open` as given."""
    namespace = {"__builtins__": {**vars(builtins), "open": open_}, "__name__": "__main__"}
    out = io.StringIO()
    argv = sys.argv
    sys.argv = ["-c", "poll", str(pgid), str(log)]
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(_REMOTE, "<node helper>", "exec"), namespace)
    finally:
        sys.argv = argv
    return out.getvalue().strip()


def _gone_group() -> int:
    """A process group id with no member left (a child that has exited and been reaped)."""
    child = subprocess.Popen(["true"], start_new_session=True)
    child.wait()
    return child.pid


def test_status_written_between_the_two_looks_is_read(tmp_path: Path) -> None:
    """The CI failure: the trainer ended, the poll found no status yet, the wrapper then wrote
    it and left the group, and the poll saw an empty group: 'vanished without an exit status'."""
    log = tmp_path / "rank0.log"
    looks: list[str] = []

    def late_open(path: Any, *args: Any, **kwargs: Any) -> Any:
        if str(path).endswith(".rc"):
            looks.append(str(path))
            if len(looks) == 1:
                (tmp_path / "rank0.log.rc").write_text("0\n")  # the wrapper, just too late
                raise FileNotFoundError(path)
        return builtins.open(path, *args, **kwargs)

    assert _poll(log, _gone_group(), late_open) == "rc 0"
    assert len(looks) == 2


@pytest.mark.parametrize(("rc_file", "expected"), [(None, "gone"), ("3\n", "rc 3"), ("", "rc -1")])
def test_poll_of_an_ended_group(tmp_path: Path, rc_file: str | None, expected: str) -> None:
    log = tmp_path / "job.log"
    if rc_file is not None:
        (tmp_path / "job.log.rc").write_text(rc_file)
    assert _poll(log, _gone_group()) == expected


def test_a_live_group_is_running(tmp_path: Path) -> None:
    sleeper = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        assert _poll(tmp_path / "job.log", sleeper.pid) == "running"
    finally:
        sleeper.kill()
        sleeper.wait()
