"""The standard torch.distributed environment (RANK, WORLD_SIZE, ...), checked without torch."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from reprise.errors import TestbedError


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits in its job; master_* is None only for a lone rank started by hand."""

    rank: int
    world_size: int
    local_rank: int
    master_addr: str | None
    master_port: int | None


def _int(environ: Mapping[str, str], key: str, default: int, minimum: int) -> int:
    raw = environ.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise TestbedError(f"environment variable {key}={raw!r} is not an integer") from None
    if value < minimum:
        raise TestbedError(f"environment variable {key}={value} must be at least {minimum}")
    return value


def read_env(environ: Mapping[str, str]) -> DistEnv:
    """Read what torchrun (or our launchers) set; TestbedError names the variable and the fix."""
    world = _int(environ, "WORLD_SIZE", 1, 1)
    rank = _int(environ, "RANK", 0, 0)
    if rank >= world:
        raise TestbedError(f"RANK={rank} is not below WORLD_SIZE={world}: ranks are 0..{world - 1}")
    local_rank = _int(environ, "LOCAL_RANK", 0, 0)
    addr = environ.get("MASTER_ADDR") or None
    port = _int(environ, "MASTER_PORT", 0, 0) or None
    if port is not None and port > 65535:
        raise TestbedError(f"MASTER_PORT={port} is not a TCP port (1..65535)")
    if (addr is None) != (port is None):
        raise TestbedError(
            "set both MASTER_ADDR and MASTER_PORT, or neither (only at WORLD_SIZE=1)"
        )
    if world > 1 and addr is None:
        raise TestbedError(
            f"WORLD_SIZE={world} needs MASTER_ADDR and MASTER_PORT "
            "(rank 0's address and a free port); "
            "torchrun and the Reprise launchers set them"
        )
    return DistEnv(rank, world, local_rank, addr, port)
