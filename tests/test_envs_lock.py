"""envs/*.yaml pin the same versions as requirements.lock (conda channels are unreachable here)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
# conda package name -> PyPI name where they differ
CONDA_TO_PYPI = {"matplotlib-base": "matplotlib", "pyyaml": "PyYAML"}


def lock() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        if "==" in line:
            name, version = line.split("==", 1)
            pins[name.lower()] = version.strip()
    return pins


def test_every_env_pin_agrees_with_the_lock() -> None:
    pins = lock()
    envs = sorted((REPO / "envs").glob("*.yaml"))
    assert envs
    for env in envs:
        deps = yaml.safe_load(env.read_text())["dependencies"]
        for dep in deps:
            if not isinstance(dep, str) or dep in ("pip",) or dep.startswith("python="):
                continue
            match = re.fullmatch(r"([A-Za-z0-9_.\-]+)=([0-9][^=]*)", dep)
            assert match, f"{env.name}: {dep!r} is not pinned exactly (name=version)"
            name, version = match.groups()
            pypi = CONDA_TO_PYPI.get(name, name).lower()
            assert pins.get(pypi) == version, (
                f"{env.name}: {dep} but requirements.lock has {pins.get(pypi)}"
            )


def test_pyproject_pins_agree_with_the_lock() -> None:
    pins = lock()
    text = (REPO / "pyproject.toml").read_text()
    for name, version in re.findall(r'"([A-Za-z0-9_\-]+)(?:\[[a-z]+\])?==([^"]+)"', text):
        assert pins.get(name.lower()) == version, f"pyproject pins {name}=={version}"
