"""Tie a job's process to the Snakemake that started it, so a killed run leaves no orphan."""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1
"""prctl(2) option: the signal the kernel sends this process when its parent dies."""


def die_with_parent(sig: int = signal.SIGTERM) -> bool:
    """Ask the kernel for `sig` when the parent process (Snakemake) dies; Linux only.

    Snakemake runs a `script:` as its own child, so without this a `kill -9` of Snakemake
    leaves the script running and writing its outputs afterwards. Returns False where the
    kernel has no such call (then nothing changes).
    """
    if not sys.platform.startswith("linux"):
        return False
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0:
        return False
    # the parent may have died before the request: then we were re-parented already
    if os.getppid() != parent or parent == 1:
        os.kill(os.getpid(), sig)
    return True
