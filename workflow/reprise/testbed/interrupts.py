"""Hold Ctrl-C and SIGTERM back for a few lines of code that start a process and record it.

A run stops what it started by the PIDs it recorded. Between starting a process and recording its
PID (a CRIU restore that brings an actor back, a Popen whose result is not yet stored) an
interrupt would leave a process nobody knows about. Inside `interrupts_deferred()` such a signal
is only noted; it is delivered, to the handler that was in place, when the block ends.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

DEFERRED = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Run the block without being interrupted by SIGINT or SIGTERM; a signal that came meanwhile
    is raised again once the block is done (also when it failed). Outside the main thread this
    does nothing: Python runs every signal handler in the main thread, which then unwinds while
    the other thread finishes its block."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def note(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    # a handler installed outside Python (getsignal gives None) cannot be put back: left alone
    held = [sig for sig in DEFERRED if signal.getsignal(sig) is not None]
    previous = {sig: signal.signal(sig, note) for sig in held}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for signum in dict.fromkeys(received):
            signal.raise_signal(signum)
