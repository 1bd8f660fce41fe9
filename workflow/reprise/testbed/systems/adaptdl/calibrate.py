"""The CPU rate of each tiny model on this machine's nodes, measured at the start of
`snakemake pollux_testbed` (config `testbed.pollux_testbed.samples_per_s: measure`).

A reduced-trace job's work is its duration times a rate times its replicas. With a fixed rate
(measured once, on another load) the replicas trained up to 2x faster or 4x slower than the
durations assumed, so whether later jobs found grown ones holding every slot, and Pollux shrank
one, depended on the machine's load. Here the rate is measured on the run's own nodes just
before the trace is made: real AdaptDL replicas of each model (the node image, the run's
trainer, torch threads, batch bounds and hint cadence), `replicas_per_node` on every node at
once; each replica's samples between two readings of its progress file, the first `warmup_s`
after every replica of its round made its first step, averaged over the model's replicas.
With as many replicas to a node as it has slots (the default) that is a slot's rate when the
cluster is full, the run's sharing where an arrival makes Pollux shrink a grown job; a replica
with a node to itself trains faster, and the run's pace says by how much. (One replica per
node, the CPU counterpart of a job alone on its GPUs, gave a fresh-clone run twice the work:
pace 0.28 at load 5-9, every arrival queued behind 1-replica jobs and no job shrunk.)

The models share the rounds (`schedule`): every slot of every node runs a replica in every
round, the models taken in turn over the slots, nodes alternating, until each model has
`replicas_per_model` replicas; the last round's spare slots run further replicas of the first
models, measured too. Five models on two nodes of two slots with two replicas each: 3 rounds
of 4 replicas instead of 5 rounds of one model each. A replica start (imports, model build,
data) costs most of a round, so the rounds set the measurement's time. What a replica shares
is what it shares in the run: its node's CPU quota with the replica in the node's other slot,
here of another model, as jobs of different models share a node in the run; single-threaded
CPU-bound replicas each get their half of the quota whatever the neighbour trains (measured:
`docs/testbed.md`). Each rate is also taken over the window's two halves (`halves`); their
largest relative difference over a model's replicas is recorded as `spread`, the check that
the window is long enough and no start-up fell into it.
"""

from __future__ import annotations

import json
import os
import shlex
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
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
    """Replicas on every node in every round (at most the node's slots)."""
    replicas_per_model: int = 2
    """Replicas each model is measured with, at least (in turn over the slots and rounds)."""

    def check(self) -> None:
        if min(self.warmup_s, self.seconds, self.start_timeout_s) <= 0:
            raise ConfigError("calibrate: warmup_s, seconds and start_timeout_s must be > 0")
        if self.replicas_per_node < 1:
            raise ConfigError("calibrate: replicas_per_node must be at least 1")
        if self.replicas_per_model < 1:
            raise ConfigError("calibrate: replicas_per_model must be at least 1")


@dataclass(frozen=True)
class Slot:
    """Replica slot `index` of node `node` in a measurement round."""

    node: str
    index: int


def measurement_slots(nodes: Sequence[tuple[str, int]], replicas_per_node: int) -> list[Slot]:
    """The slots a round fills, nodes alternating: (node name, its slots) in inventory order."""
    per_node = {name: min(replicas_per_node, slots) for name, slots in nodes}
    if not any(per_node.values()):
        raise ConfigError("calibrate: the nodes have no replica slots to measure on")
    return [
        Slot(name, k)
        for k in range(max(per_node.values()))
        for name, _ in nodes
        if k < per_node[name]
    ]


def schedule(
    models: Sequence[str], slots: Sequence[Slot], replicas_per_model: int
) -> list[list[tuple[Slot, str]]]:
    """The rounds: every slot busy in each, the models in turn over the slots until each has
    `replicas_per_model` replicas (the last round's spare slots continue the turn)."""
    if not models or not slots:
        raise ConfigError("calibrate: nothing to measure (no models or no slots)")
    wanted = len(models) * replicas_per_model
    rounds = -(-wanted // len(slots))
    turn = [models[i % len(models)] for i in range(rounds * len(slots))]
    return [
        list(zip(slots, turn[r * len(slots) : (r + 1) * len(slots)], strict=True))
        for r in range(rounds)
    ]


@dataclass(frozen=True)
class _Replica:
    node: Node
    slot: Slot
    model: str
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


def _check_running(launcher: SshLauncher, replicas: list[_Replica]) -> None:
    for replica in replicas:
        if launcher.poll(replica.proc) is not None:
            tail = launcher.tail(replica.node, replica.proc.log)
            raise TestbedError(
                f"measuring {replica.model}: {replica.proc.name} ended early; its log "
                f"{replica.proc.log} ends with:\n{tail}"
            )


def _start(
    run: TestbedRun,
    slot: Slot,
    model: str,
    batch_size: int,
    controller: ControllerSettings,
    port: int,
    round_index: int,
) -> _Replica:
    launcher = run.launcher
    assert isinstance(launcher, SshLauncher)
    node = run.node(slot.node)
    name = f"rate-{round_index}-{model}-{node.name}-{slot.index}"
    directory = f"{node.workdir}/adaptdl/{run.run_id}/rates/{name}"
    # AdaptDL lists its checkpoint folder at start (restart 0 finds it empty)
    made = launcher.run(
        node, f"mkdir -p {shlex.quote(directory)}/checkpoint", "making a job folder"
    )
    if not made.ok:
        raise TestbedError(f"node {node.name!r}: cannot make {directory}: {made.stderr}")
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
    env.update({NODE_ADDRESS_ENV: node.peer_address, "OMP_NUM_THREADS": str(controller.threads)})
    status = f"{directory}/status.json"
    argv = replica_argv(node.python, model, batch_size, ENDLESS, 0, controller, status)
    return _Replica(node, slot, model, run.start(node, name, argv, env), status)


def _stop_all(run: TestbedRun, replicas: list[_Replica]) -> None:
    """Stop the round's replicas at once (each waits up to the run's grace for its group)."""
    launcher = run.launcher
    assert isinstance(launcher, SshLauncher)
    if not replicas:
        return
    with ThreadPoolExecutor(max_workers=len(replicas)) as pool:
        list(pool.map(lambda r: launcher.stop(r.proc, run.grace_s), replicas))
    for replica in replicas:
        run.stop(replica.proc)  # gone already: marks it stopped in the run's record


def _rate(a: tuple[float, float], b: tuple[float, float]) -> float:
    return (b[1] - a[1]) / (b[0] - a[0])


def _measure_round(
    run: TestbedRun,
    round_index: int,
    placed: list[tuple[Slot, str]],
    models: Mapping[str, int],
    controller: ControllerSettings,
    calib: CalibrationSettings,
    port: int,
) -> list[dict[str, Any]]:
    """Samples/s of every replica of the round, all running at once, over one window."""
    launcher = run.launcher
    assert isinstance(launcher, SshLauncher)
    replicas: list[_Replica] = []
    try:
        for i, (slot, model) in enumerate(placed):
            replicas.append(
                _start(run, slot, model, models[model], controller, port + i, round_index)
            )
        deadline = time.monotonic() + calib.start_timeout_s
        while any(_reading(launcher, r) is None for r in replicas):
            _check_running(launcher, replicas)
            if time.monotonic() > deadline:
                raise TestbedError(
                    f"measuring round {round_index} ({', '.join(m for _, m in placed)}): "
                    f"no first step within {calib.start_timeout_s:g} s "
                    "(raise calibrate.start_timeout_s)"
                )
            time.sleep(STEP_POLL_S)
        time.sleep(calib.warmup_s)
        readings: list[list[tuple[float, float] | None]] = []
        for wait in (0.0, calib.seconds / 2, calib.seconds / 2):
            time.sleep(wait)
            readings.append([_reading(launcher, r) for r in replicas])
        _check_running(launcher, replicas)
    finally:
        _stop_all(run, replicas)
    measured = []
    for k, replica in enumerate(replicas):
        first, middle, last = (row[k] for row in readings)
        if first is None or middle is None or last is None or not first[0] < middle[0] < last[0]:
            raise TestbedError(
                f"measuring {replica.model}: {replica.proc.name} reported no progress in "
                f"{calib.seconds:g} s after its first steps (raise calibrate.seconds)"
            )
        measured.append(
            {
                "round": round_index,
                "node": replica.slot.node,
                "slot": replica.slot.index,
                "model": replica.model,
                "samples_per_s": round(_rate(first, last), 1),
                "halves": [round(_rate(first, middle), 1), round(_rate(middle, last), 1)],
            }
        )
    return measured


def _spread(halves: Sequence[Sequence[float]]) -> float:
    """The largest relative difference between a replica's two half-window rates."""
    return max(abs(a - b) / max((a + b) / 2, 1e-9) for a, b in halves)


def summarize(
    models: Mapping[str, int], replicas: Sequence[Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Per model, in the given order: the mean of its replicas' rates (what the trace is made
    with), its batch size, each replica's rate and where it ran, and the halves' `spread`."""
    out: dict[str, dict[str, Any]] = {}
    for model, batch in models.items():
        mine = [r for r in replicas if r["model"] == model]
        if not mine:
            raise TestbedError(f"measuring rates: no replica of {model} was measured")
        out[model] = {
            "samples_per_s": round(statistics.mean(r["samples_per_s"] for r in mine), 1),
            "batch_size": batch,
            "replicas": [r["samples_per_s"] for r in mine],
            "on": [f"{r['node']}/{r['slot']}" for r in mine],
            "spread": round(_spread([r["halves"] for r in mine]), 3),
        }
    return out


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
    rate, round and slot, the settings, the load average before and after, the wall time)."""
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
    replicas: list[dict[str, Any]] = []
    with TestbedRun(provider, launcher, out_dir / "run") as run:
        slots = measurement_slots([(n.name, n.slots) for n in run.nodes], calib.replicas_per_node)
        rounds = schedule(list(models), slots, calib.replicas_per_model)
        for r, placed in enumerate(rounds):
            got = _measure_round(
                run, r, placed, models, controller, calib, PORT_BASE + PORT_OFFSET + 100 * r
            )
            replicas.extend(got)
            progress(
                f"round {r + 1}/{len(rounds)}: "
                + ", ".join(f"{g['model']} {g['samples_per_s']:.0f}" for g in got)
                + " samples/s"
            )
    measured = summarize(models, replicas)
    for model, entry in measured.items():
        progress(
            f"{model} (batch {entry['batch_size']}): {entry['samples_per_s']} samples/s per "
            f"replica ({', '.join(f'{r:.0f}' for r in entry['replicas'])}; halves differ by "
            f"up to {entry['spread']:.0%})"
        )
    record = {
        "samples_per_s": {m: v["samples_per_s"] for m, v in measured.items()},
        "models": measured,
        "rounds": len(rounds),
        "measurements": replicas,
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
