"""The `docker` and `swarm` deployments: a container per FedScale role on a bridge/overlay net."""

from __future__ import annotations

import json
import signal
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import docker.errors  # type: ignore[import-untyped]

from reprise.errors import ProvisionError, TestbedError
from reprise.testbed.provision.docker import connect
from reprise.testbed.systems.fedscale.job import FedScaleSettings, job_file
from reprise.testbed.systems.fedscale.supervise import (
    require_port_free,
    wait_listening,
    wait_roles,
)

LABEL = "reprise.fedscale.run"
DATA_MOUNT = "/data"
LOG_MOUNT = "/logs"


class ContainerRole:
    """A started role container; poll() reads Docker's exit code once it stopped."""

    def __init__(self, name: str, container: Any) -> None:
        self.name = name
        self.container = container

    def poll(self) -> int | None:
        try:
            self.container.reload()
        except docker.errors.NotFound:
            return -1  # removed under us: count it as lost
        if self.container.status in ("exited", "dead"):
            return int(self.container.attrs["State"]["ExitCode"])
        return None

    def tail(self, lines: int = 15) -> str:
        try:
            return str(self.container.logs(tail=lines).decode(errors="replace"))
        except docker.errors.APIError as exc:
            return f"(no log: {exc.explanation or exc})"


class ContainerRun:
    """Everything one container run creates, recorded in created.json before it is relied on, and
    removed by id on any exit: containers, the network, and a swarm the run initialised."""

    def __init__(self, client: Any, state: Path, run_id: str) -> None:
        self.client = client
        self.state = state
        self.run_id = run_id
        self.created: dict[str, Any] = {"run": run_id, "containers": [], "network": None}

    def save(self) -> None:
        self.state.write_text(json.dumps(self.created, indent=2) + "\n")

    def ensure_swarm(self) -> None:
        info = self.client.info().get("Swarm", {})
        if info.get("LocalNodeState") == "active":
            self.created["swarm"] = "existing"  # someone else's swarm: used, never left
            return
        # a one-node swarm here; on several hosts, the others join with the printed token
        self.created["swarm"] = "initialised"
        self.save()
        try:
            self.client.swarm.init(advertise_addr="127.0.0.1", listen_addr="127.0.0.1:2377")
        except docker.errors.APIError as exc:
            raise ProvisionError(f"docker swarm init failed: {exc.explanation or exc}") from None

    def network(self, driver: str) -> Any:
        name = f"fedscale-{self.run_id}"
        options: dict[str, Any] = {"driver": driver, "labels": {LABEL: self.run_id}}
        if driver == "overlay":
            options["attachable"] = True  # plain containers (not services) may join it
        net = self.client.networks.create(name, **options)
        self.created["network"] = net.id
        self.save()
        return net

    def start(self, role: str, image: str, command: list[str], **options: Any) -> Any:
        name = f"fedscale-{self.run_id}-{role}"
        container = self.client.containers.create(
            image, command=command, name=name, hostname=role, labels={LABEL: self.run_id}, **options
        )
        self.created["containers"].append({"id": container.id, "name": name})
        self.save()
        container.start()
        return container

    def teardown(self) -> list[str]:
        problems: list[str] = []
        for entry in reversed(self.created["containers"]):
            try:
                self.client.containers.get(entry["id"]).remove(force=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                problems.append(f"container {entry['name']}: {exc.explanation or exc}")
        if self.created.get("network"):
            try:
                self.client.networks.get(self.created["network"]).remove()
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                problems.append(f"network {self.created['network']}: {exc.explanation or exc}")
        if self.created.get("swarm") == "initialised":
            try:
                self.client.swarm.leave(force=True)
            except docker.errors.APIError as exc:
                problems.append(f"swarm leave: {exc.explanation or exc}")
            # leaving keeps the ingress helpers' bridge; it is ours to remove too
            for net in self.client.networks.list(names=["docker_gwbridge"]):
                try:
                    net.remove()
                except docker.errors.APIError as exc:
                    problems.append(f"docker_gwbridge: {exc.explanation or exc}")
        if not problems:
            self.state.unlink(missing_ok=True)
        return problems


def remove_recorded(state: Path) -> list[str]:
    """After a crash (kill -9 of the run): remove what a created.json recorded, by id."""
    if not state.is_file():
        return []
    created = json.loads(state.read_text())
    run = ContainerRun(connect(), state, str(created.get("run", "?")))
    run.created = created
    problems = run.teardown()
    if problems:
        raise ProvisionError(f"{state}: could not remove {'; '.join(problems)}")
    return [c["name"] for c in created.get("containers", [])]


def run_containers(
    settings: FedScaleSettings,
    data_dir: Path,
    work: Path,
    image_record: Path,
    progress: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True),
) -> tuple[float, dict[str, Any], Path]:
    """Run FedScale in containers; return (seconds to the aggregator's end, facts, its logs)."""
    images = json.loads(image_record.read_text())["images"]
    client = connect()
    for role in ("aggregator", "executor"):
        try:
            client.images.get(images[role]["image_id"])
        except docker.errors.ImageNotFound:
            raise ProvisionError(
                f"FedScale {role} image {images[role]['tag']} ({images[role]['image_id'][:19]}) "
                f"is gone; rebuild it with `snakemake fedscale_images -R fedscale_images`"
            ) from None
    require_port_free(settings.port, "published port of the FedScale aggregator")
    work = work.resolve()  # bind mounts need absolute paths (a relative one names a volume)
    fed_logs = work / "fedscale"
    fed_logs.mkdir(parents=True, exist_ok=True)
    job = job_file(
        settings,
        data_dir=DATA_MOUNT,
        log_path=LOG_MOUNT,
        ps_ip="aggregator",  # the aggregator container's name on the run's network
        ps_port=settings.port,
        executor_host="executors",
    )
    job_path = work / "job.json"
    job_path.write_text(json.dumps(job, indent=2) + "\n")
    run_id = uuid.uuid4().hex[:10]
    run = ContainerRun(client, work / "created.json", run_id)
    driver = "overlay" if settings.deployment == "swarm" else "bridge"
    old = None
    if threading.current_thread() is threading.main_thread():

        def on_sigterm(signum: int, frame: FrameType | None) -> None:
            raise TestbedError("received SIGTERM; removing the FedScale containers")

        old = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        if driver == "overlay":
            run.ensure_swarm()
        net = run.network(driver)
        volumes = {
            str(data_dir): {"bind": DATA_MOUNT, "mode": "ro"},
            str(fed_logs): {"bind": LOG_MOUNT, "mode": "rw"},
            str(job_path): {"bind": "/job/job.json", "mode": "ro"},
        }
        common = {"network": net.name, "volumes": volumes}
        aggregator = ContainerRole(
            f"aggregator (container fedscale-{run_id}-aggregator)",
            run.start(
                "aggregator",
                images["aggregator"]["image_id"],
                [],
                ports={f"{settings.port}/tcp": ("127.0.0.1", settings.port)},
                **common,
            ),
        )
        wait_listening(settings.port, aggregator, timeout_s=240)
        progress(f"aggregator container up on {driver} network {net.name}")
        executors = [
            ContainerRole(
                f"executor {rank} (container fedscale-{run_id}-executor{rank})",
                run.start(f"executor{rank}", images["executor"]["image_id"], [str(rank)], **common),
            )
            for rank in range(1, settings.executors + 1)
        ]
        waited = wait_roles(aggregator, executors, settings.timeout_s, progress)
        for log_name, done in [
            ("aggregator", aggregator),
            *((f"executor{i}", e) for i, e in enumerate(executors, start=1)),
        ]:
            (work / f"{log_name}.log").write_text(done.tail(100000))
    finally:
        problems = run.teardown()
        if old is not None:
            signal.signal(signal.SIGTERM, old)
        if problems:
            progress("teardown left: " + "; ".join(problems))
    facts = {
        "job": job,
        "network_driver": driver,
        "swarm": run.created.get("swarm"),
        "run_id": run_id,
        "images": {role: images[role]["image_id"] for role in ("aggregator", "executor")},
    }
    return waited, facts, fed_logs
