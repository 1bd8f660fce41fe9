"""CRIU for role offloading: missing or old CRIU stops the run before anything starts."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from reprise.errors import ProvisionError
from reprise.testbed.systems.roleml import criu
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


BUILD_SCRIPT = Path(__file__).resolve().parents[1] / "workflow/testbed/criu/build-criu.sh"

FAKE_APT = """#!/bin/bash
# records its arguments; checks the private source list; `source` hands out a fake CRIU tarball
echo "$*" >>"$APT_LOG"
for arg in "$@"; do
  case $arg in
    Dir::Etc::sourcelist=*)
      list=${arg#*=}
      [[ $list = /* && -f $list ]] || { echo "apt-get: no list $list" >&2; exit 100; };;
  esac
done
if [[ " $* " == *" source "* ]]; then tar czf criu_4.2.orig.tar.gz -C "$FAKE_SOURCE" criu-4.2; fi
"""

FAKE_MAKEFILE = """criu:
\tmkdir -p criu && printf '#!/bin/sh\\necho "Version: 4.2.1"\\n' >criu/criu && chmod +x criu/criu
"""


def test_build_script_builds_into_relative_paths_as_the_rule_passes_them(tmp_path: Path) -> None:
    """The rule hands build-criu.sh paths relative to the workflow; the script changes directory,
    so it must resolve them first (apt read a relative source list under /etc/apt and failed)."""
    fake_bin, source = tmp_path / "bin", tmp_path / "source" / "criu-4.2"
    fake_bin.mkdir()
    source.mkdir(parents=True)
    (fake_bin / "apt-get").write_text(FAKE_APT)
    (fake_bin / "apt-get").chmod(0o755)
    (source / "Makefile").write_text(FAKE_MAKEFILE)
    env = {
        **os.environ,
        "PATH": f"{fake_bin}:{os.environ['PATH']}",
        "APT_LOG": str(tmp_path / "apt.log"),
        "FAKE_SOURCE": str(source.parent),
        "DEBIAN_MIRROR": "http://deb.example.org/debian",
    }
    workflow = tmp_path / "workflow"
    workflow.mkdir()
    done = subprocess.run(
        ["bash", str(BUILD_SCRIPT), "results/criu/work", "results/criu/bin", "sid"],
        cwd=workflow,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    built = workflow / "results/criu/bin/criu"
    assert require_criu(built) == (4, 2, 1)
    calls = (tmp_path / "apt.log").read_text()
    assert f"Dir::Etc::sourcelist={workflow}/results/criu/work/sid-src.sources" in calls


def _criu_or_skip() -> str:
    """$REPRISE_CRIU, the pipeline's CRIU or one on PATH, whichever is >= 4.2 (else skip)."""
    from tests.test_roleml_offload import _criu_or_skip as usable_criu

    return usable_criu()


def _wait_for(done: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, f"{what} did not come within {seconds:.0f}s"
        time.sleep(0.05)


def _tails(*logs: Path) -> str:
    """The last lines of each actor's log, for a failure message."""
    parts = []
    for log in logs:
        lines = log.read_text(errors="replace").splitlines() if log.exists() else ["(no log)"]
        parts.append(f"--- {log.name}\n" + "\n".join(lines[-15:]))
    return "\n".join(parts)


@pytest.mark.slow
def test_trainer_process_is_checkpointed_and_restored_mid_run(tmp_path: Path) -> None:
    """A trainer actor is dumped while the tree trains and restored; its epoch counter goes on."""
    pytest.importorskip("roleml", reason="no roleml extra: pip install -e '.[roleml]'")
    from reprise.testbed.systems.roleml.data import make_digit_batches
    from reprise.testbed.systems.roleml.local import free_port, local_actors, wait_listening
    from reprise.testbed.systems.roleml.topology import CONDUCTOR, actor_specs, parse_topology

    binary = _criu_or_skip()
    data = tmp_path / "data"
    make_digit_batches(data, 0.2, 0)
    spec = {
        "root": "client1",
        "groups": {"client1": ["client1", "client3"], "client2": ["client2"]},
    }
    topo = parse_topology("t", spec, "test")
    addresses = {a: f"127.0.0.1:{free_port()}" for a in (*topo.clients, CONDUCTOR)}
    control = tmp_path / "control"
    control.mkdir()
    options = {"lr": 0.05, "batch_size": 32, "seed": 0, "local_steps": 2}
    specs = actor_specs(topo, addresses, data, {**options, "control_dir": str(control)})
    rounds_csv = tmp_path / "rounds.csv"
    specs[CONDUCTOR]["roles"]["driver"]["options"] = {
        "num_rounds": 40,
        "rounds_csv": str(rounds_csv),
    }
    spec_path = tmp_path / "client3.json"
    spec_path.write_text(json.dumps(specs["client3"]))
    log = tmp_path / "client3.log"
    argv = [sys.executable, "-u", "-m", "reprise.testbed.systems.roleml.actor", str(spec_path)]
    proc = criu.start_namespaced([*argv, "--detachable"], log)
    restored: criu.NamespacedProcess | None = None
    try:
        assert proc.outer is not None
        wait_listening(addresses["client3"], proc.outer, log, 60)
        with local_actors(tmp_path / "run") as actors:
            for client in ("client1", "client2"):
                actors.start(client, specs[client])
            actors.start(CONDUCTOR, specs[CONDUCTOR])
            while not rounds_csv.exists() or len(rounds_csv.read_text().splitlines()) < 4:
                time.sleep(0.2)
            # as the offload manager does: hold the coordinator between rounds, so no request to
            # or from the trainer is in flight when it is dumped (CI once caught one mid-call,
            # and its restored sockets, closed, lost it)
            (control / "pause").write_text("test\n")
            _wait_for(lambda: (control / "paused").exists(), 120, "the pause between rounds")
            criu.checkpoint(binary, proc, tmp_path / "images")
            assert not proc.alive()
            epochs_before = log.read_text().count("local epoch")
            restored, _ = criu.restore(binary, tmp_path / "images")
            (control / "pause").unlink()
            try:
                code = actors.procs[CONDUCTOR].wait(240)
            except subprocess.TimeoutExpired:
                code = None
            assert code == 0, _tails(log, *actors.logs.values())
    finally:
        proc.kill()
        if restored is not None:
            restored.kill()
    with rounds_csv.open() as f:
        rounds = [int(r["round"]) for r in csv.DictReader(f)]
    assert rounds == list(range(40))
    epochs = [
        int(line.split("local epoch ")[1].split()[0])
        for line in log.read_text().splitlines()
        if "local epoch" in line
    ]
    # the restored trainer continues its own count: no restart from 1, no gap
    assert epochs == list(range(1, len(epochs) + 1)) and len(epochs) > epochs_before
    assert restored is not None
    deadline = time.monotonic() + 10
    while restored.alive() and time.monotonic() < deadline:
        time.sleep(0.1)  # SIGKILL lands asynchronously
    assert not restored.alive()
