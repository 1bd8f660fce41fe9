"""Cluster specs (`num_switch,num_node_p_switch,num_gpu_p_node,...`, one data row)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from reprise.errors import TraceError

_REQUIRED = ("num_switch", "num_node_p_switch", "num_gpu_p_node")


@dataclass(frozen=True)
class ClusterSpec:
    name: str
    num_switch: int
    nodes_per_switch: int
    gpus_per_node: int

    @property
    def num_nodes(self) -> int:
        return self.num_switch * self.nodes_per_switch

    @property
    def num_gpus(self) -> int:
        return self.num_nodes * self.gpus_per_node


def load_cluster_spec(path: Path | str) -> ClusterSpec:
    path = Path(path)
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    if len(rows) != 1:
        raise TraceError(f"{path}: a cluster spec holds exactly one data row, found {len(rows)}")
    row = rows[0]
    values: dict[str, int] = {}
    for key in _REQUIRED:
        text = row.get(key)
        if text is None:
            raise TraceError(f"{path}: missing column {key!r}")
        if not text.strip().isdigit() or int(text) <= 0:
            raise TraceError(f"{path}: line 2, column {key}: {text!r} is not a positive integer")
        values[key] = int(text)
    return ClusterSpec(
        path.stem, values["num_switch"], values["num_node_p_switch"], values["num_gpu_p_node"]
    )
