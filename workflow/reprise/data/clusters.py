"""Cluster specs (`num_switch,num_node_p_switch,num_gpu_p_node,...`, one data row)."""

from __future__ import annotations

import csv
import re
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


def cluster_from_name(name: str) -> ClusterSpec:
    """The shape an upstream spec name states (`n16g4`: 16 nodes of 4 GPUs), for checks made
    before the spec file itself has been fetched."""
    match = re.fullmatch(r"n([0-9]+)g([0-9]+)", name)
    if match is None or int(match[1]) <= 0 or int(match[2]) <= 0:
        raise TraceError(f"cluster name {name!r} is not of the form n<nodes>g<GPUs per node>")
    return ClusterSpec(name, 1, int(match[1]), int(match[2]))
