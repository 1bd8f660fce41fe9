"""Throughput profiles: iterations/second per (model, global batch, GPU count), as upstream."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

from reprise.errors import TraceError

GPU_COLUMNS: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)


@dataclass(frozen=True)
class ProfileRow:
    """One row of a profile file: the raw cell texts by GPU count, in column order."""

    model: str
    batch_size: int
    cells: tuple[tuple[int, str], ...]

    def tput(self, gpus: int) -> float:
        """Throughput at `gpus` GPUs; `nan` cells give NaN, a missing/empty cell raises."""
        for g, text in self.cells:
            if g == gpus:
                if text.strip() == "":
                    raise TraceError(
                        f"throughput profile {self.model}.csv: empty cell for batch "
                        f"{self.batch_size} at {gpus} GPUs"
                    )
                return float(text)
        raise TraceError(
            f"throughput profile {self.model}.csv has no column for {gpus} GPUs "
            f"(batch {self.batch_size})"
        )

    def columns(self) -> tuple[int, ...]:
        return tuple(g for g, _ in self.cells)


class ThroughputProfiles:
    """All profiles of one GPU type; `model` is the file stem, as upstream."""

    def __init__(self, rows: dict[tuple[str, int], ProfileRow], source: str) -> None:
        self._rows = rows
        self.source = source
        self._cache: dict[tuple[str, int, int], float] = {}

    @property
    def models(self) -> set[str]:
        return {m for m, _ in self._rows}

    def has(self, model: str, batch_size: int) -> bool:
        return (model, batch_size) in self._rows

    def row(self, model: str, batch_size: int) -> ProfileRow:
        try:
            return self._rows[(model, batch_size)]
        except KeyError:
            raise TraceError(
                f"no throughput profile for model {model!r} with global batch {batch_size} "
                f"in {self.source}"
            ) from None

    def tput(self, model: str, batch_size: int, gpus: int) -> float:
        """Iterations per second; cached because every policy calls it in its inner loop."""
        key = (model, batch_size, gpus)
        value = self._cache.get(key)
        if value is None:
            value = self.row(model, batch_size).tput(gpus)
            self._cache[key] = value
        return value


def load_profiles(directory: Path | str) -> ThroughputProfiles:
    """Read every `*.csv` of a throughput directory (header global_batch_size,1,2,...)."""
    directory = Path(directory)
    files = sorted(directory.glob("*.csv"))
    if not files:
        raise TraceError(f"{directory}: no throughput profile files (*.csv) found")
    rows: dict[tuple[str, int], ProfileRow] = {}
    for path in files:
        with path.open(newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if not header or header[0] != "global_batch_size":
                raise TraceError(
                    f"{path}: line 1: header must start with 'global_batch_size', got {header}"
                )
            try:
                gpus = [int(h) for h in header[1:]]
            except ValueError:
                raise TraceError(
                    f"{path}: line 1: GPU columns must be integers: {header[1:]}"
                ) from None
            for lineno, cells in enumerate(reader, start=2):
                if not cells:
                    continue
                try:
                    batch = int(cells[0])
                except ValueError:
                    raise TraceError(
                        f"{path}: line {lineno}, column global_batch_size: "
                        f"{cells[0]!r} is not an integer"
                    ) from None
                texts = list(cells[1:]) + [""] * (len(gpus) - len(cells) + 1)
                for g, text in zip(gpus, texts, strict=False):
                    stripped = text.strip()
                    if stripped in ("", "nan"):
                        continue
                    try:
                        value = float(stripped)
                    except ValueError:
                        raise TraceError(
                            f"{path}: line {lineno}, column {g}: {text!r} is not a number"
                        ) from None
                    if math.isnan(value) or value < 0:
                        raise TraceError(f"{path}: line {lineno}, column {g}: negative throughput")
                rows[(path.stem, batch)] = ProfileRow(
                    path.stem, batch, tuple(zip(gpus, texts, strict=False))
                )
    return ThroughputProfiles(rows, str(directory))
