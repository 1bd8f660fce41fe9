"""Slurm provider: the nodes of the current allocation, and processes started on them as srun steps.

Logs and results are read straight from the inventory's `workdir`, which must be on a file system
the controller and every node share (on the one-node test cluster that is trivially the case).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from reprise.errors import ProvisionError, TestbedError
from reprise.testbed.inventory import Inventory, SlurmSettings
from reprise.testbed.nodes import Launched, Node

# SLURM_* variables that name the allocation. Everything else inherited from an enclosing step
# (task counts, CPUs per task, GRES) would silently reshape our own steps, as the Slurm executor
# plugin of Snakemake also found for its nested srun.
ALLOCATION_VARS = frozenset(
    {
        "SLURM_JOB_ID",
        "SLURM_JOBID",
        "SLURM_CLUSTER_NAME",
        "SLURM_CONF",
        "SLURM_SUBMIT_DIR",
        "SLURM_SUBMIT_HOST",
    }
)
JOB_LABEL = "slurm.job"
STEPS_LABEL = "slurm.steps"
VANISHED = -1
"""poll()'s status for a step whose exit status no living srun of ours can tell."""
LAUNCHED = re.compile(r"launching StepId=(\d+)\.(\d+)")
OUTSIDE = (
    "no Slurm allocation: SLURM_JOB_ID is not set. The slurm provider runs inside an allocation; "
    "run the testbed rule through `snakemake --profile slurm` with `resources: nodes=N`, "
    "or by hand inside `salloc --nodes=N`"
)


def _client(argv: Sequence[str], timeout: float = 30.0) -> str:
    """Run a Slurm client command (scontrol, squeue, scancel) and return its stdout."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise ProvisionError(
            f"{argv[0]} not found: the slurm provider needs the Slurm client commands "
            "(scontrol, srun, squeue, scancel) on PATH"
        ) from None
    except subprocess.TimeoutExpired:
        raise ProvisionError(
            f"`{' '.join(argv)}` did not answer in {timeout:.0f} s; is slurmctld reachable?"
        ) from None
    if done.returncode != 0:
        raise ProvisionError(
            f"`{' '.join(argv)}` failed (exit {done.returncode}): {done.stderr.strip()}"
        )
    return done.stdout


def expand_counts(spec: str) -> list[int]:
    """Slurm's compressed per-node counts, `2(x3),1` -> [2, 2, 2, 1]."""
    counts: list[int] = []
    for part in spec.split(","):
        match = re.fullmatch(r"(\d+)(?:\(x(\d+)\))?", part.strip())
        if match is None:
            raise ProvisionError(f"cannot read the per-node count {spec!r} (expected e.g. 2(x3),1)")
        counts += [int(match.group(1))] * int(match.group(2) or 1)
    return counts


def count_ids(spec: str) -> int:
    """How many ids a Slurm id list names: `0-3,6` -> 5."""
    total = 0
    for part in spec.split(","):
        low, _, high = part.partition("-")
        total += int(high or low) - int(low) + 1
    return total


def hostnames(nodelist: str) -> list[str]:
    return _client(["scontrol", "show", "hostnames", nodelist]).split()


def _fields(line: str) -> dict[str, str]:
    """`Key=value Key2=value2` of a one-line scontrol record."""
    return {m.group(1): m.group(2) for m in re.finditer(r"(\S+?)=(\S*)", line)}


def _cpus_from_scontrol(job_id: str) -> dict[str, int]:
    """Allocated CPUs per node from `scontrol show job -d` (its `Nodes=... CPU_IDs=...` lines)."""
    shown = _client(["scontrol", "show", "job", "-d", job_id])
    cpus: dict[str, int] = {}
    for match in re.finditer(r"Nodes=(\S+) CPU_IDs=(\S+)", shown):
        for host in hostnames(match.group(1)):
            cpus[host] = count_ids(match.group(2))
    return cpus


def _proc_start(pid: int) -> int | None:
    """The kernel's start time of a living `pid` (clock ticks since boot), which tells a reused
    PID apart; None once it has exited (a zombie too: PID 1 here reaps orphans only lazily)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] in ("Z", "X") else int(fields[19])


def step_env(extra: Mapping[str, str], base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of an srun we start: the allocation's identity, none of a step's shape."""
    env = {
        k: v
        for k, v in (os.environ if base is None else base).items()
        if not k.startswith(("SRUN_", "SBATCH_", "SALLOC_"))
        and (not k.startswith("SLURM_") or k in ALLOCATION_VARS)
    }
    env.update(extra)
    return env


@dataclass(frozen=True)
class StepRecord:
    """What stop() needs of a step, also after a crash: written to the run's steps.jsonl."""

    node: str
    name: str
    pid: int
    pgid: int
    started: int | None
    job: str
    step: str
    log: str

    @property
    def step_id(self) -> str:
        return f"{self.job}.{self.step}"


def read_steps(path: Path) -> list[StepRecord]:
    if not path.is_file():
        return []
    return [StepRecord(**json.loads(line)) for line in path.read_text().splitlines() if line]


def step_listed(record: StepRecord) -> bool:
    """Whether slurmctld still lists the step (squeue shows only steps that have not ended)."""
    try:
        shown = _client(["squeue", "-h", "-s", "-j", record.job, "-o", "%i"])
    except ProvisionError:
        return False  # the job itself has ended, and every step with it
    return record.step_id in shown.split()


def _srun_alive(record: StepRecord) -> bool:
    return record.started is not None and _proc_start(record.pid) == record.started


def _signal_step(record: StepRecord, sig: str) -> None:
    subprocess.run(
        ["scancel", f"--signal={sig}", record.step_id], capture_output=True, timeout=30, check=False
    )


def stop_step(record: StepRecord, grace_s: float, popen: subprocess.Popen[bytes] | None) -> None:
    """Stop one step: SIGTERM to its task, then the srun's process group, then scancel.

    srun answers a SIGTERM of its own by killing the step at once (SIGKILL to the task), so the
    task's SIGTERM, which gives a trainer its grace period, is sent by step id with
    `scancel --signal=TERM`. Whatever still runs after `grace_s` goes with SIGTERM and then
    SIGKILL to the srun's recorded process group, and the step, if slurmctld still lists it,
    with a plain scancel of its id.
    """

    def running() -> bool:
        return popen.poll() is None if popen is not None else _srun_alive(record)

    def wait(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while running() and time.monotonic() < deadline:
            time.sleep(0.05)

    if running() or step_listed(record):
        _signal_step(record, "TERM")
        wait(grace_s)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not running():
            break
        try:
            os.killpg(record.pgid, sig)
        except ProcessLookupError:
            break
        wait(grace_s)
    if popen is not None and popen.poll() is None:
        popen.wait(timeout=grace_s)
    if step_listed(record):
        subprocess.run(["scancel", record.step_id], capture_output=True, timeout=30, check=False)
        deadline = time.monotonic() + max(grace_s, 5.0)
        while step_listed(record) and time.monotonic() < deadline:
            time.sleep(0.2)


class SrunLauncher:
    """Starts each process as a one-task job step on its node, with srun on the controller.

    The srun is the handle: it runs in its own process group here (its PGID is what stop()
    signals), forwards signals to the step and exits with the task's status. `--overlap` lets
    steps share the allocation's CPUs with the step the controller itself runs in (a Snakemake
    job under `--profile slurm` is such a step). Task output goes to `log` on the node; srun's
    own messages to `<log>.srun`. The job id and the steps file come from the labels the
    provider gave the nodes; every step is appended to that file, so teardown finds it even when
    this object is gone.
    """

    def __init__(
        self,
        inventory: Inventory,
        nodes: Sequence[Node],
        start_timeout_s: float = 60.0,
    ) -> None:
        labels = nodes[0].labels if nodes else {}
        job = labels.get(JOB_LABEL) or os.environ.get("SLURM_JOB_ID")
        if not job:
            raise ProvisionError(OUTSIDE)
        self.job_id = job
        self.srun_args = (inventory.slurm or SlurmSettings()).srun_args
        steps = labels.get(STEPS_LABEL)
        self.steps_file = Path(steps) if steps else None
        self.start_timeout_s = start_timeout_s
        self._steps: dict[int, tuple[StepRecord, subprocess.Popen[bytes]]] = {}

    def command(self, node: Node, name: str, argv: Sequence[str], log: str) -> list[str]:
        return [
            "srun",
            "--verbose",  # prints "launching StepId=<job>.<step>": the id scancel needs
            f"--jobid={self.job_id}",
            "--nodes=1",
            "--ntasks=1",
            f"--nodelist={node.name}",
            "--overlap",
            "--kill-on-bad-exit=1",
            f"--job-name={name}",
            f"--chdir={node.workdir}",
            f"--output={log}",
            "--input=none",
            *self.srun_args,
            *argv,
        ]

    def start(
        self,
        node: Node,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        log: str,
    ) -> Launched:
        if not argv:
            raise TestbedError(f"nothing to start for {name!r} on node {node.name}: empty argv")
        log_path = Path(log) if os.path.isabs(log) else Path(node.workdir) / log
        log_path.parent.mkdir(parents=True, exist_ok=True)
        srun_log = Path(f"{log_path}.srun")
        with srun_log.open("wb") as out:
            popen = subprocess.Popen(
                self.command(node, name, argv, str(log_path)),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=step_env(env),
                start_new_session=True,  # its own process group, which stop() signals
            )
        pgid = os.getpgid(popen.pid)
        step = self._wait_for_step(popen, srun_log, node, name)
        record = StepRecord(
            node=node.name,
            name=name,
            pid=popen.pid,
            pgid=pgid,
            started=_proc_start(popen.pid),
            job=self.job_id,
            step=step,
            log=str(log_path),
        )
        self._steps[popen.pid] = (record, popen)
        if self.steps_file is not None:
            self.steps_file.parent.mkdir(parents=True, exist_ok=True)
            with self.steps_file.open("a") as fh:
                fh.write(json.dumps(asdict(record)) + "\n")
        return Launched(node=node.name, name=name, pid=popen.pid, pgid=pgid, log=str(log_path))

    def _wait_for_step(
        self, popen: subprocess.Popen[bytes], srun_log: Path, node: Node, name: str
    ) -> str:
        """The step id once srun has launched the task; a clear error if it never does."""
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            text = srun_log.read_text(errors="replace")
            match = LAUNCHED.search(text)
            if match is not None:
                return match.group(2)
            if popen.poll() is not None:
                tail = "\n".join(text.splitlines()[-8:])
                raise TestbedError(
                    f"srun for {name!r} on node {node.name} exited with {popen.returncode} "
                    f"before its step started; srun said:\n{tail}"
                )
            if time.monotonic() > deadline:
                os.killpg(popen.pid, signal.SIGKILL)
                popen.wait()
                raise TestbedError(
                    f"srun for {name!r} on node {node.name} did not start a step in "
                    f"{self.start_timeout_s:.0f} s (allocation busy or node down? see {srun_log})"
                )
            time.sleep(0.05)

    def _known(self, proc: Launched) -> tuple[StepRecord, subprocess.Popen[bytes] | None]:
        """This launcher's own step, else one another controller recorded in the steps file."""
        if proc.pid in self._steps:
            return self._steps[proc.pid]
        recorded = (
            [r for r in read_steps(self.steps_file) if r.pid == proc.pid] if self.steps_file else []
        )
        if not recorded:
            raise TestbedError(
                f"process {proc.name!r} (pid {proc.pid}) on node {proc.node} was not started "
                f"by this launcher and is not in {self.steps_file or 'a steps file'}"
            )
        return recorded[-1], None

    def step_id(self, proc: Launched) -> str:
        """`<job>.<step>` of a started process."""
        return self._known(proc)[0].step_id

    def poll(self, proc: Launched) -> int | None:
        record, popen = self._known(proc)
        if popen is not None:
            return popen.poll()
        # a step of an earlier controller: its exit status went to that controller's srun
        return None if _srun_alive(record) or step_listed(record) else VANISHED

    def stop(self, proc: Launched, grace_s: float = 5.0) -> None:
        record, popen = self._known(proc)
        stop_step(record, grace_s, popen)

    def add_nodes(self, nodes: Sequence[Node]) -> None:
        """Nothing to connect to: srun reaches every node of the allocation by name."""

    def tail(self, node: Node, log: str, lines: int = 20) -> str:
        try:
            text = Path(log).read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def recorded_pid(self, node: Node, log: str) -> int | None:
        """The srun PGID recorded for `log` (a step whose start the controller did not see end)."""
        found = (
            [r.pgid for r in read_steps(self.steps_file) if r.log == log] if self.steps_file else []
        )
        return found[-1] if found else None

    def close(self) -> None:
        """Nothing held open: each step is its own srun."""

    def fetch(self, node: Node, remote: str, local: Path) -> None:
        source = Path(remote) if os.path.isabs(remote) else Path(node.workdir) / remote
        if not source.is_file():
            raise TestbedError(
                f"node {node.name}: {source} does not exist. The slurm provider reads results "
                "from the shared file system; is the inventory's workdir shared with the nodes?"
            )
        local.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, local)


class SlurmProvider:
    """The nodes of the allocation this process runs in; it creates nothing.

    provision() reads the allocation (SLURM_JOB_ID, SLURM_JOB_NODELIST, SLURM_JOB_CPUS_PER_NODE,
    else scontrol), checks the inventory's `workdir` is shared with every node, and writes
    `allocation.json` to `state_dir`. teardown() stops the steps recorded in `steps.jsonl` that
    still run; the allocation itself belongs to whoever made it (sbatch, salloc).
    """

    def __init__(
        self,
        inventory: Inventory,
        state_dir: Path,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.inventory = inventory
        self.settings: SlurmSettings = inventory.slurm or SlurmSettings()
        self.state_dir = Path(state_dir)
        self.environ = dict(os.environ if environ is None else environ)

    @property
    def steps_file(self) -> Path:
        return self.state_dir / "steps.jsonl"

    @property
    def job_id(self) -> str:
        job = self.environ.get("SLURM_JOB_ID") or self.environ.get("SLURM_JOBID")
        if not job:
            raise ProvisionError(OUTSIDE)
        return job

    def _allocation(self) -> tuple[list[str], dict[str, int]]:
        job = self.job_id
        nodelist = self.environ.get("SLURM_JOB_NODELIST") or self.environ.get("SLURM_NODELIST")
        if not nodelist:
            nodelist = _fields(_client(["scontrol", "show", "job", "-o", job])).get("NodeList", "")
        hosts = hostnames(nodelist)
        if not hosts:
            raise ProvisionError(f"Slurm job {job} has no nodes (NodeList={nodelist!r})")
        per_node = self.environ.get("SLURM_JOB_CPUS_PER_NODE")
        counts = expand_counts(per_node) if per_node else []
        if len(counts) == len(hosts):
            return hosts, dict(zip(hosts, counts, strict=True))
        return hosts, _cpus_from_scontrol(job)

    def _check_shared(self, hosts: list[str]) -> None:
        """One step per node reads a file written here: fails early if workdir is node-local."""
        workdir = Path(self.inventory.workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        marker = workdir / f".reprise-shared-{self.job_id}"
        marker.write_text(self.job_id)
        try:
            done = subprocess.run(
                [
                    "srun",
                    f"--jobid={self.job_id}",
                    f"--nodes={len(hosts)}",
                    f"--ntasks={len(hosts)}",
                    "--ntasks-per-node=1",
                    "--overlap",
                    "--job-name=reprise-check-workdir",
                    "--input=none",
                    "sh",
                    "-c",
                    'test -r "$1" || { echo "$(hostname): cannot read $1"; exit 1; }',
                    "sh",
                    str(marker),
                ],
                capture_output=True,
                text=True,
                timeout=120,
                env=step_env({}, self.environ),
                check=False,
            )
        finally:
            marker.unlink(missing_ok=True)
        if done.returncode != 0:
            raise ProvisionError(
                f"{self.inventory.path}: workdir {workdir} is not shared between this controller "
                f"and the nodes {', '.join(hosts)} of Slurm job {self.job_id} "
                f"({(done.stdout + done.stderr).strip()}); set `workdir:` to a folder on the "
                "cluster's shared file system"
            )

    def provision(self) -> list[Node]:
        hosts, cpus = self._allocation()
        addresses = {
            host: _fields(_client(["scontrol", "show", "node", "-o", host])).get("NodeAddr", host)
            for host in hosts
        }
        slots = self.settings.slots_per_node
        short = [h for h in hosts if cpus.get(h, 0) < slots]
        if short:
            raise ProvisionError(
                f"{self.inventory.path}: slurm.slots_per_node is {slots} but Slurm job "
                f"{self.job_id} has only {min(cpus.get(h, 0) for h in short)} CPU(s) on "
                f"{', '.join(short)}; lower slots_per_node or ask for more CPUs per node "
                "(resources: cpus_per_task)"
            )
        self._check_shared(hosts)
        nodes = [
            Node(
                name=host,
                group=self.settings.group,
                address=host,
                peer_address=addresses[host],
                port=0,
                gpus=self.settings.gpus_per_node,
                slots=slots,
                python=self.inventory.python,
                workdir=self.inventory.workdir,
                labels={
                    JOB_LABEL: self.job_id,
                    STEPS_LABEL: str(self.steps_file.resolve()),
                    "slurm.cpus": str(cpus[host]),
                },
            )
            for host in hosts
        ]
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / "allocation.json").write_text(
            json.dumps({"job": self.job_id, "nodes": [n.as_json() for n in nodes]}, indent=2) + "\n"
        )
        return nodes

    def teardown(self) -> None:
        """Stop every recorded step that still runs (an srun alive here or a step still listed)."""
        for record in read_steps(self.steps_file):
            if _srun_alive(record) or step_listed(record):
                stop_step(record, grace_s=5.0, popen=None)
