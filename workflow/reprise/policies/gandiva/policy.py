"""Gandiva (spec 3.5): fixed-size jobs packed into node sets and time-sliced, duration-based."""

from __future__ import annotations

import sys

from tqdm import tqdm

from reprise.data.clusters import ClusterSpec
from reprise.data.profiles import ThroughputProfiles
from reprise.data.traces import TraceJob, submission_order
from reprise.errors import SimulationError
from reprise.sim.events import EventList
from reprise.sim.outcome import JobOutcome, RoundSample, SimOptions, SimResult
from reprise.sim.placement_gandiva import GandivaPlacement, SlicedJob
from reprise.sim.timing import overhead


def simulate(
    trace: list[TraceJob],
    cluster: ClusterSpec,
    profiles: ThroughputProfiles,
    options: SimOptions,
) -> SimResult:
    """Replay `trace` under Gandiva; counters follow the upstream bookkeeping (spec 6.1)."""
    slot = options.slot
    num_gpus = cluster.num_gpus
    placement = GandivaPlacement(cluster)
    states = [SlicedJob(job) for job in trace]
    arrivals = EventList.from_arrivals(
        ((j.idx, j.submit_time) for j in submission_order(trace)), merge_completions=False
    )
    speedups: dict[int, float] = {}
    running: list[SlicedJob] = []
    pending: list[SlicedJob] = []
    rounds: list[RoundSample] = []
    accepted = declined = 0
    restart_counter = 0
    waited: list[SlicedJob] = []
    bar = tqdm(
        total=len(trace),
        desc="gandiva",
        unit="job",
        file=sys.stderr,
        disable=not options.show_progress,
    )

    now = int(arrivals.first.time)
    elapsed = 0
    while arrivals or pending or running:
        placement.rebalance()
        finished, released = placement.time_slice(now, elapsed)
        for sliced in finished:
            running.remove(sliced)
            assert sliced.end_time is not None
            if sliced.end_time > sliced.job.deadline:
                declined += 1
                accepted -= 1
            bar.update(1)
        # quirk: upstream clears the overhead only of jobs that ever waited (its "runnable" list),
        # after execution; a sliced-out job that never waited keeps a stale one (spec 3.5)
        for sliced in waited:
            sliced.overhead = 0.0

        event = arrivals.find(now)
        if event is not None:
            arrivals.remove(event)
            for idx in event.arrivals:
                sliced = states[idx]
                job = sliced.job
                if placement.place(sliced):
                    sliced.start_time = now
                    running.append(sliced)
                    if not job.best_effort:
                        accepted += 1
                else:
                    waited.append(sliced)
                    pending.append(sliced)

        if released:
            # quirk: upstream removes from the list it iterates, so the job right after each
            # started one is not tried in this round
            cursor = 0
            while cursor < len(pending):
                sliced = pending[cursor]
                cursor += 1
                if placement.place(sliced):
                    pending.remove(sliced)
                    sliced.start_time = now
                    running.append(sliced)
                    if not sliced.job.best_effort:
                        accepted += 1

        gpus_in_use = placement.mark_slots()
        ce = sum(_speedup(speedups, profiles, s.job) for s in running if s.in_slot) / num_gpus
        rounds.append(
            RoundSample(
                time=now,
                gpus_in_use=gpus_in_use,
                ce=ce,
                running=len(running),
                pending=len(pending),
                gpu_map=placement.gpu_map() if options.record_gpu_map else None,
            )
        )

        if not arrivals:
            if pending and not running:
                raise SimulationError(
                    f"Gandiva: {len(pending)} job(s) can never be placed on {cluster.name} "
                    "(upstream loops forever here)"
                )
            now += slot
            elapsed = slot
            continue
        restart = restart_counter > 0 and restart_counter % slot == 0
        restart_counter += 1
        for sliced in running:
            sliced.overhead = overhead(sliced.num_gpu, restart, False, num_gpus)
        nxt = int(arrivals.coalesce(now, slot))
        elapsed = nxt - now
        now = nxt
    bar.close()

    outcomes = [_outcome(s) for s in states]
    return SimResult(
        jobs=outcomes,
        rounds=rounds,
        accepted=accepted,
        declined=declined,
        extra={"rounds": len(rounds)},
    )


def _outcome(sliced: SlicedJob) -> JobOutcome:
    job = sliced.job
    done = sliced.end_time is not None
    return JobOutcome.of(
        job,
        admitted=True,
        start_time=sliced.start_time,
        end_time=sliced.end_time,
        gpus_at_end=job.num_gpu if done else None,
        met_deadline_published=(
            None if job.best_effort or sliced.end_time is None else sliced.end_time <= job.deadline
        ),
    )


def _speedup(cache: dict[int, float], profiles: ThroughputProfiles, job: TraceJob) -> float:
    """tput(g) / tput(1) at the job's own size; looked up lazily, as upstream's round log does."""
    value = cache.get(job.idx)
    if value is None:
        model, batch = job.model, job.batch_size
        value = profiles.tput(model, batch, job.num_gpu) / profiles.tput(model, batch, 1)
        cache[job.idx] = value
    return value
