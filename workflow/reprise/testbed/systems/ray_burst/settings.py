"""The `testbed.ray_burst` config block, typed and checked beyond what its schema can say."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reprise.errors import ConfigError

ROLES = ("login", "hpc", "cloud")
"""HPC login node (Ray head, holds the data, runs no task), HPC worker, cloud node."""
WORKLOADS = ("parameter_server", "transform")
DATA_CASES = ("hpc", "s3")
SCHEDULERS = ("default", "data_aware")
KEY = "testbed.ray_burst"
# Set for every Ray node by the run's `ray start` (workers inherit the raylet's environment).
ROLE = "REPRISE_BURST_ROLE"
SHARED = "REPRISE_BURST_SHARED"
CACHE = "REPRISE_BURST_CACHE"
S3_CAP = "REPRISE_BURST_S3_CAP_BPS"


@dataclass(frozen=True)
class DataSize:
    """What the data stage generates: ImageFolder directories and very large images."""

    ps_dirs: int
    images_per_dir: int
    classes: int
    resolution: int
    large_images: int
    large_side: int
    transform_passes: int


@dataclass(frozen=True)
class TopologyLink:
    roles: tuple[str, str]
    rate_mbit: float


@dataclass(frozen=True)
class Topology:
    """One sweep point: its nominal bandwidth (the figure's x) and the links it shapes."""

    name: str
    nominal_mbit: float
    links: tuple[TopologyLink, ...]

    @property
    def cloud_rate_mbit(self) -> float:
        """The login-cloud rate: what an HPC node's S3 download is capped at as well."""
        for link in self.links:
            if set(link.roles) == {"login", "cloud"}:
                return link.rate_mbit
        return self.nominal_mbit


@dataclass(frozen=True)
class BurstSettings:
    cluster: str
    scale: str
    size: DataSize
    topologies: tuple[Topology, ...]
    workloads: tuple[str, ...]
    data_cases: tuple[str, ...]
    schedulers: tuple[str, ...]
    repetitions: int
    seed: int
    s3_endpoint: str | None
    s3_bucket: str
    shaping: bool
    timeout_s: float
    measure_s: float

    def topology(self, name: str) -> Topology:
        for topo in self.topologies:
            if topo.name == name:
                return topo
        known = ", ".join(t.name for t in self.topologies)
        raise ConfigError(f"{KEY}: no topology {name!r} at scale {self.scale!r}; known: {known}")


def _choice(value: str, allowed: Sequence[str], where: str) -> str:
    if value not in allowed:
        raise ConfigError(f"{where}: unknown value {value!r}; allowed: {', '.join(allowed)}")
    return value


def parse_topology(entry: Mapping[str, Any], where: str) -> Topology:
    """A topology: `{name, nominal_mbit, links: [{between: [role, role], rate_mbit}]}`."""
    links = []
    for i, link in enumerate(entry.get("links", [])):
        here = f"{where}.links[{i}]"
        pair = list(link.get("between", []))
        if len(pair) != 2:
            raise ConfigError(f"{here}.between: give two node roles, e.g. [login, cloud]")
        for role in pair:
            _choice(str(role), ROLES, f"{here}.between (node role)")
        if pair[0] == pair[1]:
            raise ConfigError(f"{here}.between: a link joins two different roles")
        rate = link.get("rate_mbit")
        if not isinstance(rate, int | float) or isinstance(rate, bool) or rate <= 0:
            raise ConfigError(
                f"{here}.rate_mbit: must be a positive number of Mbit/s, got {rate!r}"
            )
        links.append(TopologyLink((str(pair[0]), str(pair[1])), float(rate)))
    if not links:
        raise ConfigError(f"{where}.links: a topology shapes at least the login-cloud link")
    nominal = entry.get("nominal_mbit", links[0].rate_mbit)
    if not isinstance(nominal, int | float) or nominal <= 0:
        raise ConfigError(f"{where}.nominal_mbit: must be a positive number, got {nominal!r}")
    name = str(entry.get("name") or f"bw{nominal:g}")
    return Topology(name=name, nominal_mbit=float(nominal), links=tuple(links))


def parse_settings(block: Mapping[str, Any]) -> BurstSettings:
    """Read `testbed.ray_burst`; `scale` picks the data sizes and bandwidths of one scale."""
    scales = block.get("scales", {})
    scale = str(block.get("scale", "laptop"))
    if scale not in scales:
        raise ConfigError(
            f"{KEY}.scale: no scale {scale!r} under {KEY}.scales; known: {', '.join(scales)}"
        )
    entry = scales[scale]
    where = f"{KEY}.scales.{scale}"
    try:
        size = DataSize(**{k: int(entry["data"][k]) for k in DataSize.__dataclass_fields__})
    except KeyError as exc:
        raise ConfigError(f"{where}.data: missing key {exc.args[0]!r}") from None
    topologies = tuple(
        parse_topology(t, f"{where}.topologies[{i}]") for i, t in enumerate(entry["topologies"])
    )
    names = [t.name for t in topologies]
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}.topologies: names must be unique, got {names}")
    s3 = block.get("s3", {}) or {}
    return BurstSettings(
        cluster=str(block.get("cluster", "local-burst")),
        scale=scale,
        size=size,
        topologies=topologies,
        workloads=tuple(
            _choice(w, WORKLOADS, f"{KEY}.workloads") for w in block.get("workloads", WORKLOADS)
        ),
        data_cases=tuple(
            _choice(d, DATA_CASES, f"{KEY}.data") for d in block.get("data", DATA_CASES)
        ),
        schedulers=tuple(
            _choice(s, SCHEDULERS, f"{KEY}.schedulers") for s in block.get("schedulers", SCHEDULERS)
        ),
        repetitions=int(entry.get("repetitions", block.get("repetitions", 3))),
        seed=int(block.get("seed", 0)),
        s3_endpoint=s3.get("endpoint"),
        s3_bucket=str(s3.get("bucket", "reprise-burst")),
        shaping=bool(block.get("shaping", True)),
        timeout_s=float(block.get("timeout_s", 900)),
        measure_s=float(block.get("measure_s", 2)),
    )
