"""Tiresias (`dlas-gpu`): discretised 2D-LAS over three queues, fixed-size jobs.

See docs/policies/tiresias.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from reprise.data.traces import INT64_MAX, TraceJob
from reprise.errors import SimulationError
from reprise.records.outcome import JobOutcome, RoundSample, RunOutcome
from reprise.sim.engine import AllocationChange, Engine, PolicyRun
from reprise.sim.events import Event
from reprise.sim.jobstate import speedup
from reprise.sim.placement import ElasticPlacement

QUEUE_LIMITS: tuple[int, ...] = (3250, 7200)
"""Attained GPU-seconds that demote a job out of Q0 and Q1; upstream's third limit is dead."""

NEVER = INT64_MAX
"""Upstream's `sys.maxsize`: "no such event"."""


class _State(Enum):
    WAITING = "waiting"
    """Not submitted yet."""
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"


@dataclass(slots=True, eq=False)
class _LasJob:
    """Run-time state of one job; identity equality (lists remove by identity)."""

    job: TraceJob
    state: _State = _State.WAITING
    queue: int = 0
    last_check: int = 0
    executed: int = 0
    """Seconds of service used for the queue decision."""
    total_executed: int = 0
    """Seconds of service counted against the trace `duration`."""
    pending_time: int = 0
    overhead: float = 0.0
    start_time: int | None = None
    end_time: int = 0
    """Predicted end from the latest round that filed this job's completion."""
    preempt: int = 0
    speedup: float | None = None
    """tput(num_gpu) / tput(1), looked up at the job's first round sample (`_first_speedup`)."""

    @property
    def num_gpu(self) -> int:
        return self.job.num_gpu


class Tiresias(PolicyRun):
    """One run: the queues, the one completion event and the next queue jump; each method is
    one phase of a round (docs/policies/tiresias.md)."""

    label = "dlas-gpu"
    merge_completions = False

    def prepare(self, trace: list[TraceJob]) -> None:
        self.placement = ElasticPlacement(self.cluster)
        self.states = [_LasJob(job) for job in trace]
        self.arrivals = self.engine.events
        self.speedups: dict[int, float] = {}
        self.runnable: list[_LasJob] = []
        self.queues: list[list[_LasJob]] = [[], [], []]
        self.accepted = self.declined = 0
        self.end_event_time = NEVER
        self.end_event_jobs: list[int] = []
        self.next_jump = NEVER
        self.stuck = 0
        """Jobs left when the cluster cannot run them (upstream stops there)."""

    def run(self) -> None:
        """Rounds until every job is done or the cluster cannot run the rest."""
        while self.arrivals or self.runnable:
            if not self.arrivals and self.end_event_time == NEVER:
                # upstream: "This cluster is not large enough to run the job" and stops
                self.stuck = len(self.runnable)
                return
            now, arrival, ending = self.next_round()
            self.finish(ending)
            if arrival is not None:
                self.admit(arrival)
            self.account(now)
            restart = self.allocate(now)
            self.predict_end(now, restart)
            self.plan_jump(now)
            self.postpone(now)

    def next_round(self) -> tuple[int, Event | None, list[int]]:
        """Which comes next: an arrival batch, the completion batch or a queue jump."""
        arrivals = self.arrivals
        start_time = int(arrivals.first.time) if arrivals else NEVER
        arrival = None
        ending: list[int] = []
        if self.end_event_time < start_time:
            now = self.end_event_time
            ending = self.end_event_jobs
        else:
            now = start_time
            arrival = arrivals.first
            if self.end_event_time == start_time:
                # quirk: upstream attaches the completions to the arrival event itself; if a queue
                # jump pre-empts this round they stay there and fire whenever that arrival batch
                # is processed (docs/policies/tiresias.md)
                arrival.completions = self.end_event_jobs
            ending = arrival.completions
        if now > self.next_jump:
            now = self.next_jump
            arrival = None
            ending = []
        return now, arrival, ending

    def finish(self, ending: list[int]) -> None:
        for idx in ending:
            las = self.states[idx]
            if las.state is _State.DONE:
                raise SimulationError(f"Tiresias: job {idx} completes twice (upstream crashes)")
            if las.end_time > las.job.deadline:
                self.declined += 1
            elif not las.job.best_effort:
                self.accepted += 1
            self.placement.release(idx)
            las.state = _State.DONE
            self.runnable.remove(las)
            self.queues[las.queue].remove(las)
            self.engine.job_done()

    def admit(self, arrival: Event) -> None:
        for idx in arrival.arrivals:
            las = self.states[idx]
            las.state = _State.PENDING
            las.last_check = las.job.submit_time
            self.runnable.append(las)
            self.queues[0].append(las)
        self.arrivals.remove(arrival)

    def account(self, now: int) -> None:
        """Credit the elapsed time; demote by attained GPU-seconds."""
        queues = self.queues
        for las in self.runnable:
            elapsed = int(now - las.last_check)
            las.last_check = now
            if las.state is _State.RUNNING:
                gained = max(elapsed - las.overhead, 0)
                las.total_executed = int(las.total_executed + gained)
                las.executed = int(las.executed + gained)
                las.overhead = 0.0
                q = las.queue
                if q < len(QUEUE_LIMITS) and las.executed * las.num_gpu >= QUEUE_LIMITS[q]:
                    las.queue = q + 1
                    queues[q + 1].append(las)
                    queues[q].remove(las)
            elif las.state is _State.PENDING:
                las.pending_time += elapsed

    def allocate(self, now: int) -> bool:
        """Greedy allocation in queue order, non-fitting jobs skipped (backfilling); place and
        charge the (re)launched jobs. Returns whether this is a restart round."""
        restart = self.engine.restart_round()
        free = self.n
        starting: list[_LasJob] = []
        stopping: list[_LasJob] = []
        for queue in self.queues:
            for las in queue:
                if free >= las.num_gpu:
                    if las.state is _State.PENDING:
                        starting.append(las)
                    free -= las.num_gpu
                elif las.state is _State.RUNNING:
                    stopping.append(las)
        placement, runnable = self.placement, self.runnable
        placement.release_all([las.job.idx for las in runnable if placement.is_placed(las.job.idx)])
        for las in stopping:
            las.state = _State.PENDING
            las.preempt += 1
        for las in starting:
            las.state = _State.RUNNING
            if las.start_time is None:
                las.start_time = now
        runnable.sort(key=_gpus, reverse=True)
        for las in runnable:
            if las.state is _State.RUNNING and not placement.place(las.job.idx, las.num_gpu):
                raise SimulationError(
                    f"Tiresias: job {las.job.idx} ({las.num_gpu} GPUs) fits the free-GPU count "
                    f"but not the node sets of {self.cluster.name} (upstream asserts here)"
                )
        # the round's sample before its charge: an executor placing real jobs learns the whole
        # allocation from it before it is asked what the relaunched ones paid
        self.sample(now)
        _charge(self.engine, runnable if restart else starting, now, restart)
        for queue in self.queues:
            queue[:] = [j for j in queue if j.state is not _State.PENDING] + [
                j for j in queue if j.state is _State.PENDING
            ]
        return restart

    def predict_end(self, now: int, restart: bool) -> None:
        """The earliest predicted completion becomes the one completion event."""
        slot = self.slot
        min_slot = self.options.tiresias_min_slot_end_event
        self.end_event_time = NEVER
        self.end_event_jobs = []
        for las in self.runnable:
            if las.state is not _State.RUNNING:
                continue
            remaining: float = las.job.duration - las.total_executed
            if restart:
                remaining += las.overhead
            predicted = int(now + remaining)
            event_time = max(now + slot, predicted) if min_slot else predicted
            if event_time < self.end_event_time:
                self.end_event_time = event_time
                self.end_event_jobs = [las.job.idx]
                las.end_time = predicted
            elif event_time == self.end_event_time:
                las.end_time = predicted
                self.end_event_jobs.append(las.job.idx)

    def plan_jump(self, now: int) -> None:
        """quirk: the jump divides the GPU-second limit by the GPU count but subtracts seconds."""
        self.next_jump = NEVER
        for las in self.runnable:
            if las.state is _State.RUNNING and las.queue < len(QUEUE_LIMITS):
                wait = math.ceil((QUEUE_LIMITS[las.queue] - las.executed) / las.num_gpu)
                self.next_jump = min(self.next_jump, int(wait + now))

    def sample(self, now: int) -> None:
        """The round sample; `ce` counts only running, placed jobs."""
        placement, runnable = self.placement, self.runnable
        layout = placement.layout()
        running, is_placed = _State.RUNNING, placement.is_placed
        held = [
            las.speedup if las.speedup is not None else self._first_speedup(las)
            for las in runnable
            if las.state is running and is_placed(las.job.idx)
        ]
        ce = sum(held) / self.n
        self.engine.add_round(
            RoundSample(
                time=now,
                gpus_in_use=sum(1 for cell in layout.gpu_map if cell is not None),
                ce=ce,
                running=sum(1 for las in runnable if las.state is _State.RUNNING),
                pending=sum(1 for las in runnable if las.state is _State.PENDING),
                gpu_map=layout.gpu_map if self.options.record_gpu_map else None,
            )
        )

    def _first_speedup(self, las: _LasJob) -> float:
        """Looked up lazily, as upstream's round log does (a size without a profile column
        fails here), then kept on the job."""
        las.speedup = value = speedup(self.speedups, self.profiles, las.job)
        return value

    def postpone(self, now: int) -> None:
        """Nothing happens sooner than one slot from now."""
        slot = self.slot
        if self.next_jump - now < slot:
            self.next_jump = now + slot
        if self.arrivals:
            self.arrivals.coalesce(now, slot)
        if self.end_event_time != NEVER and self.end_event_time < now + slot:
            self.end_event_time = now + slot

    def outcome(self) -> RunOutcome:
        """A job counts as met when its recorded end <= deadline."""
        engine = self.engine
        engine.accepted, engine.declined = self.accepted, self.declined
        return engine.outcome(
            [_outcome(las) for las in self.states],
            {"rounds": len(engine.rounds), "unfinished_when_stopped": self.stuck},
        )


def _charge(engine: Engine, jobs: list[_LasJob], now: float, restart: bool) -> None:
    """Jobs (re)launched this round pay their overhead, never warm: the starting ones, or on a
    restart round every running one (docs/policies/tiresias.md)."""
    relaunched = [las for las in jobs if las.state is _State.RUNNING]
    changes = [AllocationChange(las.job.idx, las.num_gpu, False) for las in relaunched]
    paid = engine.overheads(now, changes, restart)
    for las in relaunched:
        las.overhead = paid[las.job.idx]


def _gpus(las: _LasJob) -> int:
    return las.job.num_gpu


def _outcome(las: _LasJob) -> JobOutcome:
    job = las.job
    done = las.state is _State.DONE
    return JobOutcome.of(
        job,
        admitted=True,
        start_time=las.start_time,
        end_time=las.end_time if done else None,
        gpus_at_end=job.num_gpu if done else None,
        met_deadline_published=None
        if job.best_effort or not done
        else las.end_time <= job.deadline,
        preempt=las.preempt,
    )


simulate = Tiresias.simulate
"""Replay a trace under Tiresias (the registry's entry point)."""
