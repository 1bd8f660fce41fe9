"""The `process` deployment: aggregator and executors as local process groups over real sockets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any

from reprise.errors import TestbedError
from reprise.testbed.systems.fedscale.supervise import (
    require_port_free,
    wait_listening,
    wait_roles,
)

INIT_SCRIPT = Path(__file__).resolve().parents[4] / "testbed" / "fedscale" / "fedscale_init.py"
"""workflow/testbed/fedscale/fedscale_init.py: the same entry point the images run."""

QUIET_ENV = {
    # one math thread per role: three roles share two cores
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "WANDB_MODE": "disabled",
    "PYTHONUNBUFFERED": "1",
}


def _group_alive(pgid: int) -> bool:
    # /proc, not kill -0: zombies linger where PID 1 reaps orphans lazily
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False


def stop_group(pgid: int, grace_s: float = 5.0) -> None:
    """SIGTERM the process group, then SIGKILL what is left after grace_s."""
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 2.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        end = time.monotonic() + wait
        while time.monotonic() < end:
            if not _group_alive(pgid):
                return
            time.sleep(0.1)


def stop_recorded(state: Path) -> list[str]:
    """After a crash (kill -9 of the run): stop the groups a processes.json recorded, if still ours.

    A group id is only signalled while its leader still runs our init script, so a recycled PID
    is never hit. Returns the names of the roles stopped.
    """
    if not state.is_file():
        return []
    stopped = []
    for entry in json.loads(state.read_text()):
        try:
            argv = Path(f"/proc/{entry['pgid']}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(arg.endswith(INIT_SCRIPT.name.encode()) for arg in argv):
            stop_group(int(entry["pgid"]))
            stopped.append(str(entry["name"]))
    state.unlink()
    return stopped


class LocalRole:
    """A FedScale role started as its own process group; its output goes to one log file."""

    def __init__(self, name: str, argv: Sequence[str], log: Path, env: Mapping[str, str]) -> None:
        self.name = name
        self.log = log
        self._fh: IO[bytes] = log.open("wb")
        self.proc = subprocess.Popen(
            list(argv),
            stdout=self._fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **env},
            start_new_session=True,  # own group: stopped as a whole, never by name
        )

    def poll(self) -> int | None:
        return self.proc.poll()

    def tail(self, lines: int = 15) -> str:
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            stop_group(self.proc.pid)
        else:
            stop_group(self.proc.pid, grace_s=0.5)  # children it left in its group
        self.proc.wait()
        self._fh.close()


class ProcessDeployment:
    """Start, watch and always stop one local FedScale run (success, error, Ctrl-C, SIGTERM)."""

    def __init__(
        self,
        job_path: Path,
        run_dir: Path,
        executors: int,
        port: int,
        python: str = sys.executable,
        progress: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True),
    ) -> None:
        self.job_path = job_path
        self.run_dir = run_dir
        self.executors = executors
        self.port = port
        self.python = python
        self.progress = progress
        self.roles: list[LocalRole] = []
        self._old: Any = None

    def _record(self) -> None:
        state = [{"name": r.name, "pgid": r.proc.pid, "log": str(r.log)} for r in self.roles]
        (self.run_dir / "processes.json").write_text(json.dumps(state, indent=2) + "\n")

    def _start(self, name: str, log_name: str, *args: str) -> LocalRole:
        log = self.run_dir / f"{log_name}.log"
        argv = [self.python, str(INIT_SCRIPT), str(self.job_path), *args]
        role = LocalRole(name, argv, log, QUIET_ENV)
        self.roles.append(role)
        self._record()  # recorded before anything relies on it
        return role

    def __enter__(self) -> ProcessDeployment:
        if threading.current_thread() is threading.main_thread():

            def on_sigterm(signum: int, frame: FrameType | None) -> None:
                raise TestbedError("received SIGTERM; stopping the FedScale processes")

            self._old = signal.signal(signal.SIGTERM, on_sigterm)
        return self

    def run(self, timeout_s: float) -> float:
        require_port_free(self.port, "the FedScale aggregator's gRPC port")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        aggregator = self._start("aggregator (local process)", "aggregator", "aggregator")
        wait_listening(self.port, aggregator, timeout_s=180)
        self.progress(f"aggregator listening on {self.port}")
        executors = [
            self._start(
                f"executor {rank} (local process)", f"executor{rank}", "executor", str(rank)
            )
            for rank in range(1, self.executors + 1)
        ]
        return wait_roles(aggregator, executors, timeout_s, self.progress)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for role in reversed(self.roles):
            role.stop()
        (self.run_dir / "processes.json").unlink(missing_ok=True)
        if self._old is not None:
            signal.signal(signal.SIGTERM, self._old)
