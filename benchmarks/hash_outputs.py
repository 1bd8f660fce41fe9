"""Fingerprint every simulation run record: sha256 of jobs.csv and events.csv, summary metrics.

A refactoring of the simulator must leave these unchanged. Run on demand, never in the tests:
    # run the configured experiments' simulations in a checkout (its own library) and hash them
    .venv/bin/python benchmarks/hash_outputs.py run --workdir /tmp/before --out before.json
    # hash an existing results/runs/sim tree
    .venv/bin/python benchmarks/hash_outputs.py hash results/runs/sim --out after.json
    # compare two fingerprints (exit status 1 when they differ)
    .venv/bin/python benchmarks/hash_outputs.py compare before.json after.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
RECORD_FILES = ("jobs.csv", "events.csv")


def fingerprint_run(rundir: Path) -> dict[str, Any]:
    """{file: sha256, "metrics": summary metrics} of one run record."""
    entry: dict[str, Any] = {
        name: hashlib.sha256((rundir / name).read_bytes()).hexdigest() for name in RECORD_FILES
    }
    entry["metrics"] = json.loads((rundir / "summary.json").read_text())["metrics"]
    return entry


def fingerprint(sim_root: Path) -> dict[str, Any]:
    """{run directory below sim_root: {file: sha256, "metrics": summary metrics}}."""
    return {
        str(summary.parent.relative_to(sim_root)): fingerprint_run(summary.parent)
        for summary in sorted(sim_root.rglob("summary.json"))
    }


def digest(runs: dict[str, Any]) -> str:
    """One sha256 over every run's file hashes and metrics (the number to quote)."""
    text = json.dumps(runs, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def files_digest(runs: dict[str, Any]) -> str:
    """One sha256 over the jobs.csv/events.csv hashes only (metrics left out)."""
    only = {run: {f: entry[f] for f in RECORD_FILES} for run, entry in runs.items()}
    return digest(only)


CHEAP_FIRST = ("figure10", "figure9", "figure11", "figure8a", "figure8b")
"""Experiments in the order they are run: quick, broad ones first, so a run that is stopped
early still covers every policy; the seeded (slow) Pollux runs come last of all."""


def sim_target_groups(workdir: Path, experiments: list[str] | None) -> list[list[str]]:
    """summary.json of every simulation run of the configured (or named) experiments, in
    groups run one after the other (CHEAP_FIRST order, Pollux last)."""
    sys.path.insert(0, str(workdir / "workflow"))
    from reprise.config import runs_of

    config = yaml.safe_load((workdir / "config/config.yaml").read_text())
    names = experiments or list(config["experiments"])
    ranked = sorted(names, key=lambda n: CHEAP_FIRST.index(n) if n in CHEAP_FIRST else -1)
    groups: list[list[str]] = []
    slow: list[str] = []
    for name in ranked:
        group = []
        for run in runs_of(config, name):
            target = f"{run.directory}/summary.json"
            (slow if run.policy.startswith("pollux") else group).append(target)
        groups.append(group)
    return [g for g in [*groups, slow] if g]


def run_simulations(workdir: Path, cores: int, experiments: list[str] | None) -> None:
    """Snakemake the simulation runs in `workdir` with that checkout's own library."""
    env = {
        **os.environ,
        "PYTHONPATH": str(workdir / "workflow"),
        "REPRISE_PROGRESS": "0",
        "REPRISE_MIRRORS": os.environ.get("REPRISE_MIRRORS", str(REPO.parent / "shared/upstream")),
    }
    snakemake = Path(sys.executable).with_name("snakemake")
    for targets in sim_target_groups(workdir, experiments):
        cmd = [
            str(snakemake),
            *targets,
            "-c",
            str(cores),
            "--nolock",
            "--keep-going",
            "--rerun-incomplete",
        ]
        subprocess.run(cmd, cwd=workdir, env=env, check=False)


def resimulate(rundir: Path, root: Path, outdir: Path) -> dict[str, Any]:
    """Run the simulation behind the record in `rundir` (below checkout `root`) again with this
    checkout's library into `outdir`; its inputs are read where that checkout keeps them."""
    from reprise.config import ARTIFACT, PROFILE_DIRS, split_instance
    from reprise.sim.options import SimOptions
    from reprise.simulate import run_simulation

    summary = json.loads((rundir / "summary.json").read_text())
    options = summary["options"]
    upstream = root / "resources/upstream"
    policy = summary["policy"]
    cluster = summary["cluster"]["name"]
    trace_name, trace_seed = split_instance(summary["trace"])
    switches = {k: bool(v) for k, v in options.items() if k.startswith(("ef_", "tiresias_"))}
    return run_simulation(
        trace=root / "results/traces" / f"{summary['trace']}.csv",
        cluster_spec=upstream / ARTIFACT / "scheduler/cluster_specs" / f"{cluster}.csv",
        profile_dir=upstream / PROFILE_DIRS[options["gpu_type"]],
        policy=policy,
        options=SimOptions(
            slot=int(options["slot"]),
            gpu_type=options["gpu_type"],
            seed=int(options.get("seed", 0)),
            data_root=str(upstream) if "policy_data" in summary["inputs"] else "",
            **switches,
        ),
        outdir=outdir,
        experiment=summary["experiment"],
        trace_name=trace_name,
        trace_seed=trace_seed,
        policy_seed=options.get("seed"),
    )


def verify(
    before_root: Path,
    out: Path,
    follow: bool,
    policies: list[str] | None = None,
    under: list[str] | None = None,
) -> None:
    """Re-simulate every run record of checkout `before_root` (of `policies`, below the run
    directories `under`, where given) with this library, compare, and append one JSON line per
    run to `out`; with `follow`, wait for records still to come."""
    import tempfile
    import time

    sim_root = before_root / "results/runs/sim"
    done = set()
    if out.exists():
        done = {json.loads(line)["run"] for line in out.read_text().splitlines() if line}
    while True:
        todo = [
            s.parent
            for s in sorted(sim_root.rglob("summary.json"))
            if str(s.parent.relative_to(sim_root)) not in done
            and (not policies or s.parent.name in policies)
            and (not under or str(s.parent.relative_to(sim_root)).startswith(tuple(under)))
        ]
        for rundir in todo:
            run = str(rundir.relative_to(sim_root))
            with tempfile.TemporaryDirectory() as tmp:
                start = time.perf_counter()
                summary = resimulate(rundir, before_root, Path(tmp))
                seconds = time.perf_counter() - start
                entry = fingerprint_run(Path(tmp))
                before = fingerprint_run(rundir)
                problems = [k for k in (*RECORD_FILES, "metrics") if before[k] != entry.get(k)]
            line = {
                "run": run,
                "same": not problems,
                "differs": problems,
                "after": entry,
                "seconds": round(seconds, 2),
                "metrics_keys": sorted(summary["metrics"]),
            }
            with out.open("a") as fh:
                fh.write(json.dumps(line, sort_keys=True) + "\n")
            done.add(run)
            print(
                f"{run}: {'same' if not problems else 'DIFFERS ' + ','.join(problems)}", flush=True
            )
        if not follow:
            return
        time.sleep(30)


def verified(before_root: Path, log: Path) -> dict[str, Any]:
    """Digests of the runs a `verify` log covers: before (the records) and after (the
    re-simulations), over the same runs; equal digests = byte-identical files, equal metrics."""
    rows = [json.loads(line) for line in log.read_text().splitlines() if line]
    sim_root = before_root / "results/runs/sim"
    after = {r["run"]: r["after"] for r in rows}
    before = {run: fingerprint_run(sim_root / run) for run in after}
    return {
        "runs": len(rows),
        "same": sum(1 for r in rows if r["same"]),
        "differ": sorted(r["run"] for r in rows if not r["same"]),
        "before_digest": digest(before),
        "after_digest": digest(after),
        "before_files_digest": files_digest(before),
        "after_files_digest": files_digest(after),
        "by_policy": _count_by_policy(after),
    }


def _count_by_policy(runs: dict[str, Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for run in runs:
        policy = run.rsplit("/", 1)[-1]
        counts[policy] = counts.get(policy, 0) + 1
    return dict(sorted(counts.items()))


def compare(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    problems = [f"missing after: {run}" for run in sorted(set(before) - set(after))]
    problems += [f"new after: {run}" for run in sorted(set(after) - set(before))]
    for run in sorted(set(before) & set(after)):
        for key in (*RECORD_FILES, "metrics"):
            if before[run][key] != after[run][key]:
                problems.append(f"{run}: {key} differs")
    return problems


def _write(runs: dict[str, Any], out: Path | None) -> None:
    report = {"runs": len(runs), "digest": digest(runs), "files_digest": files_digest(runs)}
    if out is not None:
        out.write_text(json.dumps({**report, "fingerprints": runs}, indent=1, sort_keys=True))
    print(json.dumps(report, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="simulate the experiments in a checkout, then hash")
    run.add_argument("--workdir", type=Path, default=REPO)
    run.add_argument("--cores", type=int, default=1)
    run.add_argument("--experiment", action="append", help="only these (repeatable)")
    run.add_argument("--out", type=Path)
    hashed = sub.add_parser("hash", help="hash an existing results/runs/sim tree")
    hashed.add_argument("sim_root", type=Path)
    hashed.add_argument("--out", type=Path)
    ver = sub.add_parser(
        "verify", help="re-simulate another checkout's run records with this library, compare"
    )
    ver.add_argument("before_root", type=Path, help="checkout whose results/runs/sim is checked")
    ver.add_argument("--out", type=Path, required=True, help="JSON lines, one per run (resumed)")
    ver.add_argument("--follow", action="store_true", help="keep waiting for new records")
    ver.add_argument("--policy", action="append", help="only the runs of these (repeatable)")
    ver.add_argument(
        "--under", action="append", help="only runs below this path, e.g. figure10/ (repeatable)"
    )
    ver_sum = sub.add_parser("verified", help="digests over the runs a verify log covers")
    ver_sum.add_argument("before_root", type=Path)
    ver_sum.add_argument("log", type=Path)
    cmp = sub.add_parser("compare", help="compare two fingerprint files")
    cmp.add_argument("before", type=Path)
    cmp.add_argument("after", type=Path)
    args = parser.parse_args()
    if args.command == "run":
        workdir = args.workdir.resolve()
        run_simulations(workdir, args.cores, args.experiment)
        _write(fingerprint(workdir / "results/runs/sim"), args.out)
    elif args.command == "verified":
        print(json.dumps(verified(args.before_root.resolve(), args.log), indent=1))
    elif args.command == "verify":
        verify(args.before_root.resolve(), args.out, args.follow, args.policy, args.under)
    elif args.command == "hash":
        _write(fingerprint(args.sim_root), args.out)
    else:
        before = json.loads(args.before.read_text())["fingerprints"]
        after = json.loads(args.after.read_text())["fingerprints"]
        problems = compare(before, after)
        print("\n".join(problems) or f"identical: {len(before)} runs")
        sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
