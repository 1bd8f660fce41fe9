"""Gandiva: fixed-size jobs packed into node sets and time-sliced, duration-based.

See docs/policies/gandiva.md.
"""

from __future__ import annotations

from reprise.data.traces import TraceJob
from reprise.errors import SimulationError
from reprise.policies.gandiva.placement import GandivaPlacement, SlicedJob
from reprise.records.outcome import JobOutcome, RoundSample, RunOutcome
from reprise.sim.engine import AllocationChange, PolicyRun
from reprise.sim.events import Event
from reprise.sim.jobstate import speedup


class Gandiva(PolicyRun):
    """One run; each method is one phase of a round (docs/policies/gandiva.md#round)."""

    label = "gandiva"
    merge_completions = False

    def prepare(self, trace: list[TraceJob]) -> None:
        self.placement = GandivaPlacement(self.cluster)
        self.states = [SlicedJob(job) for job in trace]
        self.change = {id(s): AllocationChange(s.job.idx, s.num_gpu, False) for s in self.states}
        self.arrivals = self.engine.events
        self.speedups: dict[int, float] = {}
        self.running: list[SlicedJob] = []
        self.pending: list[SlicedJob] = []
        self.accepted = self.declined = 0

    def run(self) -> None:
        arrivals, slot = self.arrivals, self.options.slot
        pending, running = self.pending, self.running
        # most rounds only slice time (no arrival): the phases are bound once
        execute, arrive, refill, sample = self.execute, self.arrive, self.refill, self.sample
        now = int(arrivals.first.time)
        elapsed = 0
        while arrivals or pending or running:
            released = execute(now, elapsed)
            event = arrivals.find(now)
            if event is not None:
                arrive(event, now)
            if released:
                refill(now)
            sample(now)
            if not arrivals:
                if pending and not running:
                    raise SimulationError(
                        f"Gandiva: {len(pending)} job(s) can never be placed on "
                        f"{self.cluster.name} (upstream loops forever here)"
                    )
                now += slot
                elapsed = slot
                continue
            self.charge(now)
            nxt = int(arrivals.coalesce(now, slot))
            elapsed = nxt - now
            now = nxt

    def execute(self, now: int, elapsed: int) -> bool:
        """Rebalance, run the elapsed time slice; returns whether a node set was freed."""
        placement = self.placement
        placement.rebalance()
        finished, released = placement.time_slice(now, elapsed)
        for sliced in finished:
            self.running.remove(sliced)
            assert sliced.end_time is not None
            if sliced.end_time > sliced.job.deadline:
                self.declined += 1
                self.accepted -= 1
            self.engine.job_done()
        # quirk: upstream clears the overhead only of jobs that ever waited (its "runnable" list),
        # after execution; a sliced-out job that never waited keeps a stale one
        # (docs/policies/gandiva.md#round). Only running jobs can hold an overhead (`charge`
        # sets it on them, a finishing job's is cleared as it runs), so only they are visited.
        for sliced in self.running:
            if sliced.waited:
                sliced.overhead = 0.0
        return bool(released)

    def start(self, sliced: SlicedJob, now: int) -> None:
        sliced.start_time = now
        self.running.append(sliced)
        if not sliced.job.best_effort:
            self.accepted += 1

    def arrive(self, event: Event, now: int) -> None:
        self.arrivals.remove(event)
        for idx in event.arrivals:
            sliced = self.states[idx]
            if self.placement.place(sliced):
                self.start(sliced, now)
            else:
                sliced.waited = True
                self.pending.append(sliced)

    def refill(self, now: int) -> None:
        """Pending jobs try the freed nodes. quirk: upstream removes from the list it iterates,
        so the job right after each started one is not tried in this round."""
        pending = self.pending
        cursor = 0
        while cursor < len(pending):
            sliced = pending[cursor]
            cursor += 1
            if self.placement.place(sliced):
                pending.remove(sliced)
                self.start(sliced, now)

    def sample(self, now: int) -> None:
        """`ce` counts the jobs in their time slice only."""
        placement, running = self.placement, self.running
        gpus_in_use = placement.mark_slots()
        ce = sum(
            [
                s.speedup if s.speedup is not None else self._first_speedup(s)
                for s in running
                if s.in_slot
            ]
        )
        self.engine.add_round(
            RoundSample(
                time=now,
                gpus_in_use=gpus_in_use,
                ce=ce / self.n,
                running=len(running),
                pending=len(self.pending),
                gpu_map=placement.gpu_map() if self.options.record_gpu_map else None,
            )
        )

    def _first_speedup(self, sliced: SlicedJob) -> float:
        """Looked up lazily, as upstream's round log does (a size without a profile column
        fails here), then kept on the job."""
        sliced.speedup = value = speedup(self.speedups, self.profiles, sliced.job)
        return value

    def charge(self, now: int) -> None:
        """Every running job is relaunched each round, never warm (docs/policies/gandiva.md);
        a job's change is the same every round, so it is made once."""
        engine, running, change = self.engine, self.running, self.change
        restart = engine.restart_round()
        paid = engine.overheads(now, [change[id(s)] for s in running], restart)
        for sliced in running:
            sliced.overhead = paid[sliced.job.idx]

    def outcome(self) -> RunOutcome:
        """Counters follow the upstream bookkeeping (docs/engine.md#metrics)."""
        engine = self.engine
        engine.accepted, engine.declined = self.accepted, self.declined
        return engine.outcome([_outcome(s) for s in self.states], {"rounds": len(engine.rounds)})


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


simulate = Gandiva.simulate
"""Replay a trace under Gandiva (the registry's entry point)."""
