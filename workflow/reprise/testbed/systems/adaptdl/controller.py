"""The `nodes` way to run Pollux: Pollux's policy on our controller, not AdaptDL's Kubernetes
scheduler. Real AdaptDL jobs run as replica processes on the nodes of any SSH-reachable testbed
inventory (Docker nodes, SSH hosts); every round the controller feeds the hints the jobs PUT to
its supervisor endpoint into the shared core's Pollux search (`allocator`) and applies a changed
allocation the way AdaptDL's scheduler does: SIGTERM to every replica (AdaptDL checkpoints and
exits), then the job again with the new replica count and ADAPTDL_NUM_RESTARTS one higher, which
restores that checkpoint and lets AdaptDL pick its batch size for the new replicas.

Nodes share no file system here, so the controller carries each checkpoint from the node of the
old rank 0 to every node of the new allocation (tar over SSH); each incarnation of a job gets its
own checkpoint directory. A replica that dies (killed, out of memory) fails its incarnation: the
others are stopped and the job restarts from its last checkpoint on the same allocation, counted
as a fault restart. Every process is started and stopped by recorded process group through
`TestbedRun`, whose exit (normal, error, SIGTERM) stops them and tears the nodes down.

The run record: jobs.csv, events.csv, summary.json (kind testbed), the monitor log in upstream's
format (monitor.jsonl, read back with `monitor`'s fixed parser for the deadline ratio),
allocations.csv (every re-allocation, with its replicas before and after) and incarnations.csv.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shlex
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from reprise.data.traces import TraceJob
from reprise.errors import ConfigError, TestbedError
from reprise.records.outcome import JobOutcome, RoundSample, RunOutcome
from reprise.records.result import RunResult
from reprise.records.writer import write_run_record
from reprise.testbed.lifecycle import VANISHED, SshLauncher, TestbedRun
from reprise.testbed.nodes import Launched, Node
from reprise.testbed.systems.adaptdl.allocator import PolicyJob, PolluxAllocator, count_resizes
from reprise.testbed.systems.adaptdl.compat import ADAPTDL_VERSION
from reprise.testbed.systems.adaptdl.monitor import (
    DeadlineReport,
    deadline_report,
    names_of,
    object_name,
    read_monitor_log,
)
from reprise.testbed.systems.adaptdl.supervisor import Supervisor
from reprise.testbed.systems.adaptdl.trace import jct_over_duration
from reprise.testbed.systems.adaptdl.trainer import replica_env
from reprise.testbed.trainers.names import MODELS, SIZES
from reprise.testbed.trainers.netif import NODE_ADDRESS_ENV

LABEL = "Pollux's policy on our controller (AdaptDL jobs, not AdaptDL's Kubernetes scheduler)"
TRAINER_MODULE = "reprise.testbed.systems.adaptdl.trainer"
PORT_BASE = 29600
TICK_S = 1.0


@dataclass(frozen=True)
class ControllerSettings:
    """How the controller runs the jobs (config `testbed.pollux_testbed.controller`)."""

    interval_s: float = 60.0
    """Seconds between Pollux rounds (upstream's allocator: 60)."""
    seed: int = 0
    """Seed of the search's random stream."""
    model_size: str = "tiny"
    max_batch_factor: int = 4
    """AdaptDL may grow a job's global batch up to this times the trace's batch."""
    local_bsz_min: int = 8
    dataset_size: int = 1024
    """Synthetic samples per epoch (at least the largest batch)."""
    threads: int = 1
    """Torch threads per replica."""
    stop_grace_s: float = 60.0
    """How long a SIGTERMed replica may take to write AdaptDL's checkpoint."""
    time_limit_s: float = 1500.0
    """The whole run must end by then (a TestbedError stops everything)."""
    hints_every_s: float = 30.0
    """Seconds between a job's hints (AdaptDL's own: 30; less on a compressed clock)."""

    def check(self) -> None:
        if self.model_size not in SIZES:
            raise ConfigError(f"controller.model_size {self.model_size!r}: one of {SIZES}")
        if min(self.interval_s, self.stop_grace_s, self.time_limit_s, self.hints_every_s) <= 0:
            raise ConfigError(
                "controller: interval_s, stop_grace_s, time_limit_s, hints_every_s must be > 0"
            )
        if min(self.max_batch_factor, self.local_bsz_min, self.dataset_size, self.threads) < 1:
            raise ConfigError("controller: batch factor, local batch, data set, threads >= 1")


@dataclass
class Incarnation:
    """One start of a job: AdaptDL's restart number, why, where its replicas ran."""

    index: int
    reason: str
    """initial, pollux (re-allocated), fault (a replica died) or resume (after a preemption)."""
    placement: list[str]
    """Node of each replica, rank order."""
    procs: list[Launched]
    directory: str
    """Its checkpoint and status directory on every node it uses."""
    started: float
    restored_from: int | None
    """Index of the checkpoint it started from (None: from scratch)."""
    ended: float | None = None
    end: str = ""
    """done, stopped (checkpointed), stopped-without-checkpoint, failed"""


@dataclass
class JobRun:
    trace: TraceJob
    name: str
    policy: PolicyJob
    incarnations: list[Incarnation] = field(default_factory=list)
    checkpoint: tuple[int, Path] | None = None
    """(incarnation index, local tarball) of the last checkpoint taken."""
    first_start: float | None = None
    completed: float | None = None
    fault_restarts: int = 0
    arrived: bool = False
    status: dict[str, Any] = field(default_factory=dict)
    """Rank 0's last progress record."""

    @property
    def live(self) -> Incarnation | None:
        inc = self.incarnations[-1] if self.incarnations else None
        return inc if inc is not None and inc.ended is None else None


def replica_argv(
    python: str,
    model: str,
    batch_size: int,
    target_samples: int,
    seed: int,
    settings: ControllerSettings,
    status: str,
) -> list[str]:
    """The command line of one replica of an AdaptDL job of `model` with the trace's initial
    global batch, training `target_samples`, under the controller's settings."""
    s = settings
    max_batch = batch_size * s.max_batch_factor
    return [
        python, "-m", TRAINER_MODULE,
        f"--model={model}", f"--size={s.model_size}",
        f"--batch-size={batch_size}", f"--max-batch-size={max_batch}",
        f"--local-bsz-min={s.local_bsz_min}",
        f"--local-bsz-max={max(batch_size, s.local_bsz_min)}",
        f"--target-samples={target_samples}",
        f"--dataset-size={max(s.dataset_size, max_batch)}",
        f"--status={status}", f"--seed={seed}", f"--threads={s.threads}",
        f"--hints-every-s={s.hints_every_s}",
    ]  # fmt: skip


def controller_address(peer: str) -> str:
    """This machine's address on the route to `peer` (where nodes reach the supervisor)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((peer, 9))  # UDP: nothing is sent, the kernel only picks the route
        except OSError as exc:
            raise TestbedError(
                f"no route from this machine to node address {peer}: {exc}"
            ) from None
        return str(probe.getsockname()[0])


def _rfc3339(wall: float) -> str:
    return datetime.fromtimestamp(wall, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Controller:
    """One run of a trace on the nodes of `run`; `run_all()` returns when every job is done."""

    def __init__(
        self,
        run: TestbedRun,
        supervisor: Supervisor,
        trace: Sequence[TraceJob],
        settings: ControllerSettings,
        out_dir: Path,
        kill: Mapping[str, tuple[int, float]] | None = None,
        progress: Callable[[str], None] = print,
    ) -> None:
        settings.check()
        if not isinstance(run.launcher, SshLauncher):
            raise TestbedError(
                f"the nodes controller copies AdaptDL checkpoints over SSH; "
                f"{type(run.launcher).__name__} has none (use docker or ssh nodes)"
            )
        unknown = sorted({j.model for j in trace} - set(MODELS))
        if unknown:
            raise ConfigError(f"the trace's models {unknown} are not in the model zoo {MODELS}")
        names_of(trace)  # refuses two jobs with one name
        self.run = run
        self.ssh: SshLauncher = run.launcher
        self.supervisor = supervisor
        self.settings = settings
        self.out_dir = out_dir
        self.kill = dict(kill or {})
        self.progress = progress
        self.nodes: list[Node] = list(run.nodes)
        self.allocator = PolluxAllocator([n.slots for n in self.nodes], settings.seed)
        self.jobs = [
            JobRun(
                job,
                object_name(job.job_id),
                PolicyJob(
                    object_name(job.job_id),
                    float(job.submit_time - min(j.submit_time for j in trace)),
                    self.allocator.empty(),
                    initial_local_bsz=(settings.local_bsz_min, self._local_max(job)),
                ),
            )
            for job in sorted(trace, key=lambda j: (j.submit_time, j.idx))
        ]
        self.t0 = time.monotonic()
        self.wall0 = time.time()
        self.ports = 0
        self.rounds: list[RoundSample] = []
        self.changes: list[dict[str, Any]] = []
        self.monitor = out_dir / "monitor.jsonl"
        self.monitor.unlink(missing_ok=True)
        (out_dir / "checkpoints").mkdir(parents=True, exist_ok=True)

    # -- the loop ----------------------------------------------------------------------------
    def now(self) -> float:
        return time.monotonic() - self.t0

    def run_all(self) -> None:
        next_round = self.settings.interval_s
        while any(j.completed is None for j in self.jobs):
            now = self.now()
            if now > self.settings.time_limit_s:
                left = [j.name for j in self.jobs if j.completed is None]
                raise TestbedError(
                    f"Pollux run passed its time limit of {self.settings.time_limit_s:g} s with "
                    f"jobs {', '.join(left)} unfinished (raise controller.time_limit_s)"
                )
            self._watch()
            self._inject_faults()
            for job in self.jobs:
                if not job.arrived and job.policy.submitted <= now:
                    job.arrived = True
                    self._apply(job, self.allocator.initial(job.policy, self._present()), "initial")
            if now >= next_round:
                self._round()
                next_round = now + self.settings.interval_s
            time.sleep(TICK_S)
        self._record_monitor()

    def _present(self) -> list[PolicyJob]:
        return [j.policy for j in self.jobs if j.arrived and j.completed is None]

    def _submitted(self, job: JobRun) -> bool:
        return job.policy.submitted <= self.now()

    def _round(self) -> None:
        # jobs taken in by the arrival step only: one whose submission time passed while this
        # tick ran is not yet arrived, and the arrival step would undo what a round gave it
        present = [j for j in self.jobs if j.arrived and j.completed is None]
        for job in present:
            job.policy.hints = self.supervisor.hints(job.name)
            self._read_status(job)
        if present:
            chosen = self.allocator.allocate([j.policy for j in present], self.now())
            for job in present:
                if not np.array_equal(chosen[job.name], job.policy.alloc):
                    self._apply(job, chosen[job.name], "pollux")
        self._record_monitor()

    # -- applying allocations ----------------------------------------------------------------
    def _placement(self, alloc: np.ndarray) -> list[Node]:
        nodes: list[Node] = []
        for i, count in enumerate(alloc):
            nodes += [self.nodes[i]] * int(count)
        return nodes

    def _apply(self, job: JobRun, alloc: np.ndarray, reason: str) -> None:
        before = job.policy.replicas
        live = job.live
        if live is not None and self._stop(job, live, checkpoint=True):
            self.progress(
                f"[{self.now():6.1f} s] {job.name}: finished before its re-allocation to "
                f"{int(alloc.sum())} replica(s) took effect"
            )
            return
        job.policy.alloc = alloc.astype(np.int8)
        after = job.policy.replicas
        if reason == "initial" and after == 0:
            reason = "queued"
        self.changes.append(
            {
                "time_s": round(self.now(), 1),
                "job": job.name,
                "reason": reason,
                "replicas_before": before,
                "replicas_after": after,
                "nodes_after": " ".join(n.name for n in self._placement(job.policy.alloc)),
            }
        )
        if after:
            if not job.incarnations:
                self._start(job, "initial")
            else:
                self._start(job, reason if live is not None else "resume")
        self.progress(
            f"[{self.now():6.1f} s] {job.name}: {before} -> {after} replica(s) ({reason})"
        )

    def _local_max(self, trace: TraceJob) -> int:
        return max(trace.batch_size, self.settings.local_bsz_min)

    def _argv(self, job: JobRun, node: Node, status: str) -> list[str]:
        tj = job.trace
        return replica_argv(
            node.python, tj.model, tj.batch_size, tj.iterations * tj.batch_size, tj.idx,
            self.settings, status,
        )  # fmt: skip

    def _start(self, job: JobRun, reason: str) -> None:
        placement = self._placement(job.policy.alloc)
        index = len(job.incarnations)
        directory = f"{placement[0].workdir}/adaptdl/{self.run.run_id}/{job.name}/inc{index}"
        restored = self._push_checkpoint(job, {n.name: n for n in placement}.values(), directory)
        self.ports += 1
        port = PORT_BASE + self.ports
        procs = []
        for rank, node in enumerate(placement):
            env = replica_env(
                job_id=job.name,
                checkpoint_path=Path(directory) / "checkpoint",
                master_addr=placement[0].peer_address,
                master_port=port,
                num_replicas=len(placement),
                rank=rank,
                num_nodes=len({n.name for n in placement}),
                restarts=index,
                supervisor_url=self.supervisor.url,
            )
            env.update(
                {NODE_ADDRESS_ENV: node.peer_address, "OMP_NUM_THREADS": str(self.settings.threads)}
            )
            argv = self._argv(job, node, f"{directory}/status.json")
            procs.append(self.run.start(node, f"{job.name}-i{index}-r{rank}", argv, env))
        inc = Incarnation(
            index, reason, [n.name for n in placement], procs, directory, self.now(), restored
        )
        job.incarnations.append(inc)
        if job.first_start is None:
            job.first_start = inc.started
        job.policy.restarts = index

    def _stop(self, job: JobRun, inc: Incarnation, checkpoint: bool) -> bool:
        """Stop every replica at once (AdaptDL's checkpoint needs them all at the next step),
        then carry the checkpoint rank 0 wrote, if any, to the controller.

        Returns True when the incarnation had finished its training instead (every replica
        exited 0, or rank 0 recorded its last epoch done): in the moments between the last watch
        and the stop, or with SIGTERM arriving after its last step, where AdaptDL writes no
        checkpoint (it saves only at a next step). The job is then done, as AdaptDL's controller
        counts a job whose pods all succeeded before it looks at a new allocation; restarting
        it would train it again from its last checkpoint, or from scratch.
        """
        grace = self.settings.stop_grace_s if checkpoint else 5.0
        with ThreadPoolExecutor(max_workers=len(inc.procs)) as pool:
            list(pool.map(lambda p: self.ssh.stop(p, grace), inc.procs))
        if inc.end == "":
            codes = [self.ssh.poll(p) for p in inc.procs]
            self._read_status(job)
            trained = job.status.get("restarts") == inc.index and job.status.get("done") is True
            if all(c == 0 for c in codes) or trained:
                self._finish(job, inc, codes)
                return True
        for proc in inc.procs:
            self.run.stop(proc)  # gone already: marks it stopped in the run's record
        self._attribute_time(job, inc)
        inc.ended = self.now()
        saved = checkpoint and self._fetch_checkpoint(job, inc)
        if inc.end == "":
            inc.end = "stopped" if saved else "stopped-without-checkpoint"
        return False

    def _finish(self, job: JobRun, inc: Incarnation, codes: Sequence[int | None]) -> None:
        """`inc` trained the job to its end: the job is done (`codes`: the replicas' exits;
        the caller has read the job's last status)."""
        # records the exits as they are; a replica the stop ended after its last step (its
        # wrapper killed before it wrote the exit status) is recorded as stopped
        self.run.wait_all(30, [p for p, c in zip(inc.procs, codes, strict=True) if c == 0])
        for proc, code in zip(inc.procs, codes, strict=True):
            if code != 0:
                self.run.stop(proc)
        self._attribute_time(job, inc)
        inc.ended, inc.end = self.now(), "done"
        job.completed = inc.ended
        job.policy.alloc = self.allocator.empty()
        self.progress(f"[{self.now():6.1f} s] {job.name}: done")

    def _attribute_time(self, job: JobRun, inc: Incarnation) -> None:
        job.policy.attained += len(inc.procs) * (self.now() - inc.started)

    # -- checkpoints over SSH -----------------------------------------------------------------
    def _node(self, name: str) -> Node:
        return self.run.node(name)

    def _fetch_checkpoint(self, job: JobRun, inc: Incarnation) -> bool:
        node = self._node(inc.placement[0])
        name = f"checkpoint-{inc.index}"
        tarball = f"{inc.directory}/{name}.tgz"
        made = self.ssh.run(
            node,
            f"cd {shlex.quote(inc.directory)}/checkpoint && test -d {name} && "
            f"tar czf {shlex.quote(tarball)} {name}",
            f"packing {job.name}'s checkpoint",
        )
        if not made.ok:
            return False
        local = self.out_dir / "checkpoints" / job.name / f"{name}.tgz"
        self.ssh.fetch(node, tarball, local)
        job.checkpoint = (inc.index, local)
        return True

    def _push_checkpoint(self, job: JobRun, nodes: Any, directory: str) -> int | None:
        q = shlex.quote
        for node in nodes:
            made = self.ssh.run(node, f"mkdir -p {q(directory)}/checkpoint", "making a job folder")
            if not made.ok:
                raise TestbedError(f"node {node.name!r}: cannot make {directory}: {made.stderr}")
            if job.checkpoint is None:
                continue
            local = job.checkpoint[1]
            remote = f"{directory}/{local.name}"
            try:
                self.ssh.connections.get(node).put(str(local), remote=remote)
            except OSError as exc:
                raise TestbedError(f"node {node.name!r}: copying {local.name}: {exc}") from None
            unpacked = self.ssh.run(
                node,
                f"tar xzf {q(remote)} -C {q(directory)}/checkpoint && rm -f {q(remote)}",
                f"unpacking {job.name}'s checkpoint",
            )
            if not unpacked.ok:
                raise TestbedError(f"node {node.name!r}: unpacking {remote}: {unpacked.stderr}")
        return None if job.checkpoint is None else job.checkpoint[0]

    # -- watching ----------------------------------------------------------------------------
    def _read_status(self, job: JobRun) -> None:
        inc = job.live
        if inc is None:
            return
        node = self._node(inc.placement[0])
        got = self.ssh.run(
            node, f"cat {shlex.quote(inc.directory)}/status.json", "reading status", 15
        )
        if got.ok and got.stdout.strip():
            # the trainer replaces the file whole; a torn read is retried next round
            with contextlib.suppress(ValueError):
                job.status = json.loads(got.stdout)

    def _watch(self) -> None:
        for job in self.jobs:
            inc = job.live
            if inc is None:
                continue
            codes = [self.ssh.poll(p) for p in inc.procs]
            if all(c == 0 for c in codes):
                self._read_status(job)
                self._finish(job, inc, codes)
                continue
            failed = [(p, c) for p, c in zip(inc.procs, codes, strict=True) if c not in (None, 0)]
            if failed:
                proc, code = failed[0]
                how = "vanished (killed)" if code == VANISHED else f"exited with {code}"
                self.progress(f"[{self.now():6.1f} s] {job.name}: {proc.name} {how}; restarting")
                inc.end = "failed"
                self._stop(job, inc, checkpoint=False)
                job.fault_restarts += 1
                self.changes.append(
                    {
                        "time_s": round(self.now(), 1),
                        "job": job.name,
                        "reason": "fault",
                        "replicas_before": job.policy.replicas,
                        "replicas_after": job.policy.replicas,
                        "nodes_after": " ".join(inc.placement),
                    }
                )
                self._start(job, "fault")

    def _inject_faults(self) -> None:
        """Fault injection (tests): `kill[job] = (incarnation, seconds)` SIGKILLs rank 0's process
        group of that incarnation of the job once it has run that long."""
        for job in self.jobs:
            inc = job.live
            if job.name not in self.kill or inc is None:
                continue
            index, after = self.kill[job.name]
            if inc.index != index or self.now() < inc.started + after:
                continue
            del self.kill[job.name]
            proc = inc.procs[0]
            self.ssh.run(self._node(proc.node), f"kill -KILL -- -{proc.pgid}", "killing a replica")

    def _record_monitor(self) -> None:
        """One record of upstream's monitor format: every submitted job's state now."""
        jobs = []
        for job in self.jobs:
            if not self._submitted(job):
                continue
            done = None if job.completed is None else _rfc3339(self.wall0 + job.completed)
            jobs.append(
                {
                    "name": job.name,
                    "epoch": job.status.get("epoch", 0),
                    "allocation": [n.name for n in self._placement(job.policy.alloc)],
                    "batch_size": job.status.get("batch_size", job.trace.batch_size),
                    "submission_time": _rfc3339(self.wall0 + job.policy.submitted),
                    "completion_time": done,
                }
            )
        record = {"timestamp": time.time(), "submitted_jobs": jobs}
        with self.monitor.open("a") as fh:
            fh.write(json.dumps(record, sort_keys=True) + "\n")
        used = sum(j.policy.replicas for j in self.jobs if j.completed is None)
        present = [j for j in self.jobs if self._submitted(j) and j.completed is None]
        self.rounds.append(
            RoundSample(
                time=round(self.now(), 1),
                gpus_in_use=used,
                ce=used / max(int(self.allocator.capacity.sum()), 1),
                running=sum(j.policy.replicas > 0 for j in present),
                pending=sum(j.policy.replicas == 0 for j in present),
            )
        )

    # -- the record --------------------------------------------------------------------------
    def resizes(self) -> dict[str, int]:
        return count_resizes(self.changes)

    def paces(self) -> dict[str, float | None]:
        """Each finished job's replica-seconds of work at the rate its trace duration assumes
        (duration x replicas asked) over the replica-seconds its incarnations held, start-ups
        and stops included: 1 where the replicas trained at that rate and restarts cost
        nothing; None for a job that did not finish."""
        return {
            job.trace.job_id: round(job.trace.duration * job.trace.num_gpu / job.policy.attained, 3)
            if job.completed is not None and job.policy.attained > 0
            else None
            for job in self.jobs
        }

    def write_tables(self) -> None:
        _write_csv(self.out_dir / "allocations.csv", self.changes)
        rows = [
            {
                "job": job.name,
                "index": inc.index,
                "reason": inc.reason,
                "replicas": len(inc.placement),
                "nodes": " ".join(inc.placement),
                "started_s": round(inc.started, 1),
                "ended_s": "" if inc.ended is None else round(inc.ended, 1),
                "end": inc.end,
                "restored_from": "" if inc.restored_from is None else inc.restored_from,
            }
            for job in self.jobs
            for inc in job.incarnations
        ]
        _write_csv(self.out_dir / "incarnations.csv", rows)


def _write_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        if rows:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)


def outcome(controller: Controller, report: DeadlineReport) -> RunOutcome:
    """The run on the trace's clock: a job's times are its trace submit time plus seconds since
    it was submitted; the deadline verdict is the monitor parser's."""
    verdicts = {o.name: o.status == "met" for o in report.outcomes}
    jobs = []
    for job in controller.jobs:
        tj, sub = job.trace, job.policy.submitted
        jobs.append(
            JobOutcome.of(
                tj,
                admitted=True,
                start_time=None
                if job.first_start is None
                else tj.submit_time + job.first_start - sub,
                end_time=None if job.completed is None else tj.submit_time + job.completed - sub,
                gpus_at_end=len(job.incarnations[-1].placement) if job.incarnations else 0,
                met_deadline_published=None if tj.best_effort else verdicts.get(job.name, False),
                preempt=max(len(job.incarnations) - 1, 0),
            )
        )
    met = report.count("met")
    return RunOutcome(jobs, controller.rounds, met, len(report.outcomes) - met)


def run_pollux_nodes(
    trace: Sequence[TraceJob],
    inventory_path: Path,
    settings: ControllerSettings,
    out_dir: Path,
    state_dir: Path,
    *,
    trace_name: str,
    kill: Mapping[str, tuple[int, float]] | None = None,
    progress: Callable[[str], None] = print,
    samples_per_s: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Provision the inventory's nodes, run the trace under Pollux's policy on our controller,
    tear everything down, and write the run record into `out_dir`; returns its summary.
    `samples_per_s` (the rates the trace's work was made with, and where they came from) goes
    into the record as it is."""
    from reprise.testbed.inventory import load_inventory
    from reprise.testbed.providers import make_launcher, make_provider

    inventory = load_inventory(inventory_path)
    provider = make_provider(inventory, state_dir)
    launcher = make_launcher(inventory, [])
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("summary.json", "jobs.csv", "events.csv", "allocations.csv"):
        (out_dir / stale).unlink(missing_ok=True)
    started = time.monotonic()
    load_before = os.getloadavg()
    with TestbedRun(provider, launcher, out_dir / "run") as run:
        progress(f"{len(run.nodes)} node(s) up in {time.monotonic() - started:.0f} s")
        address = controller_address(run.nodes[0].peer_address)
        with Supervisor("0.0.0.0", advertise=address) as supervisor:
            controller = Controller(run, supervisor, trace, settings, out_dir, kill, progress)
            try:
                controller.run_all()
            finally:
                controller.write_tables()
            rejected = supervisor.rejected()
    wall = time.monotonic() - started
    report = deadline_report(read_monitor_log(controller.monitor), list(trace))
    result = RunResult(
        kind="testbed",
        experiment="pollux_testbed",
        trace=trace_name,
        trace_seed=None,
        cluster=inventory.name,
        policy="pollux",
        policy_seed=settings.seed,
        outcome=outcome(controller, report),
    )
    meta = {
        "jct_over_duration": jct_over_duration(result.outcome.jobs, trace),
        "pace": controller.paces(),
        "system": LABEL,
        "adaptdl": ADAPTDL_VERSION,
        "deadline_ratio": report.ratio,
        "monitor": report.summary(),
        "reallocations": controller.resizes(),
        "fault_restarts": sum(j.fault_restarts for j in controller.jobs),
        "incarnations": sum(len(j.incarnations) for j in controller.jobs),
        "searches": controller.allocator.searches,
        "hints_rejected": rejected,
        "nodes": [{"name": n.name, "slots": n.slots} for n in controller.nodes],
        "settings": asdict(settings),
        "wall_s": round(wall, 1),
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
    }
    if samples_per_s is not None:
        meta["samples_per_s"] = dict(samples_per_s)
    return write_run_record(result, out_dir, meta)
