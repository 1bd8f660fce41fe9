"""Latency of the elastic runtime on CPU nodes: controller-to-agent RPCs, scheduler-to-trainer
commands, and the time from a scaling command until the job is stable again.

Run on demand, never in the test suite (as root, for the default netns nodes):
    .venv/bin/python benchmarks/bench_runtime.py [--inventory config/clusters/<name>.yaml]
        [--model resnet50] [--repeats 5] [--rpcs 200]
Without --inventory it starts two sshd nodes in network namespaces of this machine
(tests/infra/netns_nodes.py, 2 slots each) and removes them afterwards. Measures:
  rpc_ms       Describe round trips from the controller to each agent (gRPC, unary)
  command_ms   from the controller sending a stop until rank 0's trainer has it (both clocks
               are this machine's: netns and Docker nodes share its kernel)
  1->2, 2->1, migration: seconds from `apply` until rank 0 reports stable, with rank 0's phases
Writes results/benchmarks/runtime.csv and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from reprise.testbed.inventory import load_inventory  # noqa: E402
from reprise.testbed.lifecycle import TestbedRun  # noqa: E402
from reprise.testbed.providers import make_launcher, make_provider  # noqa: E402
from reprise.testbed.runtime.client import (  # noqa: E402
    ElasticRuntime,
    JobSpec,
    Placement,
    RuntimeSettings,
)
from reprise.testbed.runtime.figure12b import PHASES  # noqa: E402

FIELDS = ("measure", "n", "median", "min", "max", "unit", *PHASES, "load_1min")


@contextlib.contextmanager
def netns_inventory(work: Path) -> Iterator[Path]:
    from infra.netns_nodes import NetnsCluster, usable

    reason = usable()
    if reason is not None:
        raise SystemExit(f"no --inventory given and no netns nodes here: {reason}")
    cluster = NetnsCluster(work / "netns").start()
    try:
        cluster.add_node("b1")
        cluster.add_node("b2")
        known = cluster.known_hosts(work / "known_hosts")
        path = cluster.inventory(work / "inv.yaml", ssh={"known_hosts": str(known)})
        doc = yaml.safe_load(path.read_text())
        doc["nodes"] = [{**n, "slots": 2} for n in doc["nodes"]]
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        yield path
    finally:
        cluster.stop()


def row(measure: str, values: list[float], unit: str, **extra: object) -> dict[str, object]:
    return {
        "measure": measure,
        "n": len(values),
        "median": round(statistics.median(values), 4),
        "min": round(min(values), 4),
        "max": round(max(values), 4),
        "unit": unit,
        "load_1min": round(os.getloadavg()[0], 2),
        **extra,
    }


def bench(inventory_path: Path, work: Path, model: str, repeats: int, rpcs: int) -> list[dict]:
    inventory = load_inventory(inventory_path)
    provider = make_provider(inventory, work / "state")
    run = TestbedRun(provider, make_launcher(inventory, []), work / "run")
    rows: list[dict[str, object]] = []
    settings = RuntimeSettings(progress_every_s=1.0)
    with run, ElasticRuntime(run, settings, lambda _m: None) as rt:
        nodes = [n for n in run.nodes if n.slots >= 2][:2]
        if len(nodes) < 2:
            raise SystemExit("the benchmark needs two nodes with 2 slots each")
        a, b = nodes
        pb = rt.pb
        rtt = []
        for agent in rt.agents.values():
            for _ in range(rpcs):
                t0 = time.perf_counter()
                agent.stub.Describe(pb.DescribeRequest(), timeout=10)
                rtt.append((time.perf_counter() - t0) * 1000)
        rows.append(row("rpc_ms", rtt, "ms"))
        one, two = Placement(((a.name, 0),)), Placement(((a.name, 0), (a.name, 1)))
        moved = Placement(((b.name, 0), (b.name, 1)))
        cases = {"1->2": (one, two), "2->1": (two, one), "migration": (two, moved)}
        measured: dict[str, list[tuple[float, dict[str, float]]]] = {c: [] for c in cases}
        for rep in range(repeats):
            for case, (before, after) in cases.items():
                job = f"{case.replace('>', '').replace('-', 'to')}-{rep}"
                rt.add_job(JobSpec(job, model, global_batch=16))
                rt.apply({job: before})
                time.sleep(1.0)
                rt.apply({job: after})
                r = rt.restarts[-1]
                if r.measured_s is not None:
                    measured[case].append((r.measured_s, r.phases))
                rt.apply({job: None})
        commands = [e.seconds * 1000 for e in rt.events if e.kind == "command"]
        rows.append(row("command_ms", commands, "ms"))
        for case, values in measured.items():
            phases = {
                p: round(statistics.median(ph.get(p, 0.0) for _, ph in values), 4) for p in PHASES
            }
            rows.append(row(f"{case}_stable_s", [v for v, _ in values], "s", **phases))
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--inventory", type=Path, default=None)
    p.add_argument("--model", default="resnet50")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--rpcs", type=int, default=200)
    p.add_argument("--keep", type=Path, default=None, help="keep the run's logs in this folder")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-runtime-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        if args.inventory is None:
            with netns_inventory(work) as inventory:
                rows = bench(inventory, work, args.model, args.repeats, args.rpcs)
        else:
            rows = bench(args.inventory, work, args.model, args.repeats, args.rpcs)
    out = REPO / "results" / "benchmarks" / "runtime.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS, restval="")
        writer.writeheader()
        writer.writerows(rows)
    print(f"| measure | n | median | min | max | unit | {' | '.join(PHASES)} |")
    print("|" + "---|" * (6 + len(PHASES)))
    for r in rows:
        cells = [r[k] for k in ("measure", "n", "median", "min", "max", "unit")]
        cells += [r.get(ph, "") for ph in PHASES]
        print("| " + " | ".join(str(c) for c in cells) + " |")
    print(f"\n{args.model}, wall {time.monotonic() - started:.0f} s, written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
