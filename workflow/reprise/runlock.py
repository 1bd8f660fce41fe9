"""One executing Snakemake per working directory: an flock of our own, held until exit.

Snakemake 9.27.1 deletes its whole `.snakemake/locks` folder when any instance ends (a dry
run included), so a second instance can take a first one's jobs; a lock the kernel releases
with the process cannot be removed that way, nor outlive a `kill -9`.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from reprise.errors import ConfigError

LOCK_PATH = Path(".snakemake/reprise.lock")
_held: list[IO[str]] = []
"""The open lock file of this process; kept open (and so locked) until the process exits."""


def hold_run_lock(path: Path = LOCK_PATH) -> None:
    """Lock `path` for the rest of this process, or raise naming the process that holds it."""
    if _held:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise ConfigError(
            f"another Snakemake is running in {Path.cwd()} ({holder}, lock {path}). Two runs "
            f"in one directory can run the same jobs at once: wait for it to finish, or stop "
            f"it. Dry runs (-n), --lint and --unlock are never refused."
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}\n")
    handle.flush()
    _held.append(handle)
