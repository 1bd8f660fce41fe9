"""The Ray driver of one sweep, started on the login node: runs each point's workload under its
scheduler, one after another on the same Ray cluster, and writes what every task did.
`python -m reprise.testbed.systems.ray_burst.driver SPEC OUTDIR` (OUTDIR/result-<i>.json)"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from reprise.atomic import write_text_atomic
from reprise.testbed.systems.ray_burst import tasks
from reprise.testbed.systems.ray_burst.scheduler import DataAwarePlanner, NodeModel

RESOURCE_PREFIX = "burst_"
"""Each node's `ray start` gives it the custom resource burst_<role>: how the driver tells roles."""


class PointTimeout(RuntimeError):
    """A point's workload ran past its time limit."""


def _roles(expected: int, timeout_s: float) -> dict[str, str]:
    """node id -> role of every live node, once `expected` nodes have joined."""
    deadline = time.monotonic() + timeout_s
    while True:
        alive = [n for n in ray.nodes() if n["Alive"]]
        roles = {}
        for n in alive:
            names = [k for k in n["Resources"] if k.startswith(RESOURCE_PREFIX)]
            if names:
                roles[n["NodeID"]] = names[0][len(RESOURCE_PREFIX) :]
        if len(roles) >= expected:
            return roles
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"only {len(roles)} of {expected} Ray nodes joined within {timeout_s:g} s: "
                f"{sorted(roles.values())}"
            )
        time.sleep(0.5)


def _addresses() -> dict[str, str]:
    """node id -> the address its raylet listens on: how the run names a node that died."""
    return {n["NodeID"]: n["NodeManagerAddress"] for n in ray.nodes()}


def _alive() -> set[str]:
    return {n["NodeID"] for n in ray.nodes() if n["Alive"]}


def _wait_one(refs: list[Any], deadline: float) -> tuple[list[Any], list[Any]]:
    """ray.wait for one ref, but not past the point's deadline (time.monotonic())."""
    ready, rest = ray.wait(refs, num_returns=1, timeout=max(0.0, deadline - time.monotonic()))
    if not ready:
        raise PointTimeout(f"{len(refs)} task(s) still unfinished at the point's time limit")
    return ready, rest


def _task_fn(spec: dict[str, Any], ps: Any) -> Any:
    options: dict[str, Any] = {"num_cpus": 1, "max_retries": int(spec.get("max_retries", 3))}
    if spec["workload"] == "parameter_server":
        fn = ray.remote(tasks.train_step)

        def submit(rel: str, strategy: Any = "DEFAULT") -> Any:
            return fn.options(scheduling_strategy=strategy, **options).remote(
                ps, rel, spec["data_case"], spec["login_node"], spec["s3"], spec
            )

        return submit
    fn = ray.remote(tasks.transform)

    def submit_transform(rel: str, strategy: Any = "DEFAULT") -> Any:
        return fn.options(scheduling_strategy=strategy, **options).remote(
            rel, spec["data_case"], spec["login_node"], spec["s3"], spec
        )

    return submit_transform


def run_default(spec: dict[str, Any], submit: Any, deadline: float) -> dict[str, Any]:
    """Ray's own placement: every task submitted at once, the copy inside the task."""
    refs = {submit(item["input"]): item["input"] for item in spec["inputs"]}
    done = []
    pending = list(refs)
    while pending:
        ready, pending = _wait_one(pending, deadline)
        done.append(ray.get(ready[0]))
    return {"tasks": done, "stages": [], "requeued": []}


def run_data_aware(
    spec: dict[str, Any], submit: Any, roles: dict[str, str], deadline: float
) -> dict[str, Any]:
    """Our controller: choose by estimated finish time, copy first (one per node), then run."""
    needs = {"hpc": {"cloud"}, "s3": {"hpc", "cloud"}}[spec["data_case"]]
    link = float(spec["link_mbit"]) * 1e6 / 8
    workers = [
        NodeModel(nid, role, role in needs, link)
        for nid, role in sorted(roles.items())
        if role != "login"
    ]
    planner = DataAwarePlanner(workers, depth=int(spec.get("depth", 2)))
    sizes = {item["input"]: int(item["bytes"]) for item in spec["inputs"]}
    queue = [item["input"] for item in spec["inputs"]]
    t0 = time.monotonic()
    transfers: dict[str, list[str]] = {w.node_id: [] for w in workers}  # waiting, per node
    moving: dict[Any, tuple[str, str]] = {}  # stage ref -> (node, input)
    running: dict[Any, tuple[str, str]] = {}  # task ref -> (node, input)
    stages, done, requeued = [], [], []

    def start_next_transfer(nid: str) -> None:
        if transfers[nid] and not any(n == nid for n, _ in moving.values()):
            rel = transfers[nid].pop(0)
            ref = tasks.stage.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(nid, soft=False)
            ).remote(rel, spec["data_case"], spec["login_node"], spec["s3"])
            moving[ref] = (nid, rel)

    def launch(nid: str, rel: str) -> None:
        strategy = NodeAffinitySchedulingStrategy(nid, soft=False)
        running[submit(rel, strategy)] = (nid, rel)

    def drop_node(nid: str) -> None:
        """A node that died: its queued and in-flight inputs go back to the queue."""
        lost = transfers.pop(nid, [])
        lost += [rel for ref, (n, rel) in list(moving.items()) if n == nid and moving.pop(ref)]
        lost += [rel for ref, (n, rel) in list(running.items()) if n == nid and running.pop(ref)]
        planner.nodes.pop(nid, None)
        requeued.extend(lost)
        queue[:0] = lost
        if not planner.nodes:
            raise RuntimeError("every worker node died; nothing left to run the tasks on")

    while queue or moving or running:
        while queue:
            rel = queue[0]
            nid = planner.choose(rel, sizes[rel], time.monotonic() - t0)
            if nid is None:
                break
            queue.pop(0)
            if planner.nodes[nid].needs_transfer:
                transfers[nid].append(rel)
                start_next_transfer(nid)
            else:
                launch(nid, rel)
        refs = list(moving) + list(running)
        if not refs:
            continue
        ready, _ = _wait_one(refs, deadline)
        ref = ready[0]
        now = time.monotonic() - t0
        if ref in moving:
            nid, rel = moving.pop(ref)
            try:
                got = ray.get(ref)
            except (ray.exceptions.RayError, ValueError):
                if nid not in _alive():
                    drop_node(nid)
                    continue
                raise
            stages.append(got)
            planner.transferred(nid, int(got["bytes"]), float(got["seconds"]))
            launch(nid, rel)
            start_next_transfer(nid)
        else:
            nid, rel = running.pop(ref)
            try:
                result = ray.get(ref)
            except (ray.exceptions.RayError, ValueError):
                if nid not in _alive():
                    drop_node(nid)
                    continue
                raise
            done.append(result)
            planner.finished(nid, rel, sizes[rel], float(result["compute_s"]), now)
    return {"tasks": done, "stages": stages, "requeued": requeued}


def _pinned(nid: str) -> NodeAffinitySchedulingStrategy:
    return NodeAffinitySchedulingStrategy(nid, soft=False)


def _warm(roles: dict[str, str], hold_s: float = 1.0) -> None:
    """Start, before the first clock, every worker process the points need: on each worker node
    one for compute and one beside it for a transfer (the data-aware scheduler copies while the
    node computes), on the login node two that serve copies. A process started cold during a
    point would charge seconds of imports (torch) to whichever transfer or task waited for it;
    the Ray nodes keep idle processes for the whole sweep (RAY_idle_worker_killing_time_...)."""
    fn = ray.remote(tasks.warm)
    cpus = {"login": (0, 0)}
    refs = [
        fn.options(num_cpus=c, scheduling_strategy=_pinned(nid)).remote(hold_s)
        for nid, role in roles.items()
        for c in cpus.get(role, (1, 0))
    ]
    ray.get(refs)


def run_point(
    spec: dict[str, Any], ps: Any, roles: dict[str, str], addresses: dict[str, str]
) -> dict[str, Any]:
    """One point: empty every worker's cache, fresh parameter-server weights from the point's
    seed, then the workload under the point's scheduler, timed."""
    began = time.time()
    workers = [nid for nid, role in roles.items() if role != "login"]
    clear = ray.remote(tasks.clear_cache)
    cleared = ray.get(
        [clear.options(num_cpus=0, scheduling_strategy=_pinned(n)).remote() for n in workers]
    )
    if spec["workload"] == "parameter_server":
        ray.get(ps.reset.remote(int(spec["classes"]), int(spec["seed"])))
    submit = _task_fn(spec, ps)
    deadline = time.monotonic() + float(spec["timeout_s"])
    started = time.time()
    if spec["scheduler"] == "default":
        result = run_default(spec, submit, deadline)
    else:
        result = run_data_aware(spec, submit, roles, deadline)
    ended = time.time()
    result.update(
        began=began,
        started=started,
        ended=ended,
        total_s=ended - started,
        prepare_s=started - began,
        cache_files_removed={
            r: sum(c["removed"] for c in cleared if c["role"] == r)
            for r in sorted({c["role"] for c in cleared})
        },
        nodes=dict(roles),
        addresses=addresses,
        alive_at_end=sorted(_alive()),
    )
    return result


def main(spec_path: str, out_dir: str) -> int:
    began = time.time()
    spec = json.loads(Path(spec_path).read_text())
    common, points = spec["common"], spec["points"]
    # the head's address, not "auto": "auto" reads /tmp/ray/ray_current_cluster, which a node's own
    # --temp-dir never updates, so on hosts sharing /tmp it names whichever cluster wrote it last
    ray.init(address=str(common["address"]), log_to_driver=False)
    roles = _roles(int(common["nodes"]), float(common.get("join_timeout_s", 300)))
    addresses = _addresses()
    login = [nid for nid, role in roles.items() if role == "login"]
    if len(login) != 1:
        raise RuntimeError(f"expected one login node among the Ray nodes, found {len(login)}")
    ps = None
    if any(p["workload"] == "parameter_server" for p in points):
        # one server for the sweep, its weights reset from each point's seed (run_point): a new
        # actor per point would charge a cold worker process's imports to every point
        ps = tasks.ParameterServer.options(scheduling_strategy=_pinned(login[0])).remote(
            int(common["classes"]), int(points[0]["seed"])
        )
        ray.get(ps.get_weights.remote())
    _warm(roles)
    setup_s = time.time() - began
    for index, point in enumerate(points):
        result = run_point({**common, **point, "login_node": login[0]}, ps, roles, addresses)
        result["driver_setup_s"] = setup_s
        write_text_atomic(Path(out_dir) / f"result-{index}.json", json.dumps(result, indent=1))
    ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
