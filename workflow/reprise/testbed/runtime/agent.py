"""The node agent: a gRPC server on each node that keeps one trainer per slot, hands ranks of jobs
to them, relays what they report, and serves its checkpoints to other agents.

`python -m reprise.testbed.runtime.agent --node NAME --slots N --address ADDR --workdir DIR`.
It prints one line `REPRISE-AGENT-READY {json}` (with the port it listens on) once it serves.
Trainers are its children, in its process group: stopping the agent's group stops them too, and a
trainer whose agent died leaves by itself (its stdin closes). A trainer that dies is replaced.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import grpc  # type: ignore[import-untyped]

from reprise.testbed.runtime import stubs
from reprise.testbed.runtime.trainer import REPORT_FD_ENV

READY = "REPRISE-AGENT-READY"
READY_S = 120.0
"""Longest a run waits for its slot's trainer to be idle (a replacement imports torch)."""
CHUNK = 1 << 20
KEEPALIVE = [
    ("grpc.keepalive_time_ms", 2000),
    ("grpc.keepalive_timeout_ms", 2000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 1000),
    ("grpc.http2.max_pings_without_data", 0),
]
"""Both ends ping: a controller notices a vanished node within seconds, not at TCP's timeout."""


def free_port() -> int:
    """A TCP port nothing listens on now (a job's rendezvous; chosen here, recorded upstream)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("", 0))
        return int(sock.getsockname()[1])


@dataclass
class Slot:
    """One slot's trainer process and the rank of the job it holds (job None: free)."""

    index: int
    proc: subprocess.Popen[bytes] | None = None
    job: str | None = None
    rank: int = -1
    generation: int = 0
    failure: str = ""
    spawned: int = 0
    ready: bool = False
    """The trainer said "idle": torch imported, the last job's process group torn down."""
    handed: int = 0
    """PID of the trainer the slot's job was handed to (0: reserved, not handed yet)."""


def _tell(stdin: IO[bytes] | None, message: dict[str, Any]) -> bool:
    if stdin is None:
        return False
    try:
        stdin.write((json.dumps(message) + "\n").encode())
        stdin.flush()
    except (OSError, ValueError):  # the trainer died just now; its exit is reported anyway
        return False
    return True


class Agent:
    """The servicer's state; every method may run on any of the server's threads."""

    def __init__(
        self, node: str, slots: int, gpus: int, address: str, workdir: Path, python: str
    ) -> None:
        self.node = node
        self.gpus = gpus
        self.address = address
        self.port = 0
        self.workdir = workdir
        self.python = python
        self.slots = [Slot(i) for i in range(slots)]
        self.checkpoints: dict[str, dict[str, Any]] = {}
        self.launching: dict[str, threading.Event] = {}
        self.lock = threading.Condition()
        self.watchers: list[queue.Queue[Any]] = []
        self.pb = stubs.pb()
        self.done = threading.Event()
        self.leaving = False

    # ---- trainers -----------------------------------------------------------------------------
    def start_trainers(self) -> None:
        for slot in self.slots:
            self._spawn(slot)

    def _spawn(self, slot: Slot) -> None:
        read_end, write_end = os.pipe()
        env = {**os.environ, "REPRISE_NODE_ADDRESS": self.address, REPORT_FD_ENV: str(write_end)}
        if self.gpus:
            env["CUDA_VISIBLE_DEVICES"] = str(slot.index)
        argv = [self.python, "-m", "reprise.testbed.runtime.trainer", f"--slot={slot.index}"]
        # the trainers write into the agent's own log, which the run collects
        proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, pass_fds=(write_end,), env=env, cwd=self.workdir
        )
        os.close(write_end)
        slot.proc = proc
        slot.ready = False
        slot.spawned += 1
        threading.Thread(target=self._relay, args=(slot, proc, read_end), daemon=True).start()

    def _relay(self, slot: Slot, proc: subprocess.Popen[bytes], read_end: int) -> None:
        """Forward a trainer's reports as events; its end of file is its death."""
        with os.fdopen(read_end, "r") as stream:
            for line in stream:
                try:
                    report = json.loads(line)
                except ValueError:
                    continue
                self._forward(slot, proc, report)
        rc = proc.wait()
        with self.lock:
            # a job only reserved for this slot waits for the replacement instead
            job = slot.job if slot.handed == proc.pid else None
            rank, generation, failure = slot.rank, slot.generation, slot.failure
            if job is not None:
                slot.job, slot.handed = None, 0
            slot.failure = ""
            replace = not self.leaving
            self.lock.notify_all()
        if job is not None:
            how = f"failed: {failure}" if failure else f"the trainer exited with status {rc}"
            if rc < 0:
                how = f"killed by {signal.Signals(-rc).name}"
            self.emit(
                "exited",
                job,
                rank=rank,
                generation=generation,
                exit_code=rc if rc else 1,
                detail=how,
            )
        if replace:
            with self.lock:
                self._spawn(slot)

    def _forward(self, slot: Slot, proc: subprocess.Popen[bytes], report: dict[str, Any]) -> None:
        kind = str(report.get("kind"))
        job = str(report.get("job", ""))
        fields: dict[str, Any] = {
            "rank": slot.rank,
            "generation": int(report.get("generation", 0)),
            "time": float(report.get("time", time.time())),
        }
        if kind == "idle":
            with self.lock:
                slot.ready = slot.proc is proc
                self.lock.notify_all()
            return
        if kind == "stable":
            fields.update(
                iteration=int(report["iteration"]),
                world_size=int(report["world_size"]),
                detail=json.dumps(report.get("phases", {})),
            )
        elif kind == "progress":
            fields.update(
                iteration=int(report["iteration"]),
                iterations_per_s=float(report["iterations_per_s"]),
            )
        elif kind == "checkpointed":
            saved = {k: report[k] for k in ("path", "iteration", "bytes", "seconds")}
            with self.lock:
                self.checkpoints[job] = saved
            fields.update(
                iteration=int(saved["iteration"]),
                seconds=float(saved["seconds"]),
                detail=str(saved["path"]),
            )
        elif kind == "command":
            fields.update(seconds=fields["time"] - float(report.get("sent_at", 0.0)))
        elif kind == "finished":
            with self.lock:
                if slot.job == job:
                    slot.job, slot.handed = None, 0
                self.lock.notify_all()
            kind = "exited"
            fields.update(iteration=int(report["iteration"]), exit_code=0, detail="stopped")
        elif kind == "failed":
            with self.lock:
                slot.failure = str(report.get("detail", ""))
            return  # reported with the process's exit, which follows
        else:
            kind = "error"
            fields.update(detail=str(report.get("detail", report)))
        self.emit(kind, job, **fields)

    # ---- events -------------------------------------------------------------------------------
    def emit(self, kind: str, job: str = "", **fields: Any) -> None:
        event = self.pb.Event(
            kind=self.pb.Event.Kind.Value(kind.upper()),
            node=self.node,
            job=job,
            time=fields.pop("time", time.time()),
            **fields,
        )
        with self.lock:
            for watcher in self.watchers:
                watcher.put(event)

    def Watch(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        mine: queue.Queue[Any] = queue.Queue()
        with self.lock:
            self.watchers.append(mine)
        try:
            while context.is_active() and not self.done.is_set():
                try:
                    yield mine.get(timeout=0.5)
                except queue.Empty:
                    continue
        finally:
            with self.lock:
                self.watchers.remove(mine)

    def Describe(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self.pb.AgentInfo(
            node=self.node,
            slots=len(self.slots),
            pid=os.getpid(),
            protocol=stubs.PROTOCOL,
            address=self.address,
            port=self.port,
        )

    # ---- starting -----------------------------------------------------------------------------
    def job_dir(self, job: str) -> Path:
        return self.workdir / "jobs" / job

    def StartRanks(self, request: Any, context: grpc.ServicerContext) -> Any:
        job = request.spec.job
        with self.lock:
            for r in request.ranks:
                if not 0 <= r.slot < len(self.slots):
                    context.abort(
                        grpc.StatusCode.INVALID_ARGUMENT,
                        f"node {self.node} has slots 0..{len(self.slots) - 1}, not {r.slot}",
                    )
                holder = self.slots[r.slot].job
                if holder is not None:
                    context.abort(
                        grpc.StatusCode.FAILED_PRECONDITION,
                        f"slot {r.slot} of node {self.node} still holds job {holder}",
                    )
            for r in request.ranks:
                slot = self.slots[r.slot]
                slot.job, slot.rank, slot.generation = job, r.rank, request.generation
            launched = threading.Event()
            self.launching[job] = launched
        port = request.master_port or free_port()
        threading.Thread(target=self._launch, args=(request, port, launched), daemon=True).start()
        return self.pb.StartRanksReply(master_port=port)

    def _fetch(self, source: Any, dest: Path) -> tuple[int, float]:
        """Pull a checkpoint from the agent holding it (migration); written whole or not at all."""
        began = time.monotonic()
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
        size = 0
        with grpc.insecure_channel(f"{source.address}:{source.port}", options=KEEPALIVE) as ch:
            stub = stubs.rpc().NodeAgentStub(ch)
            with tmp.open("wb") as out:
                for chunk in stub.FetchCheckpoint(self.pb.FetchCheckpointRequest(path=source.path)):
                    out.write(chunk.data)
                    size += len(chunk.data)
        tmp.replace(dest)
        return size, time.monotonic() - began

    def _launch(self, request: Any, port: int, launched: threading.Event) -> None:
        spec = request.spec
        resume = ""
        try:
            if request.resume.path and any(r.rank == 0 for r in request.ranks):
                resume = request.resume.path
                if request.resume.node != self.node:
                    dest = self.job_dir(spec.job) / "checkpoint.pt"
                    size, seconds = self._fetch(request.resume, dest)
                    resume = str(dest)
                    self.emit(
                        "fetched",
                        spec.job,
                        generation=request.generation,
                        iteration=size,
                        seconds=seconds,
                        detail=f"from {request.resume.node}",
                    )
            for r in request.ranks:
                self._hand_over(request, r, port, resume)
        except Exception as exc:  # reported, not raised: nobody waits on this thread
            self.emit("error", spec.job, generation=request.generation, detail=str(exc))
            with self.lock:
                for r in request.ranks:
                    self._free_and_replace(self.slots[r.slot], spec.job)
        finally:
            launched.set()

    def _free_and_replace(self, slot: Slot, job: str) -> None:
        """A launch that failed part way (lock held): a trainer that got its rank is replaced
        (its exit is reported), a slot only reserved is freed."""
        if slot.job != job:
            return
        if slot.handed and slot.proc is not None and slot.proc.pid == slot.handed:
            with contextlib.suppress(ProcessLookupError):
                slot.proc.kill()
        else:
            slot.job, slot.handed = None, 0
            self.lock.notify_all()

    def _hand_over(self, request: Any, r: Any, port: int, resume: str) -> None:
        spec = request.spec
        message = {
            "cmd": "run",
            "job": spec.job,
            "generation": request.generation,
            "rank": r.rank,
            "world_size": request.world_size,
            "master_address": request.master_address,
            "master_port": port,
            "model": spec.model,
            "size": spec.size,
            "global_batch": spec.global_batch,
            "seed": spec.seed,
            "threads": spec.threads or 1,
            "backend": spec.backend or "auto",
            "stable_after": request.stable_after or 1,
            "progress_every_s": request.progress_every_s or 2.0,
            "timeout_s": request.timeout_s or 120.0,
            "resume": resume if r.rank == 0 else "",
        }
        slot = self.slots[r.slot]
        with self.lock:
            # a trainer still tearing its last job down (or a replacement importing torch)
            # takes the run once it says it is idle
            ready = self.lock.wait_for(lambda: slot.ready and slot.proc is not None, READY_S)
            proc = slot.proc
            if not ready or proc is None:
                raise OSError(f"the trainer of slot {r.slot} on node {self.node} is not ready")
            slot.ready, slot.handed = False, proc.pid
        if not _tell(proc.stdin, message):
            raise OSError(f"the trainer of slot {r.slot} on node {self.node} is not running")
        self.emit(
            "started",
            spec.job,
            rank=r.rank,
            generation=request.generation,
            world_size=request.world_size,
            detail=f"slot {r.slot} pid {proc.pid}",
        )

    # ---- stopping -----------------------------------------------------------------------------
    def StopJob(self, request: Any, context: grpc.ServicerContext) -> Any:
        began = time.monotonic()
        timeout = request.timeout_s or 60.0
        job = request.job
        with self.lock:
            launched = self.launching.get(job)
        if launched is None:
            return self.pb.StopJobReply()
        launched.wait(timeout)  # a stop during a checkpoint fetch waits for the hand-over
        path = self.job_dir(job) / "checkpoint.pt"
        with self.lock:
            if request.checkpoint:
                self.checkpoints.pop(job, None)
            mine = [s for s in self.slots if s.job == job]
        for slot in mine:
            if slot.rank != 0 or slot.proc is None:
                continue  # the other ranks follow rank 0's decision at their next step
            order: dict[str, Any] = {"cmd": "stop", "job": job, "sent_at": request.sent_at}
            if request.checkpoint:
                order["checkpoint"] = str(path)
            _tell(slot.proc.stdin, order)
        with self.lock:
            self.lock.wait_for(lambda: all(s.job != job for s in self.slots), timeout)
            left = [s for s in self.slots if s.job == job]
        for slot in left:  # their stacks go to the log first, for the post-mortem
            if slot.proc is not None:
                with contextlib.suppress(ProcessLookupError):
                    slot.proc.send_signal(signal.SIGUSR1)
        if left:
            time.sleep(0.5)
        for slot in left:  # replaced by fresh trainers once they are gone
            if slot.proc is not None:
                with contextlib.suppress(ProcessLookupError):
                    slot.proc.kill()
        with self.lock:
            self.lock.wait_for(lambda: all(s.job != job for s in self.slots), 10.0)
            saved = self.checkpoints.get(job) if request.checkpoint else None
        reply = self.pb.StopJobReply(
            seconds=time.monotonic() - began, killed=[s.rank for s in left]
        )
        if saved is not None:
            reply.checkpoint_path = str(saved["path"])
            reply.iteration = int(saved["iteration"])
            reply.checkpoint_bytes = int(saved["bytes"])
        return reply

    # ---- serving checkpoints ------------------------------------------------------------------
    def FetchCheckpoint(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        path = Path(request.path).resolve()
        if self.workdir.resolve() not in path.parents:
            context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"{path} is outside node {self.node}'s job folder {self.workdir}",
            )
        if not path.is_file():
            context.abort(grpc.StatusCode.NOT_FOUND, f"node {self.node} holds no {path}")
        total = path.stat().st_size
        with path.open("rb") as f:
            while data := f.read(CHUNK):
                yield self.pb.Chunk(data=data, total_bytes=total)

    # ---- leaving ------------------------------------------------------------------------------
    def stop_all(self) -> int:
        """Every trainer ends (SIGTERM, SIGKILL after 5 s); returns how many held a job."""
        with self.lock:
            self.leaving = True
            procs = [s.proc for s in self.slots if s.proc is not None]
            busy = sum(1 for s in self.slots if s.job is not None)
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
        deadline = time.monotonic() + 5.0
        for proc in procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return busy

    def Shutdown(self, request: Any, context: grpc.ServicerContext) -> Any:
        stopped = self.stop_all()
        # answer first, then leave: the main thread waits for this event
        threading.Timer(0.2, self.done.set).start()
        return self.pb.ShutdownReply(stopped=stopped)


def _servicer(agent: Agent) -> Any:
    """The generated base class with the agent's methods (the base answers UNIMPLEMENTED)."""
    base = stubs.rpc().NodeAgentServicer
    methods = ("Describe", "StartRanks", "StopJob", "Watch", "FetchCheckpoint", "Shutdown")
    bound = {m: staticmethod(getattr(agent, m)) for m in methods}
    return type("NodeAgentService", (base,), bound)()


def serve(agent: Agent, bind: str, port: int) -> Any:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32), options=KEEPALIVE)
    stubs.rpc().add_NodeAgentServicer_to_server(_servicer(agent), server)
    try:
        chosen = server.add_insecure_port(f"{bind}:{port}")
    except RuntimeError:
        chosen = 0
    if chosen == 0:
        raise OSError(f"port {port} on node {agent.node} ({bind}) is in use or not allowed")
    agent.port = chosen
    server.start()
    return server


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m reprise.testbed.runtime.agent")
    p.add_argument("--node", required=True, help="this node's name in the run")
    p.add_argument("--slots", type=int, required=True, help="ranks this node can hold")
    p.add_argument("--gpus", type=int, default=0, help="GPUs (one slot each); 0: CPU slots")
    p.add_argument("--address", required=True, help="where other nodes reach this one")
    p.add_argument("--bind", default="0.0.0.0", help="address to listen on")
    p.add_argument("--port", type=int, default=0, help="0: any free port (the default)")
    p.add_argument("--workdir", type=Path, required=True, help="this agent's jobs and logs")
    p.add_argument("--python", default=sys.executable, help="interpreter of the trainers")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    agent = Agent(args.node, args.slots, args.gpus, args.address, args.workdir, args.python)
    try:
        server = serve(agent, args.bind, args.port)
    except OSError as exc:
        print(f"[agent {args.node}] error: {exc}", file=sys.stderr, flush=True)
        return 3
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: agent.done.set())
    agent.start_trainers()
    info = {"node": args.node, "port": agent.port, "pid": os.getpid(), "protocol": stubs.PROTOCOL}
    print(f"{READY} {json.dumps(info)}", flush=True)
    while not agent.done.wait(1.0):
        pass
    agent.stop_all()
    server.stop(grace=1.0).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
