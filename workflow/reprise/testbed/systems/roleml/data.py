"""CIFAR-10-format batches (python pickle layout) made from scikit-learn's digits, and their reader.

The reader takes the real CIFAR-10 (`cifar-10-batches-py`) from a local path just the same.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from reprise.errors import DataError

TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
SIDE = 32


def _to_cifar_rows(images: np.ndarray) -> np.ndarray:
    """8x8 grey digits (0..16) as 32x32 RGB rows in CIFAR's channel-major byte order."""
    grey = np.kron(images.reshape(-1, 8, 8), np.ones((4, 4))) * (255.0 / 16.0)
    # three unequal channels, so a model cannot treat the input as one repeated plane
    rgb = np.stack([grey, grey * 0.8, 255.0 - grey], axis=1)
    return np.clip(rgb, 0, 255).astype(np.uint8).reshape(len(images), 3 * SIDE * SIDE)


def make_digit_batches(out: Path, test_fraction: float, seed: int) -> dict[str, Any]:
    """Write data_batch_1..5, test_batch and batches.meta under `out`; return a summary."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = np.random.default_rng(seed).permutation(len(digits.target))
    rows = _to_cifar_rows(digits.data[order])
    labels = digits.target[order].astype(int)
    n_test = round(len(labels) * test_fraction)
    out.mkdir(parents=True, exist_ok=True)
    _write(out / TEST_BATCH, rows[:n_test], labels[:n_test], "testing batch 1 of 1")
    train_rows, train_labels = rows[n_test:], labels[n_test:]
    parts = np.array_split(np.arange(len(train_labels)), len(TRAIN_BATCHES))
    for i, (name, idx) in enumerate(zip(TRAIN_BATCHES, parts, strict=True)):
        _write(out / name, train_rows[idx], train_labels[idx], f"training batch {i + 1} of 5")
    with (out / "batches.meta").open("wb") as f:
        pickle.dump({"label_names": [str(d) for d in range(10)], "num_vis": 3 * SIDE * SIDE}, f)
    summary = {"source": "sklearn.datasets.load_digits", "train": len(train_labels), "test": n_test}
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def _write(path: Path, rows: np.ndarray, labels: np.ndarray, label: str) -> None:
    with path.open("wb") as f:
        pickle.dump({b"batch_label": label.encode(), b"data": rows, b"labels": labels.tolist()}, f)


def _read(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise DataError(
            f"{path}: missing CIFAR-10 batch; point testbed.roleml.data_path at a "
            "cifar-10-batches-py directory or leave it empty to use the generated digits"
        )
    with path.open("rb") as f:
        batch = pickle.load(f, encoding="bytes")
    try:
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (KeyError, TypeError) as exc:
        raise DataError(
            f"{path}: not a CIFAR-10 python batch (needs b'data' and b'labels')"
        ) from exc
    if data.ndim != 2 or data.shape[1] != 3 * SIDE * SIDE or len(data) != len(labels):
        raise DataError(f"{path}: data has shape {data.shape}, expected (N, 3072) with N labels")
    return data.reshape(-1, 3, SIDE, SIDE), labels


def load_split(root: Path, part: str, index: int = 0, parts: int = 1) -> tuple[Any, Any]:
    """Images (float tensors in [0, 1]) and labels of the test set or of one client's slice."""
    import torch

    if part == "test":
        images, labels = _read(root / TEST_BATCH)
    else:
        loaded = [_read(root / name) for name in TRAIN_BATCHES]
        images = np.concatenate([x for x, _ in loaded])
        labels = np.concatenate([y for _, y in loaded])
        chunk = np.array_split(np.arange(len(labels)), parts)[index]
        images, labels = images[chunk], labels[chunk]
    return torch.from_numpy(images.astype(np.float32) / 255.0), torch.from_numpy(labels)
