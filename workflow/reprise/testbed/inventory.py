"""Cluster inventories (config/clusters/<name>.yaml): loaded, schema-checked, typed."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import jsonschema
import yaml

from reprise.errors import ProvisionError

SCHEMA = Path(__file__).resolve().parents[3] / "config" / "schema" / "cluster.schema.yaml"
ProviderName = Literal["ssh", "docker", "slurm", "kubernetes"]


@dataclass(frozen=True)
class SshSettings:
    user: str = "root"
    key: Path | None = None
    known_hosts: Path | None = None
    connect_timeout_s: float = 10.0


@dataclass(frozen=True)
class HostEntry:
    """One existing host of an ssh cluster, as the inventory gives it."""

    name: str
    address: str
    peer_address: str
    port: int = 22
    user: str | None = None
    key: Path | None = None
    host_key: str | None = None
    gpus: int = 0
    slots: int = 1
    group: str = "default"
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SizedGroup:
    """`count` identical nodes made by a provider (docker containers, kubernetes pods)."""

    group: str
    count: int
    cpus: float | None = None
    memory: str | None = None
    gpus: int = 0
    slots: int = 1


@dataclass(frozen=True)
class DockerSettings:
    image: str
    network: str
    subnet: str | None
    groups: tuple[SizedGroup, ...]


@dataclass(frozen=True)
class SlurmSettings:
    nodes: int = 1
    """Nodes a Slurm job of this inventory asks for (sbatch --nodes; rules/common.smk)."""
    gpus_per_node: int = 0
    slots_per_node: int = 1
    group: str = "default"
    srun_args: tuple[str, ...] = ()


@dataclass(frozen=True)
class KubernetesSettings:
    namespace: str
    image: str
    image_pull_policy: str
    groups: tuple[SizedGroup, ...]


@dataclass(frozen=True)
class Link:
    """A bandwidth cap between two node groups, in Mbit/s."""

    groups: tuple[str, str]
    rate_mbit: float


@dataclass(frozen=True)
class Inventory:
    name: str
    path: Path
    provider: ProviderName
    python: str = "python3"
    workdir: str = "/tmp/reprise"
    ssh: SshSettings = field(default_factory=SshSettings)
    hosts: tuple[HostEntry, ...] = ()
    docker: DockerSettings | None = None
    slurm: SlurmSettings | None = None
    kubernetes: KubernetesSettings | None = None
    links: tuple[Link, ...] = ()

    @property
    def groups(self) -> tuple[str, ...]:
        """Node groups in the order they first appear."""
        names: list[str] = []
        if self.hosts:
            names = [h.group for h in self.hosts]
        elif self.docker is not None:
            names = [g.group for g in self.docker.groups]
        elif self.kubernetes is not None:
            names = [g.group for g in self.kubernetes.groups]
        elif self.slurm is not None:
            names = [self.slurm.group]
        return tuple(dict.fromkeys(names))


def _schema() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(SCHEMA.read_text())
    return data


def _key_path(error: jsonschema.ValidationError) -> str:
    parts = [str(p) if isinstance(p, str) else f"[{p}]" for p in error.absolute_path]
    return ".".join(parts).replace(".[", "[") or "(top level)"


def _allowed_keys(schema: Mapping[str, Any], root: Mapping[str, Any]) -> list[str]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        schema = root["$defs"][ref.removeprefix("#/$defs/")]
    return sorted(schema.get("properties", {}))


def _explain(error: jsonschema.ValidationError, root: Mapping[str, Any], path: Path) -> str:
    where = _key_path(error)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = _allowed_keys(error.schema, root)
        unknown = sorted(k for k in error.instance if k not in allowed)
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"allowed: {', '.join(allowed)}"
            hints.append(f"unknown key {key!r} ({hint})")
        return f"{path}: at {where}: " + "; ".join(hints)
    if error.validator == "required":
        return f"{path}: at {where}: {error.message}; add it (see {SCHEMA.name})"
    return f"{path}: at {where}: {error.message}"


def _opt_path(value: object) -> Path | None:
    return None if value is None else Path(str(value)).expanduser()


def _sized(items: list[Mapping[str, Any]]) -> tuple[SizedGroup, ...]:
    return tuple(
        SizedGroup(
            group=g.get("group", "default"),
            count=int(g["count"]),
            cpus=None if g.get("cpus") is None else float(g["cpus"]),
            memory=g.get("memory"),
            gpus=int(g.get("gpus", 0)),
            slots=int(g.get("slots", 1)),
        )
        for g in items
    )


def _check_semantics(inv: Inventory) -> None:
    """What a schema cannot say: unique names, links between groups that exist."""
    names = [h.name for h in inv.hosts]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ProvisionError(f"{inv.path}: node names must be unique; repeated: {', '.join(dupes)}")
    known = set(inv.groups)
    for i, link in enumerate(inv.links):
        missing = [g for g in link.groups if g not in known]
        if missing:
            raise ProvisionError(
                f"{inv.path}: at links[{i}].between: no node group {missing[0]!r}; "
                f"groups of this cluster: {', '.join(sorted(known))}"
            )
        if link.groups[0] == link.groups[1]:
            raise ProvisionError(
                f"{inv.path}: at links[{i}].between: a link joins two different groups"
            )


def parse_inventory(data: object, path: Path) -> Inventory:
    """Check `data` (the YAML document of `path`) against the schema and type it."""
    root = _schema()
    validator = jsonschema.Draft202012Validator(root)
    errors = sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        raise ProvisionError(_explain(errors[0], root, path))
    doc = cast(dict[str, Any], data)
    ssh_doc = doc.get("ssh", {})
    ssh = SshSettings(
        user=ssh_doc.get("user", "root"),
        key=_opt_path(ssh_doc.get("key")),
        known_hosts=_opt_path(ssh_doc.get("known_hosts")),
        connect_timeout_s=float(ssh_doc.get("connect_timeout_s", 10.0)),
    )
    hosts = tuple(
        HostEntry(
            name=h["name"],
            address=h["address"],
            peer_address=h.get("peer_address", h["address"]),
            port=int(h.get("port", 22)),
            user=h.get("user"),
            key=_opt_path(h.get("key")),
            host_key=h.get("host_key"),
            gpus=int(h.get("gpus", 0)),
            slots=int(h.get("slots", 1)),
            group=h.get("group", "default"),
            labels=dict(h.get("labels", {})),
        )
        for h in doc.get("nodes", [])
    )
    name = path.stem
    docker = None
    if "docker" in doc:
        d = doc["docker"]
        docker = DockerSettings(
            image=d.get("image", "reprise-node:latest"),
            network=d.get("network", f"reprise-{name}"),
            subnet=d.get("subnet"),
            groups=_sized(d["groups"]),
        )
    slurm = None
    if "slurm" in doc or doc["provider"] == "slurm":
        s = doc.get("slurm", {})
        slurm = SlurmSettings(
            nodes=int(s.get("nodes", 1)),
            gpus_per_node=int(s.get("gpus_per_node", 0)),
            slots_per_node=int(s.get("slots_per_node", 1)),
            group=s.get("group", "default"),
            srun_args=tuple(s.get("srun_args", [])),
        )
    kube = None
    if "kubernetes" in doc:
        k = doc["kubernetes"]
        kube = KubernetesSettings(
            namespace=k.get("namespace", "default"),
            image=k.get("image", "reprise-node:latest"),
            image_pull_policy=k.get("image_pull_policy", "IfNotPresent"),
            groups=_sized(k["groups"]),
        )
    links = tuple(
        Link(groups=(link["between"][0], link["between"][1]), rate_mbit=float(link["rate_mbit"]))
        for link in doc.get("links", [])
    )
    python = doc.get("python", "python3")
    workdir = doc.get("workdir", "/tmp/reprise")
    if doc["provider"] == "slurm":
        # Slurm nodes share the controller's file system: a relative path means the same file
        # everywhere once made absolute here (srun steps start in the workdir, not here)
        workdir = str(Path(workdir).absolute())
        if "/" in python and not Path(python).is_absolute():
            python = str(Path(python).absolute())
    inventory = Inventory(
        name=name,
        path=path,
        provider=doc["provider"],
        python=python,
        workdir=workdir,
        ssh=ssh,
        hosts=hosts,
        docker=docker,
        slurm=slurm,
        kubernetes=kube,
        links=links,
    )
    _check_semantics(inventory)
    return inventory


def load_inventory(path: str | Path) -> Inventory:
    """Read and check config/clusters/<name>.yaml; every error names the file and the key."""
    path = Path(path)
    if not path.is_file():
        folder = path.parent
        known = sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []
        raise ProvisionError(
            f"no cluster inventory {path}; clusters in {folder}: {', '.join(known) or 'none'}"
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ProvisionError(f"{path}: not a readable YAML document: {exc}") from None
    return parse_inventory(data, path)
