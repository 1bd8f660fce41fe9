"""The one-node Slurm cluster of the tests, started once per session (a fixture for conftest.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

INFRA = Path(__file__).resolve().parent
SLURM_DIR = Path(os.environ.get("REPRISE_SLURM_DIR", "/tmp/reprise-infra/slurm"))


@pytest.fixture(scope="session")
def slurm() -> Iterator[dict[str, str]]:
    """A running one-node Slurm cluster; yields the environment its clients need."""
    installed = all(shutil.which(d) for d in ("slurmctld", "slurmd", "munged", "sbatch"))
    if os.geteuid() != 0:
        pytest.skip(
            "a local Slurm cluster needs root (munged/slurmctld/slurmd switch users); "
            "run the suite as root, as CI does, to include the Slurm tests"
        )
    if not installed and shutil.which("apt-get") is None:
        pytest.skip("slurm-wlm and munge are not installed and apt-get is not available")
    started = subprocess.run(
        ["bash", str(INFRA / "start-slurm.sh")],
        env={**os.environ, "REPRISE_SLURM_DIR": str(SLURM_DIR)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    if started.returncode != 0:
        pytest.fail(f"start-slurm.sh failed:\n{started.stdout}\n{started.stderr}")
    try:
        yield {
            "SLURM_CONF": str(SLURM_DIR / "etc" / "slurm.conf"),
            # the first status query after 2 s, not 40 s: MinJobAge=600 >= 3 x 2
            "REPRISE_SLURM_INIT_SECONDS": "2",
            "REPRISE_SLURM_JOBS": "4",
        }
    finally:
        subprocess.run(
            ["bash", str(INFRA / "stop-slurm.sh")],
            env={**os.environ, "REPRISE_SLURM_DIR": str(SLURM_DIR)},
            capture_output=True,
            timeout=120,
        )
