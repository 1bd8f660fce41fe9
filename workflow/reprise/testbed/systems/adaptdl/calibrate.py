"""The CPU rate of each tiny model on this machine's nodes, measured at the start of
`snakemake pollux_testbed` (config `testbed.pollux_testbed.samples_per_s: measure`).

A reduced-trace job's work is its duration times a rate times its replicas. With a fixed rate
(measured once, on another load) the replicas trained up to 2x faster or 4x slower than the
durations assumed, so whether later jobs found grown ones holding every slot, and Pollux shrank
one, depended on the machine's load. Here the rate is measured on the run's own nodes just
before the trace is made: real AdaptDL replicas of each model (the node image, the run's
trainer, torch threads, batch bounds and hint cadence), `replicas_per_node` on every node at
once, one model at a time; each replica's samples between two readings of its progress file,
the first `warmup_s` after every replica made its first step, averaged over the replicas. With
as many replicas to a node as it has slots (the default) that is a slot's rate when the cluster
is full, the run's sharing where an arrival makes Pollux shrink a grown job; a replica with a
node to itself trains faster, and the run's pace says by how much. (One replica per node, the
CPU counterpart of a job alone on its GPUs, gave a fresh-clone run twice the work: pace 0.28 at
load 5-9, every arrival queued behind 1-replica jobs and no job shrunk.)
"""

from __future__ import annotations

import json
import os
import shlex
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from reprise.errors import ConfigError, TestbedError
from reprise.testbed.lifecycle import SshLauncher, TestbedRun
from reprise.testbed.nodes import Launched, Node
from reprise.testbed.systems.adaptdl.controller import PORT_BASE, ControllerSettings, replica_argv
from reprise.testbed.systems.adaptdl.trainer import replica_env
from reprise.testbed.trainers.netif import NODE_ADDRESS_ENV

MEASURE = "measure"
"""The config value of `samples_per_s` that asks for this measurement."""
ENDLESS = 10**9
"""Samples a measuring replica is given: it is stopped long before."""
STEP_POLL_S = 2.0
"""Seconds between looks for the replicas' first step."""
PORT_OFFSET = 1000
"""Measuring replicas' ports start here above the controller's (they never meet, but a port
left in TIME_WAIT by one is not picked by the other)."""


@dataclass(frozen=True)
class CalibrationSettings:
    """How the rates are measured (config `testbed.pollux_testbed.calibrate`)."""

    warmup_s: float = 5.0
    """Seconds from every replica's first step to the first reading (its first steps are
    slower)."""
    seconds: float = 15.0
    """Seconds between the two readings the rate is taken over."""
    start_timeout_s: float = 180.0
    """How long the replicas may take to their first step (import, model build, data)."""
    replicas_per_node: int = 2
    """Replicas of the measured model on every node at once (at most the node's slots)."""

    def check(self) -> None:
        if min(self.warmup_s, self.seconds, self.start_timeout_s) <= 0:
            raise ConfigError("calibrate: warmup_s, seconds and start_timeout_s must be > 0")
        if self.replicas_per_node < 1:
            raise ConfigError("calibrate: replicas_per_node must be at least 1")


@dataclass(frozen=True)
class _Replica:
    node: Node
    proc: Launched
    status: str


def _reading(launcher: SshLauncher, replica: _Replica) -> tuple[float, float] | None:
    """(time, samples) of the replica's last progress record; None before its first step."""
    got = launcher.run(replica.node, f"cat {shlex.quote(replica.status)}", "reading status", 15)
    if not got.ok or not got.stdout.strip():
        return None
    try:
        status = json.loads(got.stdout)
    except ValueError:
        return None  # replaced whole by the trainer; a torn read is a missing one
    if "samples" not in status:
        return None
    return float(status["time"]), float(status["samples"])


def _check_running(launcher: SshLauncher, model: str, replicas: list[_Replica]) -> None:
    for replica in replicas:
        if launcher.poll(replica.proc) is not None:
            tail = launcher.tail(replica.node, replica.proc.log)
            raise TestbedError(
                f"measuring {model}: {replica.proc.name} ended early; its log "
                f"{replica.proc.log} ends with:\n{tail}"
            )


def _measure_model(
    run: TestbedRun,
    model: str,
    batch_size: int,
    controller: ControllerSettings,
    calib: CalibrationSettings,
    port: int,
) -> list[float]:
    """Samples/s of each replica of `model` running `replicas_per_node` to a node, all at once."""
    launcher = run.launcher
    assert isinstance(launcher, SshLauncher)
    replicas = []
    for node in run.nodes:
        for k in range(min(calib.replicas_per_node, node.slots)):
            name = f"rate-{model}-{node.name}-{k}"
            directory = f"{node.workdir}/adaptdl/{run.run_id}/rates/{name}"
            # AdaptDL lists its checkpoint folder at start (restart 0 finds it empty)
            made = launcher.run(
                node, f"mkdir -p {shlex.quote(directory)}/checkpoint", "making a job folder"
            )
            if not made.ok:
                raise TestbedError(f"node {node.name!r}: cannot make {directory}: {made.stderr}")
            port += 1
            env = replica_env(
                job_id=name,
                checkpoint_path=Path(directory) / "checkpoint",
                master_addr=node.peer_address,
                master_port=port,
                num_replicas=1,
                rank=0,
                num_nodes=1,
                restarts=0,
            )
            env.update(
                {NODE_ADDRESS_ENV: node.peer_address, "OMP_NUM_THREADS": str(controller.threads)}
            )
            status = f"{directory}/status.json"
            argv = replica_argv(node.python, model, batch_size, ENDLESS, 0, controller, status)
            replicas.append(_Replica(node, run.start(node, name, argv, env), status))
    try:
        deadline = time.monotonic() + calib.start_timeout_s
        while any(_reading(launcher, r) is None for r in replicas):
            _check_running(launcher, model, replicas)
            if time.monotonic() > deadline:
                raise TestbedError(
                    f"measuring {model}: no first step within {calib.start_timeout_s:g} s "
                    "(raise calibrate.start_timeout_s)"
                )
            time.sleep(STEP_POLL_S)
        time.sleep(calib.warmup_s)
        first = [_reading(launcher, r) for r in replicas]
        time.sleep(calib.seconds)
        second = [_reading(launcher, r) for r in replicas]
        _check_running(launcher, model, replicas)
    finally:
        for replica in replicas:
            run.stop(replica.proc)
    rates = []
    for replica, a, b in zip(replicas, first, second, strict=True):
        if a is None or b is None or b[0] <= a[0]:
            raise TestbedError(
                f"measuring {model}: {replica.proc.name} reported no progress in "
                f"{calib.seconds:g} s after its first steps (raise calibrate.seconds)"
            )
        rates.append((b[1] - a[1]) / (b[0] - a[0]))
    return rates


def measure_rates(
    models: Mapping[str, int],
    inventory_path: Path,
    controller: ControllerSettings,
    calib: CalibrationSettings,
    out_dir: Path,
    state_dir: Path,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Measure each model (name -> the batch size it is trained at) on the inventory's nodes;
    returns the record written to out_dir/rates.json (`samples_per_s` by model, each replica's
    rate, the settings, the load average before and after, the wall time)."""
    from reprise.testbed.inventory import load_inventory
    from reprise.testbed.providers import make_launcher, make_provider

    controller.check()
    calib.check()
    if not models:
        raise ConfigError("no models to measure")
    inventory = load_inventory(inventory_path)
    provider = make_provider(inventory, state_dir)
    launcher = make_launcher(inventory, [])
    if not isinstance(launcher, SshLauncher):
        raise TestbedError(
            f"measuring rates needs SSH-reachable nodes (docker or ssh), not {inventory.provider}"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    started = time.monotonic()
    measured: dict[str, dict[str, Any]] = {}
    with TestbedRun(provider, launcher, out_dir / "run") as run:
        for i, (model, batch) in enumerate(models.items()):
            rates = _measure_model(
                run, model, batch, controller, calib, PORT_BASE + PORT_OFFSET + 100 * i
            )
            measured[model] = {
                "samples_per_s": round(statistics.mean(rates), 1),
                "batch_size": batch,
                "replicas": [round(r, 1) for r in rates],
            }
            progress(
                f"{model} (batch {batch}): {measured[model]['samples_per_s']} samples/s per "
                f"replica ({', '.join(f'{r:.0f}' for r in rates)})"
            )
    record = {
        "samples_per_s": {m: v["samples_per_s"] for m, v in measured.items()},
        "models": measured,
        "nodes": [{"name": n.name, "slots": n.slots} for n in run.nodes],
        "calibrate": asdict(calib),
        "threads": controller.threads,
        "model_size": controller.model_size,
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "wall_s": round(time.monotonic() - started, 1),
    }
    tmp = out_dir / ".rates.json.part"
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    tmp.replace(out_dir / "rates.json")
    return record


def rates_of(samples_per_s: Mapping[str, float] | str, measured: Path | None) -> dict[str, float]:
    """The rates a trace is made with: the config's fixed ones, or (`measure`) those of the
    measurement record at `measured`."""
    if isinstance(samples_per_s, str):
        if samples_per_s != MEASURE:
            raise ConfigError(
                f"pollux_testbed.samples_per_s: {samples_per_s!r} is neither rates by model "
                f"nor {MEASURE!r}"
            )
        if measured is None:
            raise ConfigError("pollux_testbed.samples_per_s is 'measure' but no rates were made")
        try:
            record = json.loads(measured.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{measured}: unreadable rates ({exc})") from None
        return {str(m): float(r) for m, r in record["samples_per_s"].items()}
    return {str(m): float(r) for m, r in samples_per_s.items()}
