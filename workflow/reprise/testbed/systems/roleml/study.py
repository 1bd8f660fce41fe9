"""One `roleml_offload` run: E-Tree actors on cgroup nodes, commanded offloads, then a CPU stress
that the Decider answers with an automatic offload; writes the run record."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from reprise.errors import ConfigError, TestbedError
from reprise.testbed.systems.roleml import criu
from reprise.testbed.systems.roleml.local import free_port, wait_listening
from reprise.testbed.systems.roleml.nodes import CgroupNodes
from reprise.testbed.systems.roleml.offload import Decider, Offloader, Stress
from reprise.testbed.systems.roleml.topology import CONDUCTOR, actor_specs, parse_topology

OFFLOAD_FIELDS = (
    "offload", "trigger", "actor", "role", "source", "destination", "status", "node_after",
    "reason", "round_at_pause", "epoch_before", "epoch_after", "pause_s", "checkpoint_s",
    "checkpoint_mb", "transfer_s", "restore_s", "resume_s", "total_s", "started", "finished",
)  # fmt: skip
DECISION_FIELDS = ("node", "cpu_pct", "decision_started", "planned", "decision_ms", "plan")
ACTOR = [sys.executable, "-u", "-m", "reprise.testbed.systems.roleml.actor"]


def placement_of(settings: Mapping[str, Any], actors: tuple[str, ...]) -> dict[str, str]:
    """actor -> node from `testbed.roleml.nodes` (node -> actors it starts with)."""
    nodes = settings["nodes"]
    placement: dict[str, str] = {}
    for node, members in nodes.items():
        for actor in members:
            if actor in placement:
                raise ConfigError(
                    f"config.yaml: testbed.roleml.nodes puts {actor!r} on {placement[actor]!r} "
                    f"and {node!r}; an actor starts on one node"
                )
            placement[actor] = node
    missing = [a for a in actors if a not in placement]
    if missing:
        raise ConfigError(
            f"config.yaml: testbed.roleml.nodes places no node for {missing}; "
            "add each to one node's list"
        )
    for step in settings["commanded"]:
        if step["destination"] not in nodes:
            raise ConfigError(
                f"config.yaml: testbed.roleml.commanded names node {step['destination']!r}; "
                f"the nodes are {sorted(nodes)}"
            )
    return placement


class Rounds:
    """The rounds the conductor has recorded so far."""

    def __init__(self, path: Path, conductor: subprocess.Popen[bytes]) -> None:
        self.path, self.conductor = path, conductor

    def count(self) -> int:
        if not self.path.exists():
            return 0
        return max(len(self.path.read_text().splitlines()) - 1, 0)

    def wait(self, n: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.count() < n:
            if self.conductor.poll() is not None:
                raise TestbedError(
                    f"the E-Tree job ended after {self.count()} rounds before round {n}; "
                    "raise testbed.roleml.num_rounds so every offload happens mid-training"
                )
            if time.monotonic() > deadline:
                raise TestbedError(f"round {n} did not complete within {timeout:.0f}s")
            time.sleep(0.1)


@contextmanager
def _term_as_interrupt() -> Iterator[None]:
    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _write_csv(path: Path, rows: list[dict[str, Any]], fields: tuple[str, ...]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(fields), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def run_offload_study(
    settings: Mapping[str, Any],
    data_dir: Path,
    criu_binary: str,
    outdir: Path,
    before_restore: Any = None,
) -> dict[str, Any]:
    """Run the study; every process, stress and node cgroup it makes is gone when it returns."""
    found = criu.require_criu(criu_binary)
    topo = parse_topology(
        settings["topology"], settings["topologies"][settings["topology"]], "config.yaml"
    )
    actors = (*topo.clients, CONDUCTOR)
    placement = placement_of(settings, actors)
    outdir.mkdir(parents=True, exist_ok=True)
    control = outdir / "control"
    control.mkdir(exist_ok=True)
    (control / "pause").unlink(missing_ok=True)
    rounds_csv = outdir / "rounds.csv"
    rounds_csv.unlink(missing_ok=True)
    addresses = {a: f"127.0.0.1:{free_port()}" for a in actors}
    specs = actor_specs(topo, addresses, data_dir, {**settings, "control_dir": str(control)})
    specs[CONDUCTOR]["roles"]["driver"]["options"] = {
        "num_rounds": int(settings["num_rounds"]),
        "rounds_csv": str(rounds_csv),
    }
    nodes = CgroupNodes(
        f"{outdir.name}-{uuid.uuid4().hex[:8]}",
        tuple(settings["nodes"]),
        float(settings["cpu_limit"]),
    )
    procs: dict[str, criu.NamespacedProcess] = {}
    logs = {a: outdir / "logs" / f"{a}.log" for a in actors}
    (outdir / "logs").mkdir(exist_ok=True)
    offloader = Offloader(
        criu_binary,
        nodes,
        outdir,
        control,
        {a: set(specs[a]["roles"]) for a in actors},
        dict(placement),
        procs,
        logs,
        before_restore=before_restore,
    )
    auto = settings["automatic"]
    decider = Decider(
        offloader,
        {a for a in topo.clients if set(specs[a]["roles"]) == {"trainer"}},
        {n for n, members in settings["nodes"].items() if CONDUCTOR not in members},
        float(auto["interval_s"]),
        float(auto["threshold_pct"]),
        int(auto["window"]),
    )
    watcher = threading.Thread(target=decider.run, name="decider", daemon=True)
    stress: Stress | None = None
    conductor: subprocess.Popen[bytes] | None = None
    events: list[dict[str, Any]] = []
    started = time.time()
    nodes.create()
    try:
        with _term_as_interrupt():
            for actor in topo.clients:
                spec_path = outdir / "specs" / f"{actor}.json"
                spec_path.parent.mkdir(exist_ok=True)
                spec_path.write_text(json.dumps(specs[actor], indent=1))
                logs[actor].write_text("")
                started_proc = criu.start_namespaced(
                    [*ACTOR, str(spec_path), "--detachable"],
                    logs[actor],
                    cgroups=nodes.cgroups(placement[actor]),
                )
                procs[actor] = started_proc
                if started_proc.outer is not None:
                    wait_listening(addresses[actor], started_proc.outer, logs[actor], 120)
            spec_path = outdir / "specs" / f"{CONDUCTOR}.json"
            spec_path.write_text(json.dumps(specs[CONDUCTOR], indent=1))
            with logs[CONDUCTOR].open("w") as out:
                conductor = subprocess.Popen(
                    [*criu.JOIN_CGROUPS, *ACTOR, str(spec_path)],
                    env=criu.cgroup_env(nodes.cgroups(placement[CONDUCTOR])),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            watcher.start()
            rounds = Rounds(rounds_csv, conductor)
            gap, limit = int(settings["gap_rounds"]), float(settings["round_timeout_s"])
            rounds.wait(int(settings["warmup_rounds"]), limit)
            for step in settings["commanded"]:
                offloader.offload(step["actor"], step["role"], step["destination"], "commanded")
                rounds.wait(rounds.count() + gap, limit)
            stressed_actor = str(auto["stress_actor"])
            stress = Stress(nodes, offloader.placement[stressed_actor], int(auto["stress_workers"]))
            stress.start()
            events.append({"event": "stress-start", "node": stress.node, "time": stress.started})
            decider.armed.set()
            if not decider.decided.wait(float(auto["timeout_s"])):
                raise TestbedError(
                    f"the Decider made no decision within {auto['timeout_s']}s of the stress on "
                    f"node {stress.node} (threshold {auto['threshold_pct']}% for "
                    f"{auto['window']} samples); see cpu.csv"
                )
            if decider.error is not None:
                raise decider.error
            rounds.wait(rounds.count() + gap, limit)
            stress.stop()
            events.append({"event": "stress-stop", "node": stress.node, "time": time.time()})
            rc = conductor.wait(limit * int(settings["num_rounds"]))
            if rc != 0:
                raise TestbedError(f"the conductor exited with {rc}; see {logs[CONDUCTOR]}")
    finally:
        decider.stopping.set()
        if watcher.is_alive():
            watcher.join(30)
        if stress is not None:
            stress.stop()
        if conductor is not None and conductor.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(conductor.pid, signal.SIGKILL)
            conductor.wait()
        for proc in procs.values():
            proc.kill()
        nodes.remove_all()
        (control / "pause").unlink(missing_ok=True)
        # what was measured is kept, also when the run fails
        _write_csv(outdir / "offloads.csv", offloader.records, OFFLOAD_FIELDS)
        _write_csv(outdir / "decisions.csv", decider.decisions, DECISION_FIELDS)
        _write_csv(outdir / "cpu.csv", decider.samples, ("time", "node", "cpu_pct"))
        _write_csv(outdir / "events.csv", events, ("event", "node", "time"))
    summary = {
        "topology": topo.name,
        "clients": list(topo.clients),
        "criu": ".".join(map(str, found)),
        "rounds": rounds.count(),
        "offloads": len(offloader.records),
        "failed_offloads": sum(r["status"] != "offloaded" for r in offloader.records),
        "started": started,
        "wall_seconds": round(time.time() - started, 1),
    }
    (outdir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary
