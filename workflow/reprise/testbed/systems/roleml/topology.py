"""E-Tree topologies (client groups under a root), checked and turned into RoleML actor specs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reprise.errors import ConfigError

CONDUCTOR = "conductor"
ROLES = "reprise.testbed.systems.roleml.roles"
# RoleML's gRPC messaging and its threaded group calls
_MESSAGING = "roleml.extensions.messaging.default.comb"
_GROUPS = "roleml.core.actor.group.impl.threaded"


@dataclass(frozen=True)
class Topology:
    """A two-layer E-Tree: trainers in groups, one layer-0 aggregator per group, the root on top.

    `groups` maps each group's head (the client that runs its layer-0 aggregator) to its members;
    `root` runs the coordinator and the layer-1 aggregator.
    """

    name: str
    root: str
    groups: dict[str, tuple[str, ...]]

    @property
    def clients(self) -> tuple[str, ...]:
        return tuple(c for members in self.groups.values() for c in members)


def parse_topology(name: str, spec: Any, where: str) -> Topology:
    """Check one `testbed.roleml.topologies.<name>` entry; errors name the key and the fix."""
    key = f"{where}: topologies.{name}"
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{key} must be a mapping with `root` and `groups`, got {spec!r}")
    unknown = set(spec) - {"root", "groups"}
    if unknown:
        raise ConfigError(f"{key} has unknown keys {sorted(unknown)}; allowed: root, groups")
    groups_raw = spec.get("groups")
    if not isinstance(groups_raw, Mapping) or not groups_raw:
        raise ConfigError(f"{key}.groups must map each group head to its member clients")
    groups: dict[str, tuple[str, ...]] = {}
    seen: dict[str, str] = {}
    for head, members in groups_raw.items():
        if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
            raise ConfigError(
                f"{key}.groups.{head} must be a list of client names, got {members!r}"
            )
        if head not in members:
            raise ConfigError(
                f"{key}.groups.{head}: a group head trains too, so it must be one of its members "
                f"(add {head!r} to the list)"
            )
        for member in members:
            if member == CONDUCTOR:
                raise ConfigError(f"{key}.groups.{head}: {CONDUCTOR!r} is the control node's name")
            if member in seen:
                raise ConfigError(
                    f"{key}: client {member!r} is in groups {seen[member]!r} and {head!r}; "
                    "each client trains in exactly one group"
                )
            seen[member] = head
        groups[str(head)] = tuple(members)
    root = spec.get("root")
    if root not in groups:
        raise ConfigError(
            f"{key}.root is {root!r}; it must be one of the group heads {sorted(groups)}"
        )
    return Topology(name=name, root=str(root), groups=groups)


def _role(cls: str, **options: Any) -> dict[str, Any]:
    return {"class": f"{ROLES}.{cls}", "options": options}


def actor_specs(
    topo: Topology,
    addresses: Mapping[str, str],
    data_dir: Path,
    settings: Mapping[str, Any],
) -> dict[str, dict[str, Any]]:
    """One RoleML ActorBootstrapSpec per actor (each client and the conductor).

    Every actor knows every other's address: an offloaded role may be called from anywhere.
    """
    missing = [a for a in (*topo.clients, CONDUCTOR) if a not in addresses]
    if missing:
        raise ConfigError(f"topology {topo.name}: no address for actors {missing}")
    common = {
        "messaging_component": f"{_MESSAGING}.DefaultMessagingComponent",
        "collective_implementor": f"{_GROUPS}.ThreadedCollectiveImplementor",
        "log_console_level": "INFO",
    }
    n = len(topo.clients)
    specs: dict[str, dict[str, Any]] = {}
    for index, client in enumerate(topo.clients):
        roles: dict[str, Any] = {
            "trainer": _role(
                "EtreeTrainer",
                data_dir=str(data_dir),
                client_index=index,
                num_clients=n,
                lr=float(settings["lr"]),
                batch_size=int(settings["batch_size"]),
                seed=int(settings["seed"]),
            )
        }
        relationships: dict[str, list[str]] = {}
        if client in topo.groups:
            roles["aggregator-0"] = _role(
                "LayeredAggregator", layer=0, num_steps=int(settings["local_steps"])
            )
            relationships["source-0"] = [f"{m}/trainer" for m in topo.groups[client]]
        if client == topo.root:
            roles["aggregator-1"] = _role("LayeredAggregator", layer=1, num_steps=1)
            roles["coordinator"] = _role(
                "EtreeCoordinator",
                data_dir=str(data_dir),
                seed=int(settings["seed"]),
                control_dir=str(settings.get("control_dir", "")),
            )
            relationships["source-1"] = [f"{h}/aggregator-0" for h in topo.groups]
            relationships["root"] = [f"{client}/aggregator-1"]
        specs[client] = {
            **common,
            "name": client,
            "address": addresses[client],
            "roles": roles,
            "relationships": relationships,
            "contacts": {a: addresses[a] for a in addresses if a != client},
        }
    specs[CONDUCTOR] = {
        **common,
        "name": CONDUCTOR,
        "address": addresses[CONDUCTOR],
        "roles": {"driver": _role("RunDriver")},
        "relationships": {"coordinator": [f"{topo.root}/coordinator"]},
        "contacts": {a: addresses[a] for a in addresses if a != CONDUCTOR},
    }
    return specs
