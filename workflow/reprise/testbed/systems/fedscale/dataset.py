"""A FEMNIST-format data set made from scikit-learn's digits, and the check of any data_path."""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reprise.errors import DataError

HEADER = ("client_id", "sample_path", "label_name", "label_id")
"""FedScale's FEMNIST mapping columns: it reads the path from column 1, the label from the last."""
MAPPING = "client_data_mapping"


@dataclass(frozen=True)
class DigitsSpec:
    """How the digits are cut into clients (all of it seeded, so a rerun writes the same bytes)."""

    clients: int = 20
    seed: int = 0
    test_fraction: float = 0.2
    # Dirichlet concentration of each class over clients: small = few digits per client (non-IID)
    alpha: float = 0.5
    min_samples: int = 24


def _png_ready(image: np.ndarray[Any, np.dtype[np.float64]]) -> np.ndarray[Any, np.dtype[np.uint8]]:
    # 8x8 at 0..16 -> 32x32 at 0..255, nearest-neighbour: FedScale's transform resizes to 32x32
    scaled = np.clip(image * (255.0 / 16.0), 0, 255).astype(np.uint8)
    return np.kron(scaled, np.ones((4, 4), dtype=np.uint8))


def _split_clients(
    labels: np.ndarray[Any, np.dtype[np.int64]], spec: DigitsSpec
) -> list[list[int]]:
    """Dirichlet label skew over contiguous (writer-ordered) samples; every client gets enough."""
    rng = np.random.default_rng(spec.seed)
    for _attempt in range(100):
        owners: list[list[int]] = [[] for _ in range(spec.clients)]
        for digit in np.unique(labels):
            idx = np.flatnonzero(labels == digit)  # kept in collection order, like a writer's pages
            shares = rng.dirichlet(np.full(spec.clients, spec.alpha))
            cuts = (np.cumsum(shares)[:-1] * len(idx)).astype(int)
            for client, part in enumerate(np.split(idx, cuts)):
                owners[client].extend(int(i) for i in part)
        if min(len(o) for o in owners) >= spec.min_samples:
            return [sorted(o) for o in owners]
    raise DataError(
        f"cannot give each of {spec.clients} clients {spec.min_samples} digits with alpha "
        f"{spec.alpha}: lower testbed.fedscale.data.clients or raise alpha"
    )


def _write_png(path: Path, pixels: np.ndarray[Any, np.dtype[np.uint8]]) -> None:
    from PIL import Image  # Pillow comes with matplotlib; imported here to keep imports light

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, mode="L").save(path, format="PNG", optimize=False)


def build_digits(dest: Path, spec: DigitsSpec) -> dict[str, Any]:
    """Write dest/{raw/*.png, client_data_mapping/{train,test}.csv, manifest.json}; return it."""
    from sklearn.datasets import load_digits  # ships its data inside the package: no download

    digits = load_digits()
    images = digits.images
    labels = digits.target.astype(np.int64)
    rng = np.random.default_rng(spec.seed + 1)
    order = rng.permutation(len(labels))
    n_test = round(len(labels) * spec.test_fraction)
    test_idx = np.sort(order[:n_test])
    train_idx = np.sort(order[n_test:])
    owners = _split_clients(labels[train_idx], spec)
    (dest / MAPPING).mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[tuple[str, str, str, int]]] = {"train": [], "test": []}
    for client, members in enumerate(owners):
        for local in members:
            i = int(train_idx[local])
            rel = f"raw/train/c{client:03d}/{i:04d}.png"
            _write_png(dest / rel, _png_ready(images[i]))
            rows["train"].append((f"c{client:03d}", rel, str(labels[i]), int(labels[i])))
    for i in test_idx:
        rel = f"raw/test/{int(i):04d}.png"
        _write_png(dest / rel, _png_ready(images[i]))
        rows["test"].append(("test", rel, str(labels[i]), int(labels[i])))
    digests: dict[str, str] = {}
    for split, body in rows.items():
        path = dest / MAPPING / f"{split}.csv"
        with path.open("w", newline="") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(HEADER)
            writer.writerows(body)
        digests[f"{MAPPING}/{split}.csv"] = hashlib.sha256(path.read_bytes()).hexdigest()
    per_client = [len(o) for o in owners]
    manifest: dict[str, Any] = {
        "source": "sklearn.datasets.load_digits (UCI optdigits test part, 8x8 scaled to 32x32)",
        "clients": spec.clients,
        "seed": spec.seed,
        "alpha": spec.alpha,
        "train_samples": len(rows["train"]),
        "test_samples": len(rows["test"]),
        "samples_per_client": {"min": min(per_client), "max": max(per_client)},
        "labels_per_client": [len({labels[int(train_idx[j])] for j in o}) for o in owners],
        "sha256": digests,
    }
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


@dataclass(frozen=True)
class DataSummary:
    """What a checked data_path holds."""

    path: Path
    clients: int
    train_samples: int
    test_samples: int
    classes: int


def _read_mapping(path: Path, root: Path, check_files: int) -> tuple[set[str], int, set[int]]:
    if not path.is_file():
        raise DataError(
            f"{path}: missing; a FEMNIST-format data_path needs {MAPPING}/train.csv and test.csv "
            f"(columns {', '.join(HEADER)}). Point testbed.fedscale.data_path at such a folder, "
            "or leave it out to have the pipeline build one from scikit-learn's digits"
        )
    clients: set[str] = set()
    labels: set[int] = set()
    count = 0
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or len(header) < 4:
            raise DataError(
                f"{path}: line 1 should be a header of 4 columns ({', '.join(HEADER)}), "
                f"found {header!r}"
            )
        for line, row in enumerate(reader, start=2):
            if len(row) < 4:
                raise DataError(
                    f"{path}:{line}: {len(row)} column(s), need 4 ({', '.join(HEADER)})"
                )
            try:
                labels.add(int(row[-1]))
            except ValueError:
                raise DataError(
                    f"{path}:{line}: label_id {row[-1]!r} is not an integer; fix the row"
                ) from None
            if count < check_files and not (root / row[1]).is_file():
                raise DataError(
                    f"{path}:{line}: sample {row[1]!r} not found under {root}; sample paths are "
                    "relative to data_path"
                )
            clients.add(row[0])
            count += 1
    if count == 0:
        raise DataError(f"{path}: no samples after the header")
    return clients, count, labels


def check_data_path(root: Path, check_files: int = 50) -> DataSummary:
    """Refuse a data_path FedScale would crash on, with the file, line and fix."""
    if not root.is_dir():
        raise DataError(
            f"data_path {root} does not exist or is not a folder: set testbed.fedscale.data_path "
            "to a FEMNIST-format folder, or remove the key to use the built digits"
        )
    clients, n_train, train_labels = _read_mapping(root / MAPPING / "train.csv", root, check_files)
    _, n_test, test_labels = _read_mapping(root / MAPPING / "test.csv", root, check_files)
    return DataSummary(
        path=root,
        clients=len(clients),
        train_samples=n_train,
        test_samples=n_test,
        classes=len(train_labels | test_labels),
    )
