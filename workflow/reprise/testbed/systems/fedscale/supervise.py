"""Watch a FedScale run's roles until the aggregator ends; fail fast, naming the role that died."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from reprise.errors import TestbedError


class Role(Protocol):
    """One started FedScale role: a local process group, a container or a pod."""

    name: str
    """What a user would look for: 'executor 2 (container fedscale-...-exec2)'."""

    def poll(self) -> int | None:
        """Exit status once it ended, else None."""
        ...

    def tail(self, lines: int = 15) -> str: ...


def port_free(port: int, host: str = "0.0.0.0") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def require_port_free(port: int, where: str) -> None:
    if not port_free(port):
        raise TestbedError(
            f"port {port} ({where}) is already in use on this host: stop what listens there "
            "(`ss -ltnp`) or set testbed.fedscale.port to a free port"
        )


def wait_listening(
    port: int, role: Role, timeout_s: float, ready_text: str = "Opening aggregator server"
) -> None:
    """FedScale's executors give up on an aggregator that is not up yet: wait for its port.

    The aggregator logs `ready_text` just before it binds; a published container port accepts
    connections (Docker's proxy) before that, so the log line is waited for first.
    """
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        rc = role.poll()
        if rc is not None:
            raise TestbedError(
                f"{role.name} exited with status {rc} before opening port {port}; "
                f"its log ends:\n{role.tail()}"
            )
        if ready_text in role.tail(400):
            with socket.socket() as s:
                s.settimeout(1.0)
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return
        time.sleep(0.5)
    raise TestbedError(f"{role.name} did not open port {port} in {timeout_s:.0f} s")


def wait_roles(
    aggregator: Role,
    executors: Sequence[Role],
    timeout_s: float,
    progress: Callable[[str], None],
    finished_grace_s: float = 60.0,
) -> float:
    """Block until the aggregator exits 0 and the executors follow; return the seconds waited.

    FedScale has no recovery for a lost executor: the aggregator waits for its results forever.
    So any executor that fails before the aggregator ends fails the run here, with its name and log.
    """
    start = time.monotonic()
    deadline = start + timeout_s
    while True:
        rc = aggregator.poll()
        if rc is not None:
            if rc != 0:
                raise TestbedError(
                    f"{aggregator.name} exited with status {rc}; its log ends:\n{aggregator.tail()}"
                )
            break
        for ex in executors:
            erc = ex.poll()
            # status 0 is FedScale's own shutdown (it can beat the aggregator's exit by seconds)
            if erc is not None and erc != 0:
                raise TestbedError(
                    f"{ex.name} ended with status {erc} before the aggregator finished; "
                    "FedScale's aggregator waits for a lost executor's results forever, so the "
                    f"run is stopped. Its log ends:\n{ex.tail()}"
                )
        if time.monotonic() > deadline:
            raise TestbedError(
                f"the FedScale run did not finish in {timeout_s:.0f} s "
                f"(testbed.fedscale.timeout_s); {aggregator.name}'s log ends:\n{aggregator.tail()}"
            )
        time.sleep(0.5)
    waited = time.monotonic() - start
    progress(f"aggregator finished after {waited:.1f} s")
    # executors stop on FedScale's shutdown event; give them a moment, teardown stops stragglers
    grace_end = time.monotonic() + finished_grace_s
    while time.monotonic() < grace_end and any(e.poll() is None for e in executors):
        time.sleep(0.5)
    return waited
