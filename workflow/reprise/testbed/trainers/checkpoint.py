"""Save and restore a trainer's model and optimizer state at an iteration (for elastic restarts)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from reprise.errors import TestbedError

FORMAT = 1


@dataclass(frozen=True)
class Restored:
    """Where a resumed run continues: the next iteration to run and what the checkpoint was of."""

    iteration: int
    model: str
    size: str


def save_checkpoint(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    iteration: int,
    name: str,
    size: str,
) -> None:
    """Write the state after `iteration` completed steps; a crash mid-write keeps the old file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state: dict[str, Any] = {
        "format": FORMAT,
        "model_name": name,
        "size": size,
        "iteration": iteration,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_checkpoint(
    path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, name: str, size: str
) -> Restored:
    """Load `path` into `model` and `optimizer` (in place); refuse a checkpoint of another model."""
    if not path.is_file():
        raise TestbedError(
            f"checkpoint {path} does not exist: drop --resume or pass a file --checkpoint wrote"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several unrelated types for a corrupt or foreign file
        raise TestbedError(
            f"checkpoint {path} cannot be read ({exc}); delete it and start from scratch"
        ) from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise TestbedError(
            f"{path} is not a Reprise trainer checkpoint (format {FORMAT}): pass another file"
        )
    if (state["model_name"], state["size"]) != (name, size):
        raise TestbedError(
            f"checkpoint {path} holds {state['model_name']} ({state['size']}), "
            f"not {name} ({size}): "
            "resume with the same --model and --size"
        )
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    return Restored(iteration=int(state["iteration"]), model=name, size=size)
