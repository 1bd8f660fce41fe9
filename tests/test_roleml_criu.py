"""CRIU for role offloading: missing or old CRIU stops the run before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from reprise.errors import ProvisionError
from reprise.testbed.systems.roleml.criu import require_criu


def _fake_criu(tmp_path: Path, printed: str) -> Path:
    exe = tmp_path / "criu"
    exe.write_text(f"#!/bin/sh\necho '{printed}'\n")
    exe.chmod(0o755)
    return exe


def test_missing_criu_names_the_path_and_the_build_step(tmp_path: Path) -> None:
    with pytest.raises(ProvisionError) as err:
        require_criu(tmp_path / "nowhere" / "criu")
    assert f"CRIU not found at {tmp_path / 'nowhere' / 'criu'}" in str(err.value)
    assert "build-criu.sh" in str(err.value)


def test_old_criu_names_the_version_found_and_the_one_needed(tmp_path: Path) -> None:
    exe = _fake_criu(tmp_path, "Version: 3.17.1")
    with pytest.raises(ProvisionError, match=r"is 3\.17\.1; role offloading needs 4\.2 or newer"):
        require_criu(exe)


def test_new_enough_criu_passes(tmp_path: Path) -> None:
    assert require_criu(_fake_criu(tmp_path, "Version: 4.2.1")) == (4, 2, 1)


def test_criu_without_a_version_line_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ProvisionError, match="printed no version"):
        require_criu(_fake_criu(tmp_path, "criu: unknown option"))
