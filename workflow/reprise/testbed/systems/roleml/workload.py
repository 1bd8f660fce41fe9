"""The E-Tree workload: LeNet-5 for 32x32 RGB images, local epochs, test accuracy, averaging."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn


def lenet5(seed: int) -> nn.Module:
    """LeNet-5 with three input channels (the model of RoleML's E-Tree experiment)."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 6, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120),
        nn.ReLU(),
        nn.Linear(120, 84),
        nn.ReLU(),
        nn.Linear(84, 10),
    )


def train_epoch(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    lr: float,
    batch_size: int,
    generator: torch.Generator,
) -> dict[str, float]:
    """One pass over the local data in a shuffled order; returns the mean training loss."""
    model.train()
    optimiser = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    order = torch.randperm(len(labels), generator=generator)
    total, batches = 0.0, 0
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        optimiser.zero_grad()
        loss = nn.functional.cross_entropy(model(images[idx]), labels[idx])
        loss.backward()  # type: ignore[no-untyped-call]
        optimiser.step()
        total += loss.item()
        batches += 1
    return {"loss": total / max(batches, 1), "samples": float(len(labels))}


@torch.no_grad()
def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Accuracy and mean loss on held-out data."""
    model.eval()
    logits = model(images)
    loss = float(nn.functional.cross_entropy(logits, labels))
    accuracy = float((logits.argmax(dim=1) == labels).float().mean())
    return {"accuracy": accuracy, "loss": loss}


def average(states: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Element-wise mean of state dicts (every member weighs the same, as in RoleML's E-Tree)."""
    if not states:
        raise ValueError("nothing to average: no member returned a model")
    return {
        key: torch.stack([s[key].float() for s in states]).mean(dim=0).to(states[0][key].dtype)
        for key in states[0]
    }
