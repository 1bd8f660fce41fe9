"""The provider and launcher of an inventory: one place that maps `provider:` to code."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from reprise.testbed.inventory import Inventory
from reprise.testbed.nodes import Node, Provider, RunLauncher


def make_provider(inventory: Inventory, state_dir: Path) -> Provider:
    """Imports lazily: each provider needs its own client library (docker, kubernetes, fabric)."""
    if inventory.provider == "docker":
        from reprise.testbed.provision.docker import DockerProvider

        return DockerProvider(inventory, state_dir)
    if inventory.provider == "ssh":
        from reprise.testbed.provision.ssh import SshProvider

        return SshProvider(inventory, state_dir)
    if inventory.provider == "slurm":
        from reprise.testbed.provision.slurm import SlurmProvider

        return SlurmProvider(inventory, state_dir)
    from reprise.testbed.provision.kubernetes import KubernetesProvider

    return KubernetesProvider(inventory, state_dir)


def make_launcher(inventory: Inventory, nodes: Sequence[Node]) -> RunLauncher:
    """Docker nodes run sshd, so they share the SSH launcher with real hosts."""
    if inventory.provider in ("docker", "ssh"):
        from reprise.testbed.lifecycle import SshLauncher
        from reprise.testbed.provision.ssh import Connections

        return SshLauncher(nodes, Connections(timeout_s=inventory.ssh.connect_timeout_s))
    if inventory.provider == "slurm":
        from reprise.testbed.provision.slurm import SrunLauncher

        return SrunLauncher(inventory, nodes)
    from reprise.testbed.provision.kubernetes import KubernetesLauncher

    return KubernetesLauncher(inventory, nodes)
