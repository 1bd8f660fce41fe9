"""Tiresias (`dlas-gpu`, spec 3.6): discretised 2D-LAS over three queues, fixed-size jobs."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from enum import Enum

from tqdm import tqdm

from reprise.data.clusters import ClusterSpec
from reprise.data.profiles import ThroughputProfiles
from reprise.data.traces import INT64_MAX, TraceJob, submission_order
from reprise.errors import SimulationError
from reprise.sim.events import EventList
from reprise.sim.outcome import JobOutcome, RoundSample, SimOptions, SimResult
from reprise.sim.placement_elastic import ElasticPlacement
from reprise.sim.timing import overhead

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

    @property
    def num_gpu(self) -> int:
        return self.job.num_gpu


def simulate(
    trace: list[TraceJob],
    cluster: ClusterSpec,
    profiles: ThroughputProfiles,
    options: SimOptions,
) -> SimResult:
    """Replay `trace` under Tiresias; a job counts as met when its recorded end <= deadline."""
    slot = options.slot
    num_gpus = cluster.num_gpus
    placement = ElasticPlacement(cluster)
    states = [_LasJob(job) for job in trace]
    arrivals = EventList.from_arrivals(
        ((j.idx, j.submit_time) for j in submission_order(trace)), merge_completions=False
    )
    speedups: dict[int, float] = {}
    runnable: list[_LasJob] = []
    queues: list[list[_LasJob]] = [[], [], []]
    rounds: list[RoundSample] = []
    accepted = declined = 0
    round_counter = 0
    end_event_time = NEVER
    end_event_jobs: list[int] = []
    next_jump = NEVER
    stuck = 0
    bar = tqdm(
        total=len(trace),
        desc="dlas-gpu",
        unit="job",
        file=sys.stderr,
        disable=not options.show_progress,
    )

    while arrivals or runnable:
        if not arrivals and end_event_time == NEVER:
            # upstream: "This cluster is not large enough to run the job" and stops
            stuck = len(runnable)
            break

        # -- which event comes next: an arrival batch, the completion batch or a queue jump --
        start_time = int(arrivals.first.time) if arrivals else NEVER
        arrival = None
        ending: list[int] = []
        if end_event_time < start_time:
            now = end_event_time
            ending = end_event_jobs
        else:
            now = start_time
            arrival = arrivals.first
            if end_event_time == start_time:
                # quirk: upstream attaches the completions to the arrival event itself; if a queue
                # jump pre-empts this round they stay there and fire whenever that arrival batch
                # is processed (not in the spec)
                arrival.completions = end_event_jobs
            ending = arrival.completions
        if now > next_jump:
            now = next_jump
            arrival = None
            ending = []

        for idx in ending:
            las = states[idx]
            if las.state is _State.DONE:
                raise SimulationError(f"Tiresias: job {idx} completes twice (upstream crashes)")
            if las.end_time > las.job.deadline:
                declined += 1
            elif not las.job.best_effort:
                accepted += 1
            placement.release(idx)
            las.state = _State.DONE
            runnable.remove(las)
            queues[las.queue].remove(las)
            bar.update(1)

        if arrival is not None:
            for idx in arrival.arrivals:
                las = states[idx]
                las.state = _State.PENDING
                las.last_check = las.job.submit_time
                runnable.append(las)
                queues[0].append(las)
            arrivals.remove(arrival)

        # -- account the elapsed time, demote by attained GPU-seconds --
        for las in runnable:
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

        # -- greedy allocation in queue order; non-fitting jobs are skipped (backfilling) --
        restart = round_counter > 0 and round_counter % slot == 0
        round_counter += 1
        free = num_gpus
        starting: list[_LasJob] = []
        stopping: list[_LasJob] = []
        for queue in queues:
            for las in queue:
                if free >= las.num_gpu:
                    if las.state is _State.PENDING:
                        starting.append(las)
                        las.overhead = overhead(las.num_gpu, restart, False, num_gpus)
                    free -= las.num_gpu
                elif las.state is _State.RUNNING:
                    stopping.append(las)
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
                    f"but not the node sets of {cluster.name} (upstream asserts here)"
                )
        for queue in queues:
            queue[:] = [j for j in queue if j.state is not _State.PENDING] + [
                j for j in queue if j.state is _State.PENDING
            ]

        # -- the earliest predicted completion becomes the one completion event --
        end_event_time = NEVER
        end_event_jobs = []
        for las in runnable:
            if las.state is not _State.RUNNING:
                continue
            remaining: float = las.job.duration - las.total_executed
            if restart:
                las.overhead = overhead(las.num_gpu, True, False, num_gpus)
                remaining += las.overhead
            predicted = int(now + remaining)
            event_time = (
                max(now + slot, predicted) if options.tiresias_min_slot_end_event else predicted
            )
            if event_time < end_event_time:
                end_event_time = event_time
                end_event_jobs = [las.job.idx]
                las.end_time = predicted
            elif event_time == end_event_time:
                las.end_time = predicted
                end_event_jobs.append(las.job.idx)

        # quirk: the jump divides the GPU-second limit by the GPU count but subtracts seconds
        next_jump = NEVER
        for las in runnable:
            if las.state is _State.RUNNING and las.queue < len(QUEUE_LIMITS):
                wait = math.ceil((QUEUE_LIMITS[las.queue] - las.executed) / las.num_gpu)
                next_jump = min(next_jump, int(wait + now))

        layout = placement.layout()
        ce = (
            sum(
                _speedup(speedups, profiles, las.job)
                for las in runnable
                if las.state is _State.RUNNING and placement.is_placed(las.job.idx)
            )
            / num_gpus
        )
        rounds.append(
            RoundSample(
                time=now,
                gpus_in_use=sum(1 for cell in layout.gpu_map if cell is not None),
                ce=ce,
                running=sum(1 for las in runnable if las.state is _State.RUNNING),
                pending=sum(1 for las in runnable if las.state is _State.PENDING),
                gpu_map=layout.gpu_map if options.record_gpu_map else None,
            )
        )

        # -- nothing happens sooner than one slot from now --
        if next_jump - now < slot:
            next_jump = now + slot
        if arrivals:
            arrivals.coalesce(now, slot)
        if end_event_time != NEVER and end_event_time < now + slot:
            end_event_time = now + slot
    bar.close()

    return SimResult(
        jobs=[_outcome(las) for las in states],
        rounds=rounds,
        accepted=accepted,
        declined=declined,
        extra={"rounds": len(rounds), "unfinished_when_stopped": stuck},
    )


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


def _speedup(cache: dict[int, float], profiles: ThroughputProfiles, job: TraceJob) -> float:
    """tput(g) / tput(1) at the job's own size; looked up lazily, as upstream's round log does."""
    value = cache.get(job.idx)
    if value is None:
        model, batch = job.model, job.batch_size
        value = profiles.tput(model, batch, job.num_gpu) / profiles.tput(model, batch, 1)
        cache[job.idx] = value
    return value
