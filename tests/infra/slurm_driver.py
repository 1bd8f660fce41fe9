"""Run inside a Slurm allocation by tests/test_testbed_slurm.py: the slurm provider and srun
launcher on the nodes of that allocation, reported as one JSON line on stdout.

    python slurm_driver.py run WORKDIR STATE       two steps: one finishes, one is stopped
    python slurm_driver.py abandon WORKDIR STATE   starts a step and exits without stopping it
    python slurm_driver.py teardown WORKDIR STATE  the provider's teardown from the steps file
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from reprise.testbed.inventory import Inventory, parse_inventory
from reprise.testbed.nodes import Launched, Node
from reprise.testbed.provision.slurm import SlurmProvider, SrunLauncher, read_steps, step_listed

# A real Python process that says which step it runs in, then works or waits for a signal.
WORKER = """
import os, signal, sys, time
env = os.environ
print("step", env["SLURM_STEP_ID"], "pid", os.getpid(), "node", env["SLURMD_NODENAME"], flush=True)
def term(*_):
    print("got SIGTERM", flush=True)
    sys.exit(143)
signal.signal(signal.SIGTERM, term)
if sys.argv[1] == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if sys.argv[1] == "finish":
    with open("result.txt", "w") as fh:
        fh.write(os.environ["REPRISE_PAYLOAD"] + " " + os.environ["SLURM_STEP_ID"] + "\\n")
    sys.exit(0)
time.sleep(600)
"""


def inventory(workdir: str, state: str) -> Inventory:
    doc = {"provider": "slurm", "workdir": workdir, "python": sys.executable}
    return parse_inventory(doc, Path(state) / "cluster.yaml")


def launcher_node(saved: dict[str, list[dict[str, object]]]) -> Node:
    return Node(**saved["nodes"][0])  # type: ignore[arg-type]


def main(mode: str, workdir: str, state: str) -> None:
    inv = inventory(workdir, state)
    prov = SlurmProvider(inv, Path(state))
    report: dict[str, object] = {}
    if mode == "teardown":
        # a new controller: finds the left step through the steps file, as recovery does
        saved = json.loads((Path(state) / "allocation.json").read_text())
        launcher = SrunLauncher(inv, [Node(**n) for n in saved["nodes"]])
        (left,) = read_steps(prov.steps_file)
        ghost = Launched(left.node, left.name, left.pid, left.pgid, left.log)
        report["recovered"] = {
            "pgid": launcher.recorded_pid(launcher_node(saved), left.log),
            "running": launcher.poll(ghost) is None,
        }
        prov.teardown()
        report["after_teardown"] = launcher.poll(ghost)
        records = read_steps(prov.steps_file)
        report["listed_after"] = [r.step_id for r in records if step_listed(r)]
        print(json.dumps(report), flush=True)
        return
    t0 = time.monotonic()
    nodes = prov.provision()
    report["provision_s"] = time.monotonic() - t0
    report["nodes"] = [n.as_json() for n in nodes]
    launcher = SrunLauncher(inv, nodes)
    node = nodes[0]
    argv = [sys.executable, "-c", WORKER]
    if mode == "abandon":
        proc = launcher.start(node, "abandoned", [*argv, "wait"], {}, f"{workdir}/abandoned.log")
        report["abandoned"] = {"pid": proc.pid, "step": launcher.step_id(proc)}
        print(json.dumps(report), flush=True)
        return
    t0 = time.monotonic()
    waiting = launcher.start(node, "waiter", [*argv, "wait"], {}, f"{workdir}/logs/waiter.log")
    finishing = launcher.start(
        node, "finisher", [*argv, "finish"], {"REPRISE_PAYLOAD": "hello"}, "logs/finisher.log"
    )
    stubborn = launcher.start(node, "stubborn", [*argv, "stubborn"], {}, "logs/stubborn.log")
    report["start_s"] = (time.monotonic() - t0) / 3
    while launcher.poll(finishing) is None:
        time.sleep(0.1)
    report["finisher_rc"] = launcher.poll(finishing)
    report["waiter_running"] = launcher.poll(waiting) is None
    report["steps"] = {"waiter": launcher.step_id(waiting), "finisher": launcher.step_id(finishing)}
    report["pgids"] = {"waiter": waiting.pgid, "finisher": finishing.pgid}
    t0 = time.monotonic()
    launcher.stop(waiting, grace_s=5.0)
    report["stop_s"] = time.monotonic() - t0
    report["waiter_rc"] = launcher.poll(waiting)
    t0 = time.monotonic()
    launcher.stop(stubborn, grace_s=1.0)
    report["stubborn_stop_s"] = time.monotonic() - t0
    report["stubborn_rc"] = launcher.poll(stubborn)
    report["steps"]["stubborn"] = launcher.step_id(stubborn)
    launcher.stop(waiting)  # idempotent
    fetched = Path(state) / "fetched"
    launcher.fetch(node, "result.txt", fetched / "result.txt")
    launcher.fetch(node, waiting.log, fetched / "waiter.log")
    launcher.fetch(node, finishing.log, fetched / "finisher.log")
    launcher.fetch(node, stubborn.log, fetched / "stubborn.log")
    records = read_steps(prov.steps_file)
    report["listed_after"] = [r.step_id for r in records if step_listed(r)]
    prov.teardown()
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
