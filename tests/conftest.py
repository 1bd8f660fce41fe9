"""Shared fixtures: the offline mirror of the upstream data and loaders on top of it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from infra.slurm import slurm  # noqa: F401  (session fixture: Slurm starts once)
from testbed_fixtures import netns_cluster, throwaway_node  # noqa: F401  (sshd netns nodes, session-wide)

from reprise.data.clusters import ClusterSpec, load_cluster_spec
from reprise.data.profiles import ThroughputProfiles, load_profiles
from reprise.data.traces import TraceJob, load_trace

REPO = Path(__file__).resolve().parents[1]


def mirror_dir() -> Path:
    """The offline copy of upstream data: $REPRISE_MIRROR, else ../shared/upstream."""
    env = os.environ.get("REPRISE_MIRROR")
    return Path(env) if env else REPO.parent / "shared" / "upstream"


ARTIFACT = "ElasticFlow-artifact/ElasticFlow"


@pytest.fixture(scope="session")
def mirror() -> Path:
    path = mirror_dir()
    if not (path / "MANIFEST.tsv").exists():
        pytest.skip(f"no upstream mirror at {path} (set REPRISE_MIRROR)")
    return path


@pytest.fixture(scope="session")
def t4_profiles(mirror: Path) -> ThroughputProfiles:
    return load_profiles(mirror / ARTIFACT / "scheduler/throughputs_T4")


@pytest.fixture(scope="session")
def a100_profiles(mirror: Path) -> ThroughputProfiles:
    return load_profiles(mirror / ARTIFACT / "scheduler/throughputs_A100")


@pytest.fixture(scope="session")
def fig8a_trace(mirror: Path, t4_profiles: ThroughputProfiles) -> list[TraceJob]:
    return load_trace(
        mirror / ARTIFACT / "traces_for_ElasticFlow/elasticVpollux_e.csv", t4_profiles
    )


@pytest.fixture(scope="session")
def n16g4(mirror: Path) -> ClusterSpec:
    return load_cluster_spec(mirror / ARTIFACT / "scheduler/cluster_specs/n16g4.csv")
