"""Ctrl-C and SIGTERM held back while a process is started and recorded: a run interrupted during a
CRIU restore still knows the restored actor's PID and stops it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reprise.testbed.interrupts import interrupts_deferred


@pytest.fixture(autouse=True)
def python_sigint_handler() -> Iterator[None]:
    """Python's own Ctrl-C handler, as in a terminal: a test run started in the background
    (`cmd &`, nohup) inherits SIGINT ignored, and Python then installs no handler."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_signal_inside_the_block_arrives_when_it_ends() -> None:
    seen: list[str] = []
    with pytest.raises(KeyboardInterrupt), interrupts_deferred():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # a handler that raised would have raised here
        seen.append("block finished")
    assert seen == ["block finished"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_the_previous_handler_gets_the_signal_also_when_the_block_fails() -> None:
    got: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: got.append(signum))
    try:
        with pytest.raises(ValueError, match="failed inside"), interrupts_deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
            assert got == []
            raise ValueError("failed inside")
        assert got == [signal.SIGTERM]  # noted twice, delivered once
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_outside_the_main_thread_nothing_changes() -> None:
    handlers: list[object] = []

    def inside() -> None:
        with interrupts_deferred():
            handlers.append(signal.getsignal(signal.SIGINT))

    worker = threading.Thread(target=inside)
    worker.start()
    worker.join()
    assert handlers == [signal.default_int_handler]


FAKE_CRIU = """\
#!/bin/sh
# stands in for `criu restore -d --pidfile F`: the restored tree exists at once, its PID is
# written only when the restore ends, a second later
pidfile=""
while [ $# -gt 0 ]; do
    [ "$1" = "--pidfile" ] && pidfile="$2"
    shift
done
setsid sleep 300 </dev/null >/dev/null 2>&1 &
echo $! >"{started}"
sleep 1
echo $! >"$pidfile"
"""

DRIVER = """\
import os, signal, sys, threading
from pathlib import Path
from reprise.testbed.systems.roleml.nodes import CgroupNodes
from reprise.testbed.systems.roleml.runtime import ProcessRuntime

root, images, criu_binary = map(Path, sys.argv[1:4])

def on_term(signum, frame):
    raise KeyboardInterrupt("SIGTERM")

signal.signal(signal.SIGTERM, on_term)
nodes = CgroupNodes("run", ("node1",), 0.5, root=root)
runtime = ProcessRuntime(sys.executable, str(criu_binary), nodes, root)
threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM)).start()
try:
    runtime.restore("client1", images, "node1")
    print("restored without interruption")
finally:
    runtime.stop_all()
"""


def test_sigterm_during_a_restore_still_stops_the_restored_actor(tmp_path: Path) -> None:
    """SIGTERM lands while CRIU restores an actor: the restore finishes, its PID is recorded,
    the run unwinds and stops it. Before, CRIU was killed half-way and the restored actor
    (already running, PID never written) outlived the run (a CI failure)."""
    started = tmp_path / "started.pid"
    criu_binary = tmp_path / "criu"
    criu_binary.write_text(FAKE_CRIU.format(started=started))
    criu_binary.chmod(0o755)
    for controller in ("cpu", "cpuacct"):  # stand-ins for the node's cgroup.procs files
        (tmp_path / controller / "reprise-roleml" / "run" / "node1").mkdir(parents=True)
    images = tmp_path / "images"
    images.mkdir()
    driver = subprocess.run(
        [sys.executable, "-c", DRIVER, str(tmp_path), str(images), str(criu_binary)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "KeyboardInterrupt: SIGTERM" in driver.stderr, driver.stderr[-2000:]
    assert "restored without interruption" not in driver.stdout
    restored = int(started.read_text())
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and _running(restored):
            time.sleep(0.05)
        assert not _running(restored), "the restored actor outlived the interrupted run"
    finally:
        if _running(restored):
            os.kill(restored, signal.SIGKILL)


def _running(pid: int) -> bool:
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
