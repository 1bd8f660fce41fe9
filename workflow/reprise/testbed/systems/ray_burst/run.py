"""One topology's sweep points on real nodes: provision, stage the data, shape and measure the
links, start Ray, run every point through one driver (each from empty caches), measure the links
again, tear everything down, write one record per point."""

from __future__ import annotations

import hashlib
import json
import shlex
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reprise.errors import ProvisionError, TestbedError
from reprise.testbed.inventory import Inventory, Link, load_inventory
from reprise.testbed.lifecycle import NodeUnreachable, SshLauncher, TestbedRun
from reprise.testbed.nodes import Launched, Node
from reprise.testbed.providers import make_launcher, make_provider
from reprise.testbed.shaping import measure_bandwidth
from reprise.testbed.systems.ray_burst.record import write_record
from reprise.testbed.systems.ray_burst.s3 import LOCAL_CREDENTIALS, LocalS3
from reprise.testbed.systems.ray_burst.settings import (
    CACHE,
    DATA_CASES,
    KEY,
    ROLE,
    ROLES,
    S3_CAP,
    SCHEDULERS,
    SHARED,
    WORKLOADS,
    BurstSettings,
)

RAY_PORT = 6379
# Fast failure detection: a node that dies is declared dead in seconds, not half a minute.
# No drain on SIGTERM: a node of ours is stopped only once its work is done, and Ray's default
# 30-s drain made every stop wait out the grace period and end in SIGKILL. Idle worker processes
# are kept for the sweep (Ray's default kills those beyond the node's CPU count after 1 s): the
# driver starts them warm once, instead of each point paying a cold start for its transfers.
RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
    "RAY_idle_worker_killing_time_threshold_ms": str(3_600_000),
    # a joining node asks the GCS for the head node every 2 s, 20 times by default: on a loaded
    # laptop (load 18 on 2 cores) the head took longer to register and `ray start` failed
    "RAY_NUM_REDIS_GET_RETRIES": "120",
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_failure_threshold": "5",
}


@dataclass(frozen=True)
class Point:
    """One run of the matrix."""

    topology: str
    workload: str
    data_case: str
    scheduler: str
    repetition: int


def check_roles(inventory: Inventory) -> None:
    """Node groups are the study's roles: login, hpc and cloud, nothing else."""
    groups = set(inventory.groups)
    unknown = sorted(groups - set(ROLES))
    missing = [r for r in ROLES if r not in groups]
    if unknown or missing:
        raise ProvisionError(
            f"{inventory.path}: the Ray burst study needs node groups login, hpc and cloud; "
            + (f"unknown group(s) {', '.join(unknown)}; " if unknown else "")
            + (f"missing {', '.join(missing)}" if missing else "")
        )


def _ssh(run: TestbedRun) -> SshLauncher:
    if not isinstance(run.launcher, SshLauncher):
        raise TestbedError("the Ray burst study reaches its nodes over SSH (ssh or docker nodes)")
    return run.launcher


def _sh(ssh: SshLauncher, node: Node, command: str, doing: str, timeout_s: float = 120) -> str:
    result = ssh.run(node, command, doing, timeout_s)
    if not result.ok:
        raise TestbedError(
            f"node {node.name!r}: {doing} failed: {(result.stderr or result.stdout).strip()[-500:]}"
        )
    return str(result.stdout)


def _controller_ip(peer: str) -> str:
    """This machine's address on the route to `peer`: where nodes reach the local S3 server."""
    out = subprocess.run(["ip", "-o", "route", "get", peer], capture_output=True, text=True)
    words = out.stdout.split()
    if out.returncode != 0 or "src" not in words:
        raise TestbedError(f"no route from this machine to node address {peer}: {out.stderr}")
    return words[words.index("src") + 1]


def _paths(node: Node) -> dict[str, str]:
    base = f"{node.workdir}/ray-burst"
    # Ray's own folder, one per node: nodes that share a file system (hosts with a common /tmp,
    # or several nodes on one machine) would otherwise race for the same socket names under
    # /tmp/ray and one raylet dies with "bind: Address already in use". Short, because Ray puts
    # Unix sockets under it and a socket path has at most 107 bytes.
    tag = hashlib.sha1(f"{node.workdir}\0{node.name}".encode()).hexdigest()[:10]
    return {
        "shared": f"{base}/shared",
        "cache": f"{base}/cache/{node.name}",
        "ray_tmp": f"/tmp/reprise-ray-{tag}",
    }


def _stage(ssh: SshLauncher, node: Node, data: Path, inputs: list[str]) -> None:
    """Put the inputs on the node's shared folder (the HPC side's shared file system)."""
    shared = _paths(node)["shared"]
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "inputs.tar"
        with tarfile.open(archive, "w") as tar:
            for rel in inputs:
                tar.add(data / rel, arcname=rel)
        remote = f"{node.workdir}/ray-burst-inputs.tar"
        _sh(ssh, node, f"mkdir -p {shlex.quote(node.workdir)}", "making the work folder")
        ssh.connections.get(node).put(str(archive), remote=remote)
    q = shlex.quote
    _sh(
        ssh,
        node,
        f"rm -rf {q(shared)} && mkdir -p {q(shared)} && tar -xf {q(remote)} -C {q(shared)} "
        f"&& rm -f {q(remote)}",
        "unpacking the inputs",
    )


def _wait_port(ssh: SshLauncher, node: Node, host: str, port: int, timeout_s: float) -> None:
    probe = (
        f"import socket,sys,time\nend=time.time()+{timeout_s}\n"
        f"while True:\n try:\n  socket.create_connection(({host!r},{port}),2).close(); break\n"
        f" except OSError as e:\n  if time.time()>end: sys.exit(str(e))\n  time.sleep(0.3)\n"
    )
    command = f"{shlex.quote(node.python)} -c {shlex.quote(probe)}"
    result = ssh.run(node, command, f"waiting for {host}:{port}", timeout_s + 30)
    if not result.ok:
        raise TestbedError(
            f"node {node.name!r} cannot reach {host}:{port} within {timeout_s:g} s "
            f"({result.stderr.strip()[-300:]})"
        )


def _ray_start(
    run: TestbedRun, node: Node, head: str | None, env: dict[str, str], resources: str
) -> Launched:
    argv = [node.python, "-m", "ray.scripts.scripts", "start", "--block", "--disable-usage-stats"]
    argv += [f"--node-ip-address={node.peer_address}", f"--resources={resources}"]
    argv += ["--object-store-memory=200000000", f"--temp-dir={_paths(node)['ray_tmp']}"]
    if head is None:
        argv += ["--head", f"--port={RAY_PORT}", "--num-cpus=0", "--include-dashboard=false"]
    else:
        argv += [f"--address={head}:{RAY_PORT}", "--num-cpus=1"]
    return run.start(node, f"ray-{node.group}", argv, env)


def _watch(
    run: TestbedRun, driver: Launched, nodes: list[Launched], timeout_s: float, every_s: float = 2
) -> None:
    """Wait for the driver while checking each Ray node: Ray can take minutes to declare dead
    a host whose network vanished, so a node that stops answering, or whose Ray exits, fails
    the run at once, named."""
    ssh = _ssh(run)
    deadline = time.monotonic() + timeout_s
    while ssh.poll(driver) is None:
        if time.monotonic() > deadline:
            raise TestbedError(f"the Ray driver on {driver.node!r} ran past {timeout_s:g} s")
        for proc in nodes:
            try:
                rc = ssh.poll(proc)
            except NodeUnreachable as exc:
                raise TestbedError(
                    f"Ray node {proc.node!r} died while the workload ran ({exc}); the other "
                    "nodes are stopped and the point is not recorded: rerun it"
                ) from None
            if rc is not None:
                raise TestbedError(
                    f"Ray on node {proc.node!r} exited with status {rc} while the workload "
                    f"ran; its log: {proc.log}"
                )
        time.sleep(every_s)
    run.wait_all(60, [driver])  # records the exit; a failure raises with the driver's log


def _check_no_node_lost(result: dict[str, Any], nodes: list[Node], procs: list[Launched]) -> None:
    """A Ray node that died while the workload ran fails the run, named: Ray may have retried
    its tasks elsewhere, but the point then measured a smaller cluster than configured."""
    by_address = {n.peer_address: n.name for n in nodes}
    logs = {p.node: p.log for p in procs}
    alive = set(result["alive_at_end"])
    lost = []
    for nid, role in result["nodes"].items():
        if nid in alive:
            continue
        address = result.get("addresses", {}).get(nid, "?")
        name = by_address.get(address, f"at {address}")
        lost.append(f"{name!r} ({role}, {address}; its Ray log: {logs.get(name, '?')})")
    if lost:
        raise TestbedError(
            f"Ray node {', '.join(lost)} died while the workload ran (Ray declared it dead; "
            f"{len(result.get('requeued', []))} input(s) were requeued); the point is not "
            "recorded: bring the node back and rerun it"
        )


class _Phases:
    """Seconds each step of a point took, in order: where a point's wall time goes."""

    def __init__(self, progress: Callable[[str], None]) -> None:
        self.progress = progress
        self.seconds: dict[str, float] = {}
        self._last = time.monotonic()

    def done(self, name: str) -> None:
        now = time.monotonic()
        self.seconds[name] = round(self.seconds.get(name, 0.0) + now - self._last, 3)
        self._last = now
        self.progress(f"{name}: {self.seconds[name]:.1f} s")


def _stop_together(run: TestbedRun, procs: list[Launched]) -> None:
    """Stop the Ray nodes at once: each `ray start --block` takes seconds to wind down, and one
    after another that was a quarter of a laptop run."""
    ssh = _ssh(run)
    with ThreadPoolExecutor(max_workers=max(1, len(procs))) as pool:
        for future in [pool.submit(ssh.stop, p, run.grace_s) for p in procs]:
            future.result()
    for proc in procs:  # the group is gone: this only records the stop in the run state
        run.stop(proc)


def sweep_order(points: Sequence[Point]) -> list[Point]:
    """The order a sweep runs its points in: repetition by repetition, and within one, the two
    schedulers of a workload and data case back to back, so that both meet the same load."""
    return sorted(
        points,
        key=lambda p: (
            p.repetition,
            WORKLOADS.index(p.workload),
            DATA_CASES.index(p.data_case),
            SCHEDULERS.index(p.scheduler),
        ),
    )


def point_of(rundir: Path, topology: str) -> Point:
    """The point a record folder `<workload>/<data case>/<scheduler>/rep<i>` belongs to."""
    workload, data_case, scheduler, rep = Path(rundir).parts[-4:]
    if not rep.startswith("rep") or not rep[3:].isdigit():
        raise TestbedError(f"{rundir}: not a point's folder (<workload>/<data>/<scheduler>/rep<i>)")
    return Point(topology, workload, data_case, scheduler, int(rep[3:]))


def _check_s3(ssh: SshLauncher, nodes: Sequence[Node], endpoint: str) -> None:
    """Every node that downloads reaches the endpoint, or the run stops before Ray starts."""
    host_port = endpoint.split("://", 1)[-1].split("/", 1)[0]
    host, _, port = host_port.partition(":")
    for node in nodes:
        try:
            _wait_port(ssh, node, host, int(port or 443), 5)
        except TestbedError as exc:
            raise TestbedError(
                f"S3 endpoint {endpoint} is unreachable from node {node.name!r}: {exc}; "
                f"check {KEY}.s3.endpoint"
            ) from None


def _measure(
    run: TestbedRun, links: Sequence[Link], seconds: float, progress: Callable[[str], None]
) -> list[float]:
    """iperf3 over each shaped link, from its first role's node to its second's."""
    rates = []
    for link in links:
        a = next(n for n in run.nodes if n.group == link.groups[0])
        b = next(n for n in run.nodes if n.group == link.groups[1])
        mbit = measure_bandwidth(_ssh(run), a, b, seconds=seconds)
        progress(f"link {a.name} -> {b.name}: {mbit:.1f} Mbit/s ({link.rate_mbit:g})")
        rates.append(round(mbit, 2))
    return rates


def _start_ray(
    run: TestbedRun, by_role: Mapping[str, list[Node]], cap_bps: int, s3_local: bool
) -> list[Launched]:
    """`ray start --block` on every node, the login node first as the head."""
    login = by_role["login"][0]
    procs = []
    for role in ROLES:
        for node in by_role[role]:
            paths = _paths(node)
            env = {
                **RAY_ENV,
                ROLE: role,
                SHARED: paths["shared"],
                CACHE: paths["cache"],
                S3_CAP: str(cap_bps if role in ("login", "hpc") else 0),
            }
            if s3_local:
                env.update(LOCAL_CREDENTIALS)
            head = None if role == "login" else login.peer_address
            procs.append(_ray_start(run, node, head, env, json.dumps({f"burst_{role}": 1})))
            if role == "login":
                _wait_port(_ssh(run), login, login.peer_address, RAY_PORT, 180)
    return procs


def run_sweep(
    inventory_path: Path,
    state_dir: Path,
    workdir: Path,
    settings: BurstSettings,
    outdirs: Mapping[Point, Path],
    data_dir: Path,
    controller_python: str = sys.executable,
    progress: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True),
) -> list[dict[str, Any]]:
    """Run the points of one topology on one set of nodes and one Ray cluster, and write each
    point's record in its folder of `outdirs`; returns the summaries in the order run.

    The nodes, the shaping and Ray are set up once; before each point the driver empties every
    worker's cache and resets the parameter server's weights from the point's seed. The link is
    measured before Ray starts and again after the last point. Nothing is recorded unless every
    point finished; `workdir` keeps the testbed run's state and logs and the local S3 server's.
    """
    points = sweep_order(list(outdirs))
    if not points:
        raise TestbedError("no sweep point to run")
    names = {p.topology for p in points}
    if len(names) != 1:
        raise TestbedError(f"one sweep runs one topology, got {sorted(names)}")
    topology = settings.topology(points[0].topology)
    inventory = load_inventory(inventory_path)
    check_roles(inventory)
    manifest = json.loads((data_dir / "manifest.json").read_text())
    inputs = {w: [i for i in manifest["inputs"] if i["workload"] == w] for w in WORKLOADS}
    for workload in {p.workload for p in points}:
        if not inputs[workload]:
            raise TestbedError(f"{data_dir}/manifest.json has no input for {workload}")
    cases = {p.data_case for p in points}
    provider = make_provider(inventory, state_dir)
    launcher = make_launcher(inventory, [])
    local_s3: LocalS3 | None = None
    phases = _Phases(progress)
    try:
        if "s3" in cases and settings.s3_endpoint is None:
            progress("starting the local S3 server")
            local_s3 = LocalS3(controller_python, data_dir, settings.s3_bucket, workdir / "s3")
            local_s3.start()
            phases.done("s3_server")
        with TestbedRun(provider, launcher, workdir / "run") as run:
            phases.done("provision")
            ssh = _ssh(run)
            by_role = {r: [n for n in run.nodes if n.group == r] for r in ROLES}
            if len(by_role["login"]) != 1:
                raise ProvisionError(
                    f"{inventory.path}: group login must have exactly one node (the Ray head), "
                    f"has {len(by_role['login'])}"
                )
            login = by_role["login"][0]
            s3: dict[str, str] = {"bucket": settings.s3_bucket}
            if "s3" in cases:
                s3["endpoint"] = (
                    f"http://{_controller_ip(login.address)}:{local_s3.port}"
                    if local_s3 is not None
                    else str(settings.s3_endpoint)
                )
                _check_s3(ssh, by_role["hpc"] + by_role["cloud"], s3["endpoint"])
            if "hpc" in cases:
                progress("staging the inputs on the HPC side's shared folder")
                staged = [
                    i["input"] for w in sorted({p.workload for p in points}) for i in inputs[w]
                ]
                for node in [login, *by_role["hpc"]]:
                    _stage(ssh, node, data_dir, staged)
                phases.done("stage")
            for node in by_role["hpc"] + by_role["cloud"]:
                cache = shlex.quote(_paths(node)["cache"])
                _sh(ssh, node, f"rm -rf {cache} && mkdir -p {cache}", "clearing the cache")
            for node in run.nodes:  # an earlier run's Ray sessions (logs, spilled objects)
                ray_tmp = shlex.quote(_paths(node)["ray_tmp"])
                _sh(ssh, node, f"rm -rf {ray_tmp}", "clearing Ray's folder")
            phases.done("clear")
            links = [Link(groups=lk.roles, rate_mbit=lk.rate_mbit) for lk in topology.links]
            if settings.shaping:
                try:
                    run.shape(links)
                except TestbedError as exc:
                    raise TestbedError(
                        f"{exc}; or, where the real link is the experiment, set "
                        f"{KEY}.shaping: false (the link is then only measured)"
                    ) from None
                phases.done("shape")
            before = _measure(run, links, settings.measure_s, progress)
            phases.done("measure_before")
            cap = int(topology.cloud_rate_mbit * 1e6 / 8)
            procs = _start_ray(run, by_role, cap, local_s3 is not None)
            phases.done("ray_start")
            common = {
                "address": f"{login.peer_address}:{RAY_PORT}",
                "classes": settings.size.classes,
                "resolution": settings.size.resolution,
                "passes": settings.size.transform_passes,
                "s3": s3,
                "link_mbit": before[0] if before else topology.nominal_mbit,
                "nodes": len(run.nodes),
                "timeout_s": settings.timeout_s,
            }
            specs = [
                {
                    "workload": p.workload,
                    "data_case": p.data_case,
                    "scheduler": p.scheduler,
                    "inputs": [
                        {"input": i["input"], "bytes": i["bytes"]} for i in inputs[p.workload]
                    ],
                    "seed": settings.seed + p.repetition,
                }
                for p in points
            ]
            remote = f"{login.workdir}/ray-burst/driver-{run.run_id}"
            _sh(ssh, login, f"mkdir -p {shlex.quote(remote)}", "making the driver's folder")
            with tempfile.TemporaryDirectory() as tmp:
                spec_file = Path(tmp) / "spec.json"
                spec_file.write_text(json.dumps({"common": common, "points": specs}))
                ssh.connections.get(login).put(str(spec_file), f"{remote}/spec.json")
            progress(f"running {len(points)} point(s) of {topology.name}")
            driver = run.start(
                login,
                "driver",
                [login.python, "-m", "reprise.testbed.systems.ray_burst.driver",
                 f"{remote}/spec.json", remote],
                {"RAY_USAGE_STATS_ENABLED": "0"},
            )  # fmt: skip
            # the driver enforces each point's limit; this bounds joining and warming as well
            _watch(run, driver, procs, 300 + settings.timeout_s * len(points))
            results = []
            for index, point in enumerate(points):
                local = outdirs[point] / "driver-result.json"
                ssh.fetch(login, f"{remote}/result-{index}.json", local)
                results.append(json.loads(local.read_text()))
                _check_no_node_lost(results[-1], run.nodes, procs)
            phases.done("driver")
            # after the workloads, with Ray idle: did the link hold its rate through the sweep?
            after = _measure(run, links, settings.measure_s, progress)
            phases.done("measure_after")
            _stop_together(run, procs)
            phases.done("ray_stop")
            nodes = [n.as_json() for n in run.nodes]
            run_id = run.run_id
        phases.done("teardown")
    finally:
        if local_s3 is not None:
            local_s3.stop()
    measured = [
        {"between": list(lk.groups), "configured_mbit": lk.rate_mbit, "measured_mbit": b,
         "measured_after_mbit": a}
        for lk, b, a in zip(links, before, after, strict=True)
    ]  # fmt: skip
    summaries = []
    for index, (point, result) in enumerate(zip(points, results, strict=True)):
        meta = {
            "experiment": "ray_burst",
            "cluster": inventory.name,
            "provider": inventory.provider,
            "run_id": run_id,
            "scale": settings.scale,
            "topology": point.topology,
            "nominal_mbit": topology.nominal_mbit,
            "configured_mbit": topology.cloud_rate_mbit,
            "links": measured,
            "shaped": settings.shaping,
            "workload": point.workload,
            "data_case": point.data_case,
            "scheduler": point.scheduler,
            "repetition": point.repetition,
            "seed": settings.seed + point.repetition,
            "nodes": nodes,
            "s3_endpoint": s3.get("endpoint"),
            # what an earlier point (or run) had left in each worker's cache, removed first
            "cache_files_removed": result["cache_files_removed"],
            # this point's own time: emptying the caches, resetting the server, the workload
            "wall_seconds": round(float(result["ended"]) - float(result["began"]), 3),
            "sweep": {
                "position": index,
                "points": len(points),
                # set up once for all the points of this topology (and torn down after them)
                "phase_seconds": {
                    **phases.seconds,
                    "driver_setup": round(float(result["driver_setup_s"]), 3),
                },
            },
        }
        summaries.append(write_record(outdirs[point], result, meta))
    return summaries


def run_point(
    inventory_path: Path,
    state_dir: Path,
    outdir: Path,
    settings: BurstSettings,
    point: Point,
    data_dir: Path,
    controller_python: str = sys.executable,
    progress: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True),
) -> dict[str, Any]:
    """One point on its own nodes and Ray cluster: a sweep of one, recorded in `outdir`."""
    return run_sweep(
        inventory_path, state_dir, outdir, settings, {point: outdir}, data_dir,
        controller_python, progress,
    )[0]  # fmt: skip
