"""CRIU for role offloading: the version check, and checkpoint/restore of a role process that runs
as init of its own PID namespace (a plain PID cannot be restored while the host reuses it)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from reprise.errors import ProvisionError, TestbedError
from reprise.testbed.interrupts import interrupts_deferred

_IN_OWN_PID_NS = ("unshare", "--pid", "--fork", "--", "setsid")
# joins every cgroup named in $REPRISE_CGROUPS (their cgroup.procs files), then runs the command,
# so a node's CPU accounting covers the process from its first instruction
JOIN_CGROUPS = ("sh", "-c", 'for f in $REPRISE_CGROUPS; do echo $$ >"$f"; done; exec "$@"', "sh")
# cgroups are the node's business (the restored tree joins the destination's), not CRIU's
_CGROUPS_IGNORED = "--manage-cgroups=ignore"
# 4.2 is the first release that dumps TCP sockets on Linux >= 6.16 (criu#2718)
MINIMUM = (4, 2)
BUILD_HINT = "build it with workflow/testbed/criu/build-criu.sh (rule roleml_criu)"


def criu_version(binary: str | Path) -> tuple[int, ...]:
    """The version `binary --version` prints; ProvisionError names the path when it cannot run."""
    path = shutil.which(str(binary))
    if path is None:
        raise ProvisionError(f"CRIU not found at {binary}; {BUILD_HINT}")
    try:
        out = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise ProvisionError(f"CRIU at {path} does not run ({exc}); {BUILD_HINT}") from exc
    match = re.search(r"Version:\s*(\d+(?:\.\d+)*)", out)
    if not match:
        raise ProvisionError(f"CRIU at {path} printed no version ({out.strip()!r}); {BUILD_HINT}")
    return tuple(int(p) for p in match.group(1).split("."))


def require_criu(binary: str | Path, minimum: tuple[int, ...] = MINIMUM) -> tuple[int, ...]:
    """Stop before anything starts when CRIU is missing or older than `minimum`."""
    found = criu_version(binary)
    if found < minimum:
        raise ProvisionError(
            f"CRIU at {binary} is {'.'.join(map(str, found))}; role offloading needs "
            f"{'.'.join(map(str, minimum))} or newer; {BUILD_HINT}"
        )
    return found


@dataclass
class NamespacedProcess:
    """A command running as PID 1 of its own PID namespace and session leader there."""

    outer: subprocess.Popen[bytes] | None
    pid: int  # the host PID of the namespace's init (what CRIU dumps)

    def alive(self) -> bool:
        status = Path(f"/proc/{self.pid}/status")
        try:
            return "State:\tZ" not in status.read_text()
        except FileNotFoundError:
            return False

    def kill(self) -> None:
        # the init of a PID namespace ignores SIGTERM from inside; SIGKILL from the host ends it
        with suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        if self.outer is not None:
            with suppress(ProcessLookupError):
                os.killpg(self.outer.pid, signal.SIGKILL)
            self.outer.wait()


def cgroup_env(cgroups: Sequence[Path]) -> dict[str, str]:
    return {**os.environ, "REPRISE_CGROUPS": " ".join(str(c / "cgroup.procs") for c in cgroups)}


def start_namespaced(
    argv: Sequence[str], log: Path, timeout: float = 10.0, cgroups: Sequence[Path] = ()
) -> NamespacedProcess:
    """Start `argv` with `unshare --pid --fork` and `setsid`, so CRIU finds a whole session.

    The command itself appends to `log`; unshare's own messages go nowhere, because CRIU refuses
    to restore a file that grew after the dump.
    """
    outer = subprocess.Popen(
        [*JOIN_CGROUPS, *_IN_OWN_PID_NS, "sh", "-c", 'exec "$@" >>"$0" 2>&1', str(log), *argv],
        env=cgroup_env(cgroups),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = Path(f"/proc/{outer.pid}/task/{outer.pid}/children")
        with suppress(FileNotFoundError):
            pids = children.read_text().split()
            if pids:
                return NamespacedProcess(outer, int(pids[0]))
        if outer.poll() is not None:
            break
        time.sleep(0.05)
    with suppress(ProcessLookupError):
        os.killpg(outer.pid, signal.SIGKILL)
    raise TestbedError(
        f"{argv[0]} did not start in its own PID namespace (unshare: {outer.poll()})"
    )


def _criu(
    binary: str,
    args: Sequence[str],
    images: Path,
    what: str,
    log_name: str,
    cgroups: Sequence[Path] = (),
) -> float:
    started = time.monotonic()
    # CRIU runs to its end: killed half-way, a dump leaves its network lock on the role's
    # connections and a restore leaves a tree whose PID was never written. So it has its own
    # session (a terminal's Ctrl-C does not reach it) and an interrupt waits until it is done.
    with interrupts_deferred():
        done = subprocess.run(
            [*JOIN_CGROUPS, binary, *args, _CGROUPS_IGNORED, "-D", str(images), "-o", log_name],
            capture_output=True,
            text=True,
            env=cgroup_env(cgroups),
            start_new_session=True,
        )
    if done.returncode != 0:
        tail = (
            (images / log_name).read_text().splitlines()[-5:]
            if (images / log_name).exists()
            else []
        )
        # CRIU writes to its log once it runs; a refused command line only reaches stderr
        said = tail or done.stderr.strip().splitlines()[:3]
        raise TestbedError(f"criu {what} failed ({done.returncode}): {' | '.join(said)}")
    return time.monotonic() - started


def checkpoint(binary: str, proc: NamespacedProcess, images: Path, attempts: int = 3) -> float:
    """Dump `proc` (it stops); established TCP connections are saved too. Returns seconds."""
    images.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    for attempt in range(1, attempts + 1):
        try:
            _criu(
                binary,
                ["dump", "-t", str(proc.pid), "--tcp-established"],
                images,
                "dump",
                "dump.log",
            )
            break
        except TestbedError as exc:
            # a thread that ends while CRIU seizes the tree fails the dump; the process runs on
            # untouched, so trying again is safe
            if attempt == attempts or not proc.alive() or "No such process" not in str(exc):
                raise
    seconds = time.monotonic() - started
    if proc.outer is not None:
        proc.outer.wait(30)
    return seconds


def restore(
    binary: str, images: Path, cgroups: Sequence[Path] = ()
) -> tuple[NamespacedProcess, float]:
    """Restore a dump as a detached tree in `cgroups`; peers of its old connections see them
    closed, and the restored process reconnects as a fresh client would."""
    pidfile = images / "restored.pid"
    pidfile.unlink(missing_ok=True)
    seconds = _criu(
        binary,
        ["restore", "-d", "--tcp-close", "--pidfile", str(pidfile)],
        images,
        "restore",
        "restore.log",
        cgroups,
    )
    return NamespacedProcess(None, int(pidfile.read_text())), seconds
