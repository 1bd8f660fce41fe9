"""One `roleml_offload` run: E-Tree actors (containers or processes) on cgroup nodes, commanded
offloads, then a CPU stress that the Decider answers with an automatic offload; the run record."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reprise.errors import ConfigError, TestbedError
from reprise.testbed.systems.roleml import criu
from reprise.testbed.systems.roleml.dockerd import ExperimentalDockerd
from reprise.testbed.systems.roleml.hosts import (
    HostNodes,
    HostsRuntime,
    HostStress,
    open_hosts_runtime,
)
from reprise.testbed.systems.roleml.nodes import CgroupNodes, CpuWatch
from reprise.testbed.systems.roleml.offload import ControlFiles, Decider, Offloader, Stress
from reprise.testbed.systems.roleml.runtime import ActorRuntime, DockerRuntime, ProcessRuntime
from reprise.testbed.systems.roleml.topology import (
    CONDUCTOR,
    ROLES,
    actor_specs,
    parse_topology,
)

OFFLOAD_FIELDS = (
    "offload", "trigger", "actor", "role", "source", "destination", "status", "node_after",
    "reason", "round_at_pause", "epoch_before", "epoch_after", "pause_s", "checkpoint_s",
    "checkpoint_mb", "transfer_s", "transfer_mb", "restore_s", "contacts_s", "resume_s", "total_s",
    "started", "finished",
)  # fmt: skip
DECISION_FIELDS = ("node", "cpu_pct", "decision_started", "planned", "decision_ms", "plan")
CPU_FIELDS = ("time", "node", "cpu_pct")
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

    def finish(self, n: int, round_timeout: float, grace: float = 60.0) -> int:
        """Wait for the conductor to end the job; its exit status. A conductor still running
        `grace` seconds after the last round, or a round late by `round_timeout`, fails."""
        last, seen = time.monotonic(), self.count()
        while self.conductor.poll() is None:
            now, count = time.monotonic(), self.count()
            if count != seen:
                last, seen = now, count
            if now - last > (grace if count >= n else round_timeout):
                what = "exit after the last round" if count >= n else f"finish round {count}"
                raise TestbedError(
                    f"the conductor did not {what} within {now - last:.0f}s; see its log"
                )
            time.sleep(0.1)
        return int(self.conductor.returncode)


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


@dataclass(frozen=True)
class RoleImage:
    """The role image (built FROM the node image) the docker runtime runs the actors in."""

    image_id: str
    tag: str
    docker_root: Path  # the experimental daemon's data root, kept between runs


def _runtime(
    kind: str,
    nodes: CgroupNodes,
    criu_binary: str,
    outdir: Path,
    data_dir: Path,
    control: Path,
    image: RoleImage | None,
    run_id: str,
) -> tuple[ActorRuntime, ExperimentalDockerd | None]:
    if kind == "process":
        return ProcessRuntime(sys.executable, criu_binary, nodes, outdir), None
    if kind != "docker":
        raise ConfigError(
            f"config.yaml: testbed.roleml.runtime is {kind!r}; use docker, process or hosts"
        )
    if image is None:
        raise ConfigError("the docker runtime needs the role image (rule roleml_image)")
    dockerd = ExperimentalDockerd(run_id, image.docker_root, Path(criu_binary))
    runtime = DockerRuntime(dockerd, image.image_id, nodes, outdir, data_dir, control)
    return runtime, dockerd


def run_offload_study(
    settings: Mapping[str, Any],
    data_dir: Path,
    criu_binary: str,
    outdir: Path,
    before_restore: Callable[[str, str, Path], None] | None = None,
    image: RoleImage | None = None,
) -> dict[str, Any]:
    """Run the study; every container, process, stress, node cgroup and the experimental
    dockerd it starts are gone when it returns, also when it fails. With runtime `hosts` the
    actors run on the hosts of `testbed.roleml.hosts.inventory`, and CRIU is checked there."""
    kind = str(settings.get("runtime", "docker"))
    found = criu.require_criu(criu_binary) if kind != "hosts" else ()
    topo = parse_topology(
        settings["topology"], settings["topologies"][settings["topology"]], "config.yaml"
    )
    actors = (*topo.clients, CONDUCTOR)
    placement = placement_of(settings, actors)
    outdir.mkdir(parents=True, exist_ok=True)
    for stale in ("specs", "logs", "nodes"):
        shutil.rmtree(outdir / stale, ignore_errors=True)
    control = outdir / "control"
    control.mkdir(exist_ok=True)
    (control / "pause").unlink(missing_ok=True)
    rounds_csv = outdir / "rounds.csv"
    rounds_csv.unlink(missing_ok=True)
    run_id = uuid.uuid4().hex[:8]
    # written first: names what this run starts (its cgroups, dockerd state), also if it dies
    started_record = {"run_id": run_id, "runtime": kind}
    (outdir / "run.json").write_text(json.dumps(started_record) + "\n")
    nodes: CgroupNodes | HostNodes
    hosts_info: dict[str, Any] = {}
    runtime: ActorRuntime
    dockerd: ExperimentalDockerd | None = None
    if kind == "hosts":
        # every host reachable and checked (CRIU, root, the Python env) before anything starts
        runtime, nodes, hosts_info = open_hosts_runtime(
            settings, CONDUCTOR, outdir, run_id, placement
        )
        found = tuple(int(p) for p in hosts_info["criu"].split(",")[0].split("."))
    else:
        nodes = CgroupNodes(
            f"{outdir.name}-{run_id}", tuple(settings["nodes"]), float(settings["cpu_limit"])
        )
        runtime, dockerd = _runtime(
            kind, nodes, criu_binary, outdir, data_dir, control, image, run_id
        )
    stress: Stress | HostStress | None = None
    conductor: subprocess.Popen[bytes] | None = None
    events: list[dict[str, Any]] = []
    offloader: Offloader | None = None
    decider: Decider | None = None
    watcher: threading.Thread | None = None
    started = time.time()
    image_load_s = 0.0
    try:
        with _term_as_interrupt():
            nodes.create()
            if isinstance(runtime, HostsRuntime):
                runtime.prepare(data_dir)
            if dockerd is not None and image is not None:
                dockerd.start()
                image_load_s = dockerd.load_image(image.image_id, image.tag)
            addresses = runtime.addresses(topo.clients)
            addresses[CONDUCTOR] = runtime.conductor_address()
            specs = actor_specs(
                topo,
                addresses,
                Path(runtime.seen_as(data_dir)),
                {**settings, "control_dir": runtime.seen_as(control)},
            )
            specs[CONDUCTOR]["roles"]["driver"]["options"] = {
                "num_rounds": int(settings["num_rounds"]),
                "rounds_csv": str(rounds_csv),
            }
            files: Path | ControlFiles = control
            if isinstance(runtime, HostsRuntime):
                _relay_contacts(specs, topo.clients, control)
                files = runtime.control(topo.root)
            offloader = Offloader(
                runtime,
                nodes,
                outdir,
                files,
                {a: set(specs[a]["roles"]) for a in actors},
                dict(placement),
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
                CpuWatch(nodes).sample if isinstance(nodes, CgroupNodes) else nodes.sample,
            )
            watcher = threading.Thread(target=decider.run, name="decider", daemon=True)
            for actor in topo.clients:
                runtime.start(actor, specs[actor], placement[actor], 180)
            conductor = _start_conductor(
                specs[CONDUCTOR],
                outdir,
                nodes.cgroups(placement[CONDUCTOR]) if isinstance(nodes, CgroupNodes) else [],
            )
            watcher.start()
            rounds = Rounds(rounds_csv, conductor)
            gap, limit = int(settings["gap_rounds"]), float(settings["round_timeout_s"])
            rounds.wait(int(settings["warmup_rounds"]), limit)
            for step in settings["commanded"]:
                offloader.offload(step["actor"], step["role"], step["destination"], "commanded")
                rounds.wait(rounds.count() + gap, limit)
            stressed_actor = str(auto["stress_actor"])
            stressed = offloader.placement[stressed_actor]
            stress = (
                HostStress(runtime, stressed, int(auto["stress_workers"]))
                if isinstance(runtime, HostsRuntime)
                else Stress(nodes, stressed, int(auto["stress_workers"]))
                if isinstance(nodes, CgroupNodes)
                else None
            )
            assert stress is not None
            stress.start()
            events.append({"event": "stress-start", "node": stress.node, "time": stress.started})
            decider.armed.set()
            if not decider.decided.wait(float(auto["timeout_s"])):
                raise _no_decision(decider.samples, stress.node, stress.started, auto)
            if decider.error is not None:
                raise decider.error
            rounds.wait(rounds.count() + gap, limit)
            stress.stop()
            events.append({"event": "stress-stop", "node": stress.node, "time": time.time()})
            rc = rounds.finish(int(settings["num_rounds"]), limit)
            if rc != 0:
                raise TestbedError(f"the conductor exited with {rc}; see {outdir / 'logs'}")
    finally:
        if decider is not None:
            decider.stopping.set()
        if watcher is not None and watcher.is_alive():
            watcher.join(30)
        try:
            if stress is not None:
                stress.stop()
        finally:
            if conductor is not None and conductor.poll() is None:
                with suppress(ProcessLookupError):
                    os.killpg(conductor.pid, signal.SIGKILL)
                conductor.wait()
            try:
                runtime.stop_all()
            finally:
                if dockerd is not None:
                    dockerd.stop()
                nodes.remove_all()
                shutil.rmtree(outdir / "nodes", ignore_errors=True)
                for name in ("pause", "paused", "contacts.json", "contacts-ack.json"):
                    (control / name).unlink(missing_ok=True)
                _write_records(outdir, offloader, decider, events)
    assert offloader is not None
    summary = {
        "topology": topo.name,
        "clients": list(topo.clients),
        "runtime": runtime.kind,
        "run_id": run_id,
        "criu": ".".join(map(str, found)),
        "rounds": rounds.count(),
        "offloads": len(offloader.records),
        "failed_offloads": sum(r["status"] != "offloaded" for r in offloader.records),
        "image_load_s": round(image_load_s, 1),
        **hosts_info,
        "started": started,
        "wall_seconds": round(time.time() - started, 1),
    }
    (outdir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def _no_decision(
    samples: list[dict[str, Any]], stressed: str, since: float, auto: Mapping[str, Any]
) -> TestbedError:
    """The Decider never saw the stressed node hot: say what it saw (cpu.csv, an output of the
    failed job, does not survive it) and what usually causes it."""
    window = int(auto["window"])
    readings: dict[str, list[float]] = {}
    for sample in samples:
        if float(sample["time"]) >= since:
            readings.setdefault(str(sample["node"]), []).append(float(sample["cpu_pct"]))
    # the highest mean over `window` consecutive samples, as the Decider judges a node
    best = {
        node: max(sum(v[i : i + window]) / window for i in range(len(v) - window + 1))
        for node, v in readings.items()
        if len(v) >= window
    }
    others = [pct for node, pct in best.items() if node != stressed]
    seen = (
        f"the stressed node's highest {window}-sample mean was {best[stressed]:.0f}%"
        if stressed in best
        else f"fewer than {window} samples of the stressed node were taken"
    )
    if others:
        seen += f", the other nodes' highest {max(others):.0f}%"
    load = os.getloadavg()[0]
    return TestbedError(
        f"the Decider made no decision within {auto['timeout_s']}s of the stress on node "
        f"{stressed}: {seen} (threshold {auto['threshold_pct']}% of a node's limit). The host's "
        f"load average is {load:.1f} on {os.cpu_count()} cores: other work on the host takes the "
        "stressed node's share. Run on a quieter host, or lower "
        "testbed.roleml.automatic.threshold_pct below the stressed node's reading."
    )


def _write_records(
    outdir: Path,
    offloader: Offloader | None,
    decider: Decider | None,
    events: list[dict[str, Any]],
) -> None:
    """What was measured is kept, also when the run fails."""
    _write_csv(outdir / "offloads.csv", offloader.records if offloader else [], OFFLOAD_FIELDS)
    _write_csv(outdir / "decisions.csv", decider.decisions if decider else [], DECISION_FIELDS)
    _write_csv(outdir / "cpu.csv", decider.samples if decider else [], CPU_FIELDS)
    _write_csv(outdir / "events.csv", events, ("event", "node", "time"))


def _relay_contacts(
    specs: dict[str, dict[str, Any]], clients: tuple[str, ...], control: Path
) -> None:
    """Actors on hosts change address when they move: the conductor gets a relay role that
    passes a new address to every actor (RoleML's native `update-contacts`, which only a role in
    the actor's `manager` relationship may call)."""
    for client in clients:
        specs[client]["relationships"]["manager"] = [f"{CONDUCTOR}/contacts"]
    specs[CONDUCTOR]["roles"]["contacts"] = {
        "class": f"{ROLES}.ContactsRelay",
        "options": {"control_dir": str(control)},
    }


def _start_conductor(
    spec: Mapping[str, Any], outdir: Path, cgroups: list[Path]
) -> subprocess.Popen[bytes]:
    """The conductor: a host process in the control node, in its own session (killed by it)."""
    spec_path = outdir / "specs" / f"{CONDUCTOR}.json"
    spec_path.parent.mkdir(parents=True, exist_ok=True)
    spec_path.write_text(json.dumps(spec, indent=1))
    log = outdir / "logs" / f"{CONDUCTOR}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        return subprocess.Popen(
            [*criu.JOIN_CGROUPS, *ACTOR, str(spec_path)],
            env=criu.cgroup_env(cgroups),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
