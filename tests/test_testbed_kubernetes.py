"""The Kubernetes provider and launcher up to the API boundary (no API server can run here).

Objects are validated offline against the Kubernetes 1.33 schema (kubernetes-validate); a
recording cluster stands in for CoreV1Api/AppsV1Api; exec commands are recorded and then run
on this machine, so the process handling in the pod (setsid, PGID, kill, exit status) is real.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import kubernetes_validate
import pytest
import yaml
from infra.workflow import REPO
from kubernetes.client.exceptions import ApiException

from reprise.errors import ProvisionError
from reprise.errors import TestbedError as StepError
from reprise.testbed.inventory import load_inventory, parse_inventory
from reprise.testbed.provision.kubernetes import (
    VANISHED,
    KubernetesLauncher,
    KubernetesProvider,
    quantity,
)

GROUPS = [
    {"group": "hpc", "count": 2, "cpus": 2, "memory": "4g", "gpus": 1},
    {"group": "cloud", "count": 1, "cpus": 0.5, "memory": "512m", "slots": 2},
]


def inventory(tmp_path: Path, groups: list[dict[str, Any]] | None = None, **extra: Any) -> Any:
    doc = {
        "provider": "kubernetes",
        "python": "/opt/venv/bin/python",
        "workdir": str(tmp_path / "node"),
        "kubernetes": {"namespace": "reprise", "image": "registry.example/reprise-node:1", **extra},
    }
    doc["kubernetes"]["groups"] = groups or GROUPS
    return parse_inventory(doc, tmp_path / "burst.yaml")


def status(ready: bool, reason: str | None = None) -> Any:
    waiting = SimpleNamespace(reason=reason, message="back-off pulling image") if reason else None
    return SimpleNamespace(
        phase="Running" if ready else "Pending",
        conditions=[SimpleNamespace(type="Ready", status=str(ready), reason=None)],
        container_statuses=[SimpleNamespace(state=SimpleNamespace(waiting=waiting))],
    )


class RecordingCluster:
    """CoreV1Api + AppsV1Api as the provider uses them: records calls, keeps objects and pods.

    Pods of a StatefulSet appear on creation and turn Ready after `ready_after` pod listings;
    `fail_create` names an object whose creation is refused; `waiting` a reason pods stay in.
    """

    def __init__(
        self, ready_after: int = 1, fail_create: str | None = None, waiting: str | None = None
    ) -> None:
        self.calls: list[tuple[str, str]] = []
        self.objects: dict[tuple[str, str], Any] = {}
        self.pods: dict[str, Any] = {}
        self.ready_after = ready_after
        self.fail_create = fail_create
        self.waiting = waiting
        self.listings = 0

    def _create(self, kind: str, namespace: str, body: Any) -> Any:
        name = body.metadata.name
        self.calls.append((f"create {kind}", name))
        if name == self.fail_create:
            raise ApiException(status=403, reason="Forbidden")
        if (kind, name) in self.objects:
            raise ApiException(status=409, reason="AlreadyExists")
        self.objects[(kind, name)] = body
        return body

    def create_namespaced_service(self, namespace: str, body: Any) -> Any:
        return self._create("Service", namespace, body)

    def create_namespaced_stateful_set(self, namespace: str, body: Any) -> Any:
        self._create("StatefulSet", namespace, body)
        labels = body.spec.template.metadata.labels
        for i in range(body.spec.replicas):
            name = f"{body.metadata.name}-{i}"
            self.pods[name] = SimpleNamespace(
                metadata=SimpleNamespace(name=name, labels=dict(labels)), status=status(False)
            )
        return body

    def list_namespaced_pod(self, namespace: str, label_selector: str) -> Any:
        self.calls.append(("list pods", label_selector))
        self.listings += 1
        wanted = dict(part.split("=") for part in label_selector.split(","))
        items = [p for p in self.pods.values() if wanted.items() <= p.metadata.labels.items()]
        if self.listings >= self.ready_after:
            for pod in items:
                pod.status = status(self.waiting is None, self.waiting)
        return SimpleNamespace(items=items)

    def _read(self, kind: str, name: str) -> Any:
        if (kind, name) not in self.objects:
            raise ApiException(status=404, reason="NotFound")
        return self.objects[(kind, name)]

    def read_namespaced_service(self, name: str, namespace: str) -> Any:
        return self._read("Service", name)

    def read_namespaced_stateful_set(self, name: str, namespace: str) -> Any:
        return self._read("StatefulSet", name)

    def _delete(self, kind: str, name: str, body: Any) -> None:
        assert body.propagation_policy == "Foreground"
        self.calls.append((f"delete {kind}", name))
        self._read(kind, name)
        del self.objects[(kind, name)]
        if kind == "StatefulSet":
            for pod in [p for p in self.pods if p.rsplit("-", 1)[0] == name]:
                del self.pods[pod]

    def delete_namespaced_service(self, name: str, namespace: str, body: Any) -> None:
        self._delete("Service", name, body)

    def delete_namespaced_stateful_set(self, name: str, namespace: str, body: Any) -> None:
        self._delete("StatefulSet", name, body)

    def connect_get_namespaced_pod_exec(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("only passed to the exec function, never called directly")


class LocalExec:
    """The exec API's stream() for a pod that is this machine: records, then runs the command."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, method: Any, pod: str, namespace: str, **kwargs: Any) -> str:
        assert method.__name__ == "connect_get_namespaced_pod_exec"
        assert kwargs["stdout"] and kwargs["stderr"] and not kwargs["stdin"] and not kwargs["tty"]
        self.calls.append({"pod": pod, "namespace": namespace, **kwargs})
        done = subprocess.run(kwargs["command"], capture_output=True, text=True, timeout=60)
        return done.stdout + done.stderr


def provider(tmp_path: Path, api: RecordingCluster, **kw: Any) -> KubernetesProvider:
    inv = inventory(tmp_path, **kw)
    return KubernetesProvider(inv, tmp_path / "state", api=api, ready_timeout_s=5, poll_s=0.01)


# --- objects ------------------------------------------------------------------------------


def test_every_object_validates_against_the_kubernetes_schema(tmp_path: Path) -> None:
    prov = provider(tmp_path, RecordingCluster())
    docs = prov.manifests()
    assert [d["kind"] for d in docs] == ["Service", "StatefulSet", "StatefulSet"]
    for doc in docs:
        kubernetes_validate.validate(doc, "1.33", strict=True)
    written = list(yaml.safe_load_all((tmp_path / "state" / "manifests.yaml").read_text()))
    assert written == docs


def test_objects_carry_the_groups_resources_and_the_run_labels(tmp_path: Path) -> None:
    prov = provider(tmp_path, RecordingCluster())
    service, hpc, cloud = prov.manifests()
    labels = {"reprise.cluster": "burst", "reprise.run": prov.run}
    assert service["spec"]["clusterIP"] == "None" and service["spec"]["selector"] == labels
    assert service["spec"]["publishNotReadyAddresses"] is True
    for sts, replicas in ((hpc, 2), (cloud, 1)):
        assert sts["spec"]["serviceName"] == service["metadata"]["name"]
        assert sts["spec"]["replicas"] == replicas
        assert labels.items() <= sts["spec"]["template"]["metadata"]["labels"].items()
        assert (
            sts["spec"]["selector"]["matchLabels"] == sts["spec"]["template"]["metadata"]["labels"]
        )
        (container,) = sts["spec"]["template"]["spec"]["containers"]
        assert container["image"] == "registry.example/reprise-node:1"
        assert container["command"][-2:] == ["sleep", "infinity"]
        assert container["volumeMounts"][0]["mountPath"] == str(tmp_path / "node")
    hpc_res = hpc["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert hpc_res["requests"] == {"cpu": "2", "memory": "4Gi"}
    assert hpc_res["limits"] == {"cpu": "2", "memory": "4Gi", "nvidia.com/gpu": "1"}
    cloud_res = cloud["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert cloud_res["requests"] == {"cpu": "0.5", "memory": "512Mi"}
    assert "nvidia.com/gpu" not in cloud_res["limits"]
    for doc in (service, hpc, cloud):
        assert len(doc["metadata"]["name"]) <= 52


def test_the_default_clusters_nodes_as_pods_validate(tmp_path: Path) -> None:
    """local-docker's node groups (the throughput_profile default) as a Kubernetes run."""
    docker = load_inventory(REPO / "config" / "clusters" / "local-docker.yaml")
    assert docker.docker is not None
    groups = [
        {k: v for k, v in vars(g).items() if (v is not None and k != "gpus") or v}
        for g in docker.docker.groups
    ]
    prov = provider(tmp_path, RecordingCluster(), groups=groups)
    docs = prov.manifests()
    for doc in docs:
        kubernetes_validate.validate(doc, "1.33", strict=True)
    assert sum(d["spec"].get("replicas", 0) for d in docs) == 3


def test_docker_sizes_become_kubernetes_quantities() -> None:
    assert quantity("512m") == "512Mi"  # 'm' would be milli-bytes in Kubernetes
    assert quantity("2g") == "2Gi" and quantity("2Gi") == "2Gi" and quantity("1.5G") == "1.5Gi"
    assert quantity("1048576") == "1048576"
    with pytest.raises(ProvisionError, match="512m, 2g or 2Gi"):
        quantity("lots")


def test_a_broken_object_is_caught_by_the_validator(tmp_path: Path) -> None:
    """The validation above can fail: a misspelled field is refused."""
    doc = provider(tmp_path, RecordingCluster()).manifests()[1]
    doc["spec"]["template"]["spec"]["containers"][0]["imagee"] = "x"
    with pytest.raises(kubernetes_validate.ValidationError, match="imagee"):
        kubernetes_validate.validate(doc, "1.33", strict=True)


# --- the create / wait / delete sequence ---------------------------------------------------


def test_provision_creates_waits_and_teardown_deletes_what_it_made(tmp_path: Path) -> None:
    api = RecordingCluster(ready_after=3)
    prov = provider(tmp_path, api)
    nodes = prov.provision()
    svc = prov.service
    hpc, cloud = prov.stateful_set_name(prov.settings.groups[0]), f"{svc}-cloud"
    creates = [c for c in api.calls if c[0].startswith("create")]
    assert creates == [
        ("create Service", svc),
        ("create StatefulSet", hpc),
        ("create StatefulSet", cloud),
    ]
    assert sum(c[0] == "list pods" for c in api.calls) == 3  # waited until Ready
    assert [n.name for n in nodes] == [f"{hpc}-0", f"{hpc}-1", f"{cloud}-0"]
    first = nodes[0]
    assert first.address == first.peer_address == f"{hpc}-0.{svc}.reprise.svc"
    assert (first.group, first.gpus, first.slots) == ("hpc", 1, 1)
    assert (nodes[2].group, nodes[2].gpus, nodes[2].slots) == ("cloud", 0, 2)
    assert first.labels["kubernetes.pod"] == f"{hpc}-0"
    created = json.loads((tmp_path / "state" / "created.json").read_text())
    assert [e["name"] for e in created] == [svc, hpc, cloud]

    api.calls.clear()
    prov.teardown()
    deletes = [c for c in api.calls if c[0].startswith("delete")]
    assert deletes == [
        ("delete StatefulSet", cloud),
        ("delete StatefulSet", hpc),
        ("delete Service", svc),
    ]
    assert not api.objects and not api.pods
    assert not (tmp_path / "state" / "created.json").exists()
    prov.teardown()  # idempotent: nothing recorded, nothing deleted
    assert [c for c in api.calls if c[0].startswith("delete")] == deletes


def test_a_failure_mid_provision_leaves_only_created_objects_to_delete(tmp_path: Path) -> None:
    api = RecordingCluster(fail_create="placeholder")
    prov = provider(tmp_path, api)
    cloud = f"{prov.service}-cloud"
    api.fail_create = cloud
    with pytest.raises(ProvisionError, match=rf"creating StatefulSet {cloud} .*403 Forbidden"):
        prov.provision()
    hpc = prov.stateful_set_name(prov.settings.groups[0])
    # a new process (the run's cleanup) tears down from the record alone
    again = provider(tmp_path, api)
    again.teardown()
    deletes = [c for c in api.calls if c[0].startswith("delete")]
    assert deletes == [("delete StatefulSet", hpc), ("delete Service", prov.service)]
    assert not api.objects


def test_pods_that_cannot_pull_their_image_fail_fast_with_the_fix(tmp_path: Path) -> None:
    api = RecordingCluster(waiting="ImagePullBackOff")
    prov = provider(tmp_path, api)
    start = time.monotonic()
    with pytest.raises(ProvisionError, match=r"ImagePullBackOff.*kubernetes.image"):
        prov.provision()
    assert time.monotonic() - start < 2
    prov.teardown()
    assert not api.objects


def test_pods_never_ready_time_out_naming_them(tmp_path: Path) -> None:
    api = RecordingCluster(ready_after=10**6)
    prov = provider(tmp_path, api)
    prov.ready_timeout_s = 0.2
    with pytest.raises(ProvisionError, match=r"not Ready after 0 s: .*-hpc-0 \(Pending"):
        prov.provision()
    prov.teardown()


def test_an_object_of_someone_else_is_not_deleted(tmp_path: Path) -> None:
    api = RecordingCluster()
    prov = provider(tmp_path, api)
    prov.provision()
    api.objects[("Service", prov.service)].metadata.labels = {"reprise.run": "other"}
    with pytest.raises(ProvisionError, match=r"Service .* not labelled reprise.run=.*kept"):
        prov.teardown()
    assert ("Service", prov.service) in api.objects
    assert not [k for k in api.objects if k[0] == "StatefulSet"]


def test_a_rerun_removes_what_an_interrupted_run_left(tmp_path: Path) -> None:
    api = RecordingCluster()
    provider(tmp_path, api).provision()  # never torn down
    api.calls.clear()
    nodes = provider(tmp_path, api).provision()
    kinds = [c[0] for c in api.calls if not c[0].startswith("list")]
    assert kinds[:3] == ["delete StatefulSet"] * 2 + ["delete Service"]
    assert kinds[3:] == ["create Service", "create StatefulSet", "create StatefulSet"]
    assert len(nodes) == 3


# --- processes through the exec API --------------------------------------------------------

WORKER = """
import os, signal, sys, time
print("worker", os.environ["REPRISE_RANK"], os.getpid(), os.getpgid(0), flush=True)
signal.signal(signal.SIGTERM, lambda *_: (print("got SIGTERM", flush=True), sys.exit(143)))
if sys.argv[1] == "finish":
    open("out.txt", "w").write("rank " + os.environ["REPRISE_RANK"] + "\\n")
    sys.exit(3)
if sys.argv[1] == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
time.sleep(600)
"""


def wait_for(condition: Any, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_launcher_starts_watches_and_stops_process_groups_through_exec(tmp_path: Path) -> None:
    api = RecordingCluster()
    prov = provider(tmp_path, api)
    nodes = prov.provision()
    run = LocalExec()
    launcher = KubernetesLauncher(prov.inventory, nodes, api=api, exec_fn=run)
    node = nodes[0]
    argv = [sys.executable, "-c", WORKER]
    waiting = launcher.start(node, "waiter", [*argv, "wait"], {"REPRISE_RANK": "0"}, "logs/w.log")
    start = run.calls[-1]
    assert (start["pod"], start["namespace"], start["container"]) == (node.name, "reprise", "node")
    command = start["command"]
    assert command[:2] == ["sh", "-c"] and "setsid sh -c" in command[2]
    assert command[2].endswith("& echo started $!")
    assert waiting.log == f"{node.workdir}/logs/w.log"
    assert command[3:] == [waiting.log, node.workdir, "env", "REPRISE_RANK=0", *argv, "wait"]
    assert waiting.pid == waiting.pgid

    finishing = launcher.start(node, "finisher", [*argv, "finish"], {"REPRISE_RANK": "1"}, "f.log")
    stubborn = launcher.start(node, "stubborn", [*argv, "stubborn"], {"REPRISE_RANK": "2"}, "s.log")
    wait_for(lambda: launcher.poll(finishing) is not None)
    assert launcher.poll(finishing) == 3  # the command's own exit status
    workdir = Path(node.workdir)
    wait_for(lambda: "worker 2" in (workdir / "s.log").read_text())
    assert launcher.poll(waiting) is None
    # the group is the one the process reports from inside
    assert f" {waiting.pgid}\n" in (workdir / "logs/w.log").read_text()

    launcher.stop(waiting, grace_s=5)
    stop = run.calls[-1]["command"]
    assert stop[:2] == ["sh", "-c"] and 'env kill -TERM -- -"$0"' in stop[2]
    assert stop[3:] == [str(waiting.pgid), "50"]
    assert "got SIGTERM" in (workdir / "logs/w.log").read_text()
    assert launcher.poll(waiting) == 143
    t0 = time.monotonic()
    launcher.stop(stubborn, grace_s=0.5)
    assert time.monotonic() - t0 >= 0.5
    # SIGKILL took the wrapper with the group, so nobody wrote an exit status
    assert launcher.poll(stubborn) == VANISHED
    launcher.stop(waiting)  # idempotent

    launcher.fetch(node, "out.txt", tmp_path / "back" / "out.txt")
    assert (tmp_path / "back" / "out.txt").read_text() == "rank 1\n"
    assert launcher.recorded_pid(node, "logs/w.log") == waiting.pgid
    assert "got SIGTERM" in launcher.tail(node, str(workdir / "logs/w.log"))
    with pytest.raises(StepError, match=r"no file nothing\.txt"):
        launcher.fetch(node, "nothing.txt", tmp_path / "back" / "x")
    for proc in (waiting, finishing, stubborn):
        pgrep = subprocess.run(["pgrep", "-g", str(proc.pgid), "-r", "R,S,D,T"], check=False)
        assert pgrep.returncode == 1, proc
    prov.teardown()


def test_without_a_cluster_configured_the_error_says_where_to_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-such-kubeconfig"))
    monkeypatch.setenv("HOME", str(tmp_path))
    for var in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):
        monkeypatch.delenv(var, raising=False)
    prov = KubernetesProvider(inventory(tmp_path), tmp_path / "state")
    with pytest.raises(ProvisionError, match=r"no Kubernetes cluster configured.*KUBECONFIG"):
        prov.provision()
    assert not (tmp_path / "state" / "created.json").exists()
