"""The slurm provider and srun launcher on the real one-node test cluster (tests/infra/slurm.py).

Processes are job steps of an allocation made with `salloc`, or of a Snakemake job submitted
through the project's slurm profile; each step is checked from inside (SLURM_STEP_ID) and from
slurmctld (squeue), and nothing may be left running afterwards.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from infra.workflow import REPO, SNAKEMAKE

from reprise.errors import ProvisionError
from reprise.errors import TestbedError as StepError
from reprise.testbed.inventory import parse_inventory
from reprise.testbed.nodes import Node
from reprise.testbed.provision.slurm import (
    SlurmProvider,
    SrunLauncher,
    count_ids,
    expand_counts,
    step_env,
)

DRIVER = REPO / "tests" / "infra" / "slurm_driver.py"
STEP_LINE = re.compile(r"^step (\d+) pid (\d+) node (\S+)$", re.MULTILINE)


def inventory(tmp_path: Path, **slurm: Any) -> Any:
    doc: dict[str, Any] = {"provider": "slurm", "workdir": str(tmp_path / "work")}
    if slurm:
        doc["slurm"] = slurm
    return parse_inventory(doc, tmp_path / "cluster.yaml")


def pid_alive(pid: int) -> bool:
    """A PID that runs (PID 1 here reaps orphans lazily, so a zombie counts as gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def steps_of(job: str, env: dict[str, str]) -> list[str]:
    shown = subprocess.run(
        ["squeue", "-h", "-s", "-j", job, "-o", "%i"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return shown.stdout.split()


def salloc(env: dict[str, str], *command: str, timeout: int = 120) -> str:
    """Run `command` inside a fresh one-node allocation; its stdout."""
    done = subprocess.run(
        ["timeout", "-k", "5", str(timeout), "salloc", "--nodes=1", "--ntasks=1", *command],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout + 30,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def last_json(stdout: str) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    return report


# --- without a cluster -------------------------------------------------------------------


def test_per_node_counts_and_id_lists_expand() -> None:
    assert expand_counts("2(x3),1") == [2, 2, 2, 1]
    assert expand_counts("16") == [16]
    assert count_ids("0-3,6") == 5
    with pytest.raises(ProvisionError, match=r"2\(x3\),1"):
        expand_counts("2x3")


def test_outside_an_allocation_the_error_says_how_to_get_one(tmp_path: Path) -> None:
    provider = SlurmProvider(inventory(tmp_path), tmp_path / "state", environ={})
    with pytest.raises(ProvisionError, match=r"--profile slurm.*nodes=N.*salloc"):
        provider.provision()
    saved = {k: os.environ.pop(k) for k in ("SLURM_JOB_ID", "SLURM_JOBID") if k in os.environ}
    try:
        with pytest.raises(ProvisionError, match="SLURM_JOB_ID is not set"):
            SrunLauncher(inventory(tmp_path), [])
    finally:
        os.environ.update(saved)


def test_steps_keep_the_allocation_but_not_an_enclosing_steps_shape() -> None:
    base = {
        "PATH": "/usr/bin",
        "SLURM_JOB_ID": "7",
        "SLURM_CONF": "/etc/slurm.conf",
        "SLURM_CPUS_PER_TASK": "4",
        "SLURM_NTASKS": "8",
        "SLURM_STEP_ID": "0",
        "SRUN_CPUS_PER_TASK": "4",
        "SBATCH_GRES": "gpu:1",
    }
    env = step_env({"OMP_NUM_THREADS": "1"}, base)
    assert env == {
        "PATH": "/usr/bin",
        "SLURM_JOB_ID": "7",
        "SLURM_CONF": "/etc/slurm.conf",
        "OMP_NUM_THREADS": "1",
    }


def test_srun_command_places_one_task_on_the_node(tmp_path: Path) -> None:
    inv = inventory(tmp_path, srun_args=["--gpus-per-task=1"])
    node = Node(
        name="gpu07",
        group="default",
        address="gpu07",
        peer_address="10.0.0.7",
        labels={"slurm.job": "42", "slurm.steps": str(tmp_path / "steps.jsonl")},
    )
    launcher = SrunLauncher(inv, [node])
    argv = launcher.command(node, "worker-0", ["python3", "-m", "train"], "/shared/w0.log")
    assert argv[0] == "srun" and argv[-3:] == ["python3", "-m", "train"]
    for flag in (
        "--jobid=42",
        "--nodes=1",
        "--ntasks=1",
        "--nodelist=gpu07",
        "--overlap",
        "--kill-on-bad-exit=1",
        "--job-name=worker-0",
        "--output=/shared/w0.log",
        "--gpus-per-task=1",
    ):
        assert flag in argv
    assert launcher.steps_file == tmp_path / "steps.jsonl"
    with pytest.raises(StepError, match="not started by this launcher"):
        launcher.poll(_launched("gpu07"))


def _launched(node: str) -> Any:
    from reprise.testbed.nodes import Launched

    return Launched(node=node, name="ghost", pid=1, pgid=1, log="/x")


# --- on the test cluster -----------------------------------------------------------------


def test_two_steps_run_under_srun_and_one_is_stopped(slurm: dict[str, str], tmp_path: Path) -> None:
    work, state = tmp_path / "work", tmp_path / "state"
    report = last_json(salloc(slurm, sys.executable, str(DRIVER), "run", str(work), str(state)))
    (node,) = report["nodes"]
    assert node["name"] == "localnode" and node["peer_address"] == "127.0.0.1"
    job = node["labels"]["slurm.job"]
    assert node["labels"]["slurm.cpus"] == "1"
    steps = report["steps"]
    assert len(set(steps.values())) == 3 and all(s.startswith(f"{job}.") for s in steps.values())

    fetched = state / "fetched"
    seen = {}
    for name in ("waiter", "finisher", "stubborn"):
        log = (fetched / f"{name}.log").read_text()
        match = STEP_LINE.search(log)
        assert match is not None, log
        step, pid, where = match.groups()
        assert f"{job}.{step}" == steps[name] and where == "localnode"
        seen[name] = int(pid)
    # the finisher's file and environment arrived; it exited on its own with 0
    assert (fetched / "result.txt").read_text() == f"hello {steps['finisher'].split('.')[1]}\n"
    assert report["finisher_rc"] == 0 and report["waiter_running"]
    # stop(): the waiter got SIGTERM (its handler ran, exit 143); the one ignoring it was killed
    assert "got SIGTERM" in (fetched / "waiter.log").read_text()
    assert report["waiter_rc"] == 143
    assert report["stubborn_rc"] != 0 and report["stubborn_stop_s"] >= 1.0
    assert report["pgids"]["waiter"] != report["pgids"]["finisher"]
    # nothing left: no task process, no step slurmctld still lists
    assert report["listed_after"] == []
    assert not [pid for pid in seen.values() if pid_alive(pid)]
    recorded = [json.loads(line) for line in (state / "steps.jsonl").read_text().splitlines()]
    assert [r["name"] for r in recorded] == ["waiter", "finisher", "stubborn"]
    print(f"slurm steps: start {report['start_s']:.2f} s each, stop {report['stop_s']:.2f} s")


def test_teardown_stops_the_steps_a_crashed_controller_left(
    slurm: dict[str, str], tmp_path: Path
) -> None:
    work, state = tmp_path / "work", tmp_path / "state"
    script = (
        f"{sys.executable} {DRIVER} abandon {work} {state} && "
        f"sleep 1 && squeue -h -s -j $SLURM_JOB_ID -o %i && "
        f"{sys.executable} {DRIVER} teardown {work} {state}"
    )
    stdout = salloc(slurm, "sh", "-c", script)
    first = json.loads(stdout.splitlines()[0])
    abandoned = first["abandoned"]
    assert pid_alive(abandoned["pid"]) is False  # the srun the first controller left behind
    assert abandoned["step"] in stdout.split()  # it was still running between the two
    last = last_json(stdout)
    assert last["recovered"] == {"pgid": abandoned["pid"], "running": True}
    assert last["after_teardown"] == -1  # gone, and no srun of ours saw its status
    assert last["listed_after"] == []
    log = (work / "abandoned.log").read_text()
    match = STEP_LINE.search(log)
    assert match is not None and "got SIGTERM" in log
    assert not pid_alive(int(match.group(2)))


def test_more_slots_than_allocated_cpus_is_refused(slurm: dict[str, str], tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from reprise.errors import ProvisionError\n"
        "from reprise.testbed.inventory import parse_inventory\n"
        "from reprise.testbed.provision.slurm import SlurmProvider\n"
        "doc = {'provider': 'slurm', 'workdir': sys.argv[1], 'slurm': {'slots_per_node': 64}}\n"
        "inv = parse_inventory(doc, Path(sys.argv[2]))\n"
        "try:\n"
        "    SlurmProvider(inv, Path(sys.argv[3])).provision()\n"
        "except ProvisionError as exc:\n"
        "    print(exc)\n"
    )
    paths = [str(tmp_path / "w"), str(tmp_path / "big.yaml"), str(tmp_path / "state")]
    stdout = salloc(slurm, sys.executable, "-c", code, *paths)
    assert "slots_per_node is 64" in stdout and "only 1 CPU(s) on localnode" in stdout


# --- a testbed-like rule through the project's slurm profile -----------------------------

SNAKEFILE = """
import json, sys, time
from pathlib import Path
from reprise.testbed.inventory import parse_inventory
from reprise.testbed.provision.slurm import SlurmProvider, SrunLauncher

rule all:
    input: "results/testbed/steps.json"

rule testbed:
    output: "results/testbed/steps.json"
    log: "logs/testbed.log"
    resources: nodes=1, mem_mb=1000, runtime=5
    run:
        import os
        state = Path("results/testbed/state").resolve()
        doc = {"provider": "slurm", "workdir": str(Path("work").resolve())}
        inv = parse_inventory(doc, state / "cluster.yaml")
        provider = SlurmProvider(inv, state)
        try:
            nodes = provider.provision()
            launcher = SrunLauncher(inv, nodes)
            ids = "os.environ['SLURM_JOB_ID'], os.environ['SLURM_STEP_ID']"
            code = f"import os; print('inner', {ids})"
            argv = [sys.executable, "-c", code]
            procs = [
                launcher.start(node, f"probe-{i}", argv, {}, f"logs/probe-{i}.log")
                for i, node in enumerate(nodes)
            ]
            while any(launcher.poll(p) is None for p in procs):
                time.sleep(0.1)
            for p, node in zip(procs, nodes):
                launcher.fetch(node, p.log, Path("results/testbed") / f"{p.name}.log")
            record = {
                "outer": [os.environ.get("SLURM_JOB_ID"), os.environ.get("SLURM_STEP_ID")],
                "steps": [launcher.step_id(p) for p in procs],
                "exit": [launcher.poll(p) for p in procs],
                "nodes": [n.name for n in nodes],
            }
        finally:
            provider.teardown()
        Path(output[0]).write_text(json.dumps(record))
"""


@pytest.mark.slow
def test_testbed_rule_through_the_slurm_profile_starts_steps_inside_its_job(
    slurm: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    env = {**os.environ, "REPRISE_PROGRESS": "0", **slurm}
    start = time.monotonic()
    done = subprocess.run(
        [
            "timeout",
            "-k",
            "5",
            "300",
            *SNAKEMAKE,
            "--profile",
            str(REPO / "workflow" / "profiles" / "slurm"),
            "all",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=330,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+)", output)
    assert len(submitted) == 1, output
    record = json.loads((tmp_path / "results/testbed/steps.json").read_text())
    job, outer_step = record["outer"]
    assert job == submitted[0] and outer_step is not None  # the rule itself ran in a job step
    assert record["nodes"] == ["localnode"] and record["exit"] == [0]
    (step,) = record["steps"]
    assert step.startswith(f"{job}.") and step != f"{job}.{outer_step}"
    inner = (tmp_path / "results/testbed/probe-0.log").read_text().split()
    assert inner == ["inner", job, step.split(".")[1]]
    assert steps_of(job, slurm) == []
    print(f"testbed rule through --profile slurm: {time.monotonic() - start:.1f} s")
