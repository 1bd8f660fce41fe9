"""Run RoleML actors as local processes (one process group each) and stop every one on any exit."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from reprise.errors import TestbedError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(address: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    host, port = address.rsplit(":", 1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise TestbedError(
                f"actor at {address} exited with {proc.returncode} before listening; see {log}"
            )
        try:
            with socket.create_connection((host, int(port)), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise TestbedError(f"actor at {address} did not listen within {timeout:.0f}s; see {log}")


@dataclass
class LocalActors:
    """The actor processes of one run, by actor name."""

    run_dir: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)
    _files: list[TextIO] = field(default_factory=list)

    def start(self, name: str, spec: Mapping[str, Any], timeout: float = 60.0) -> None:
        spec_path = self.run_dir / "specs" / f"{name}.json"
        spec_path.parent.mkdir(parents=True, exist_ok=True)
        spec_path.write_text(json.dumps(spec, indent=1))
        log = self.run_dir / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        out = log.open("w")
        self._files.append(out)
        cmd = [sys.executable, "-u", "-m", "reprise.testbed.systems.roleml.actor", str(spec_path)]
        # its own session: the whole group is signalled at the end, never a process by name
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs[name], self.logs[name] = proc, log
        wait_listening(str(spec["address"]), proc, log, timeout)

    def stop_all(self, grace: float = 10.0) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                _signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait()
        for f in self._files:
            f.close()


def _signal_group(pgid: int, sig: int) -> None:
    with suppress(ProcessLookupError):
        os.killpg(pgid, sig)


@contextmanager
def local_actors(run_dir: Path) -> Iterator[LocalActors]:
    """Start actors inside; on success, error, Ctrl-C or SIGTERM every group is stopped."""
    actors = LocalActors(run_dir)
    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    try:
        yield actors
    finally:
        actors.stop_all()
        signal.signal(signal.SIGTERM, previous)
