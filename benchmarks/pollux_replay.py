"""Pollux's allocation search, one search at a time: capture a run's searches, replay them exactly.

Run on demand, never in the test suite. A faster search (a new kernel, a cache) must give every
search the same final front, chosen allocation, statistics and random-number state as before:
    # keep every 5th search of seed 0's first 20,000 simulated seconds (inputs and results)
    .venv/bin/python benchmarks/pollux_replay.py capture --seed 0 --horizon 20000 --every 5 \
        --out /tmp/pollux_s0.pkl
    # rerun them with this checkout's compiled search (--reference: the numpy one): mismatches
    # (must be 0), CPU seconds, random draws (--draws, numpy search only)
    .venv/bin/python benchmarks/pollux_replay.py replay /tmp/pollux_s0.pkl [--reps 3] [--draws]
    # the fused search (its own draw order, so its own results) beside the compiled one on the
    # same problems: microseconds per generation per round size
    .venv/bin/python benchmarks/pollux_replay.py replay /tmp/pollux_s0.pkl --fused 10
The captured run uses the pymoo-order search (`pollux_pymoo_draws`), the one replayed exactly.
Capture with the code to compare against (e.g. a git worktree of the old commit on PYTHONPATH);
the file is a pickle of this package's objects: read it only with a checkout that wrote it or
one that keeps those classes.
"""

from __future__ import annotations

import argparse
import copy
import pickle
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import reprise.policies.pollux.policy as pollux_policy
from reprise.data.clusters import load_cluster_spec
from reprise.data.profiles import load_profiles
from reprise.data.traces import load_trace
from reprise.policies.pollux.blas import single_threaded_blas
from reprise.policies.pollux.compiled import CompiledOperators, run_nsga2
from reprise.policies.pollux.fused import run_fused
from reprise.policies.pollux.search import (
    AllocationProblem,
    IntState,
    ReferenceOperators,
    SearchResult,
)
from reprise.policies.pollux.search import run_nsga2 as run_reference
from reprise.sim.options import SimOptions

REPO = Path(__file__).resolve().parents[1]
ART = "ElasticFlow-artifact/ElasticFlow"


@dataclass
class Case:
    """One search: its inputs (problem, initial population, generator state) and its results."""

    problem: AllocationProblem
    initial: IntState
    state_before: Mapping[str, Any]
    result: SearchResult
    state_after: Mapping[str, Any]
    speedups_computed: int


def capture(seed: int, horizon: int, every: int, mirror: Path) -> list[Case]:
    """Run Figure 8(a) for `horizon` simulated seconds and keep every `every`-th search."""
    cases: list[Case] = []
    count = 0
    plain = pollux_policy.run_nsga2

    def recording(
        problem: AllocationProblem, initial: IntState, rng: np.random.Generator, pymoo_draws: bool
    ) -> SearchResult:
        nonlocal count
        count += 1
        if count % every:
            return plain(problem, initial, rng, pymoo_draws)
        # the search fills the problem's speed-up table: keep the table as it was handed over
        kept = copy.deepcopy(problem)
        state = copy.deepcopy(rng.bit_generator.state)
        result = plain(problem, initial, rng, pymoo_draws)
        after = copy.deepcopy(rng.bit_generator.state)
        cases.append(Case(kept, initial.copy(), state, result, after, problem.speedups.computed))
        return result

    profiles = load_profiles(mirror / ART / "scheduler/throughputs_T4")
    trace = load_trace(mirror / ART / "traces_for_ElasticFlow/elasticVpollux_e.csv", profiles)
    cluster = load_cluster_spec(mirror / ART / "scheduler/cluster_specs/n16g4.csv")
    options = SimOptions(
        slot=60, gpu_type="T4", data_root=str(mirror), seed=seed, pollux_pymoo_draws=True
    )
    pollux_policy.run_nsga2 = recording
    try:
        pollux_policy.simulate(trace, cluster, profiles, options, horizon=horizon)
    finally:
        pollux_policy.run_nsga2 = plain
    return cases


class _CountingGenerator:
    """Forwards to a numpy Generator and counts the values drawn per method."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.drawn: dict[str, int] = {}

    def _count(self, method: str, shape: Any) -> None:
        size = 1 if shape is None else int(np.prod(shape))
        self.drawn[method] = self.drawn.get(method, 0) + size

    def random(self, size: Any = None) -> Any:
        self._count("random", size)
        return self.rng.random(size)

    def integers(self, high: int, size: Any = None) -> Any:
        self._count("integers", size)
        return self.rng.integers(high, size=size)

    def permuted(self, x: Any, axis: int | None = None) -> Any:
        self._count("permuted", np.shape(x))
        return self.rng.permuted(x, axis=axis)

    def permutation(self, n: int) -> Any:
        self._count("permutation", (n,))
        return self.rng.permutation(n)


def same(
    got: SearchResult, case: Case, rng: np.random.Generator, problem: AllocationProblem
) -> bool:
    """The replayed search ended exactly as the captured one."""
    want = case.result
    return bool(
        np.array_equal(got.front, want.front)
        and got.best == want.best
        and np.array_equal(got.front_values, want.front_values)
        and got.stats == want.stats
        and rng.bit_generator.state == case.state_after
        and problem.speedups.computed == case.speedups_computed
    )


def fresh_inputs(case: Case) -> tuple[AllocationProblem, np.random.Generator]:
    """The captured search's problem (its speed-up table as handed over) and a generator in
    the captured state, both fresh copies."""
    rng = np.random.default_rng()
    rng.bit_generator.state = copy.deepcopy(case.state_before)
    return copy.deepcopy(case.problem), rng


def replay(cases: list[Case], reps: int, draws: bool, reference: bool) -> None:
    """Rerun every captured search `reps` times; print mismatches, CPU seconds, draws.

    The compiled search by default; `reference` (or `draws`, which wraps the generator in
    Python) the numpy one.
    """
    search = run_reference if reference or draws else run_nsga2
    mismatches = 0
    cpu = 0.0
    generations = 0
    drawn: dict[str, int] = {}
    with single_threaded_blas():
        for _ in range(reps):
            for case in cases:
                problem, rng = fresh_inputs(case)
                source: Any = _CountingGenerator(rng) if draws else rng
                start = time.process_time()
                got = search(problem, case.initial.copy(), source)
                cpu += time.process_time() - start
                mismatches += not same(got, case, rng, problem)
                generations += got.stats.generations
                if draws:
                    for method, n in source.drawn.items():
                        drawn[method] = drawn.get(method, 0) + n
    print(f"searches {len(cases)} x {reps}: mismatches {mismatches}, cpu {cpu:.2f} s")
    print(f"per generation: {cpu / max(generations, 1) * 1e6:.0f} us")
    if draws:
        per_gen = {method: round(n / max(generations, 1)) for method, n in drawn.items()}
        print(f"values drawn per generation: {per_gen}")


PHASES = ("offspring", "evaluate", "survivors", "repair")


class _TimedOperators:
    """Forwards to a search's operators and adds up the CPU time of each."""

    def __init__(self, ops: ReferenceOperators, spent: dict[str, float]) -> None:
        self.ops = ops
        self.uses_keys = ops.uses_keys
        self.spent = spent

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.ops, name)
        if name not in PHASES:
            return method

        def timed(*args: Any) -> Any:
            start = time.process_time()
            try:
                return method(*args)
            finally:
                self.spent[name] = self.spent.get(name, 0.0) + time.process_time() - start

        return timed


def by_size(cases: list[Case], reps: int, width: int) -> None:
    """Both searches side by side on every case (interleaved), per round size (jobs, in bins
    of `width`): microseconds per generation in all and per phase; mismatches must be 0."""
    kinds = {"numpy": ReferenceOperators, "compiled": CompiledOperators}
    rows: dict[tuple[int, str], dict[str, float]] = {}
    mismatches = 0
    with single_threaded_blas():
        warm = cases[0]  # compile the kernels (or load them from numba's cache) first
        run_nsga2(copy.deepcopy(warm.problem), warm.initial.copy(), np.random.default_rng(0))
        for _ in range(reps):
            for case in cases:
                size = case.problem.num_jobs // width * width
                for kind, make in kinds.items():
                    problem, rng = fresh_inputs(case)
                    row = rows.setdefault((size, kind), {"searches": 0, "gens": 0, "total": 0.0})
                    ops: Any = _TimedOperators(make(problem), row)
                    start = time.process_time()
                    got = run_reference(problem, case.initial.copy(), rng, operators=ops)
                    row["total"] += time.process_time() - start
                    row["searches"] += 1
                    row["gens"] += got.stats.generations
                    mismatches += not same(got, case, rng, problem)
    print(f"mismatches {mismatches}")
    print("| jobs | search | searches | us/gen | " + " | ".join(PHASES) + " | rest |")
    print("|---|---|---|---|" + "---|" * (len(PHASES) + 1))
    for (size, kind), row in sorted(rows.items()):
        gens = max(row["gens"], 1)
        phases = [row.get(name, 0.0) for name in PHASES]
        cells = [f"{t / gens * 1e6:.0f}" for t in [*phases, row["total"] - sum(phases)]]
        print(
            f"| {size}-{size + width - 1} | {kind} | {row['searches']} "
            f"| {row['total'] / gens * 1e6:.0f} | " + " | ".join(cells) + " |"
        )


def fused_beside_compiled(cases: list[Case], reps: int, width: int) -> None:
    """The fused and the compiled search on every case (interleaved), microseconds per
    generation per round size (jobs, in bins of `width`). Their draws differ, so their results
    do: nothing is compared."""
    searches = {"compiled": run_nsga2, "fused": run_fused}
    spent: dict[tuple[int, str], list[float]] = {}
    with single_threaded_blas():
        warm = cases[0]
        for search in searches.values():
            search(copy.deepcopy(warm.problem), warm.initial.copy(), np.random.default_rng(0))
        for _ in range(reps):
            for case in cases:
                size = case.problem.num_jobs // width * width
                for kind, search in searches.items():
                    problem, rng = fresh_inputs(case)
                    start = time.process_time()
                    got = search(problem, case.initial.copy(), rng)
                    row = spent.setdefault((size, kind), [0.0, 0.0])
                    row[0] += time.process_time() - start
                    row[1] += got.stats.generations
    print("| jobs | compiled us/gen | fused us/gen | ratio |")
    print("|---|---|---|---|")
    for size in sorted({size for size, _ in spent}):
        old, new = (spent[(size, k)][0] / max(spent[(size, k)][1], 1) * 1e6 for k in searches)
        print(f"| {size}-{size + width - 1} | {old:.0f} | {new:.0f} | {old / new:.2f} |")
    total = {k: sum(v[0] for (s, kk), v in spent.items() if kk == k) for k in searches}
    gens = {k: sum(v[1] for (s, kk), v in spent.items() if kk == k) for k in searches}
    print(" ".join(f"{k}: {total[k] / max(gens[k], 1) * 1e6:.0f} us/gen" for k in searches))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    cap = sub.add_parser("capture")
    cap.add_argument("--seed", type=int, default=0)
    cap.add_argument("--horizon", type=int, default=20000)
    cap.add_argument("--every", type=int, default=5)
    cap.add_argument("--mirror", type=Path, default=REPO.parent / "shared" / "upstream")
    cap.add_argument("--out", type=Path, required=True)
    rep = sub.add_parser("replay")
    rep.add_argument("cases", type=Path)
    rep.add_argument("--reps", type=int, default=1)
    rep.add_argument("--draws", action="store_true", help="count the random values drawn")
    rep.add_argument("--reference", action="store_true", help="the numpy search, not compiled")
    rep.add_argument(
        "--by-size", type=int, metavar="WIDTH", help="both searches per round size, by phase"
    )
    rep.add_argument(
        "--fused", type=int, metavar="WIDTH", help="fused beside compiled per round size"
    )
    args = parser.parse_args()
    if args.command == "capture":
        cases = capture(args.seed, args.horizon, args.every, args.mirror)
        args.out.write_bytes(pickle.dumps(cases))
        print(f"{len(cases)} searches; jobs per search: {[c.problem.num_jobs for c in cases]}")
    elif args.fused:
        fused_beside_compiled(pickle.loads(args.cases.read_bytes()), args.reps, args.fused)
    elif args.by_size:
        by_size(pickle.loads(args.cases.read_bytes()), args.reps, args.by_size)
    else:
        replay(pickle.loads(args.cases.read_bytes()), args.reps, args.draws, args.reference)


if __name__ == "__main__":
    main()
