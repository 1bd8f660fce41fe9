"""Kubernetes provider: nodes are pods of one StatefulSet per node group behind a headless Service.

No API server can run on our machines (no kube-apiserver, k3s or kind is installable there), so
this code is tested up to the API boundary: its objects are validated offline against the
Kubernetes schema, and a recording client checks every call and every exec command line.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import posixpath
import re
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import kubernetes.client as k8s  # type: ignore[import-untyped]
import yaml
from kubernetes.client.exceptions import ApiException  # type: ignore[import-untyped]

from reprise.atomic import write_text_atomic
from reprise.errors import ProvisionError, TestbedError
from reprise.testbed.inventory import Inventory, KubernetesSettings, SizedGroup
from reprise.testbed.nodes import Launched, Node

CONTAINER = "node"
POD_LABEL = "kubernetes.pod"
NAMESPACE_LABEL = "kubernetes.namespace"
# Waiting reasons a pod does not recover from without a change by the user.
FATAL_WAITING = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "CrashLoopBackOff",
        "CreateContainerConfigError",
        "CreateContainerError",
    }
)
# tini (PID 1 of the node image) reaps whatever our exec'd processes leave and passes SIGTERM on,
# so a deleted pod goes at once instead of after the whole grace period.
KEEPER = ["/usr/bin/tini", "--", "sleep", "infinity"]
VANISHED = -1
"""poll()'s status for a process group that is gone without writing an exit status."""


def dns_label(text: str, limit: int) -> str:
    """`text` as an RFC 1123 label of at most `limit` characters (lower case, digits, '-')."""
    label = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    if len(label) > limit:
        label = label[:limit].rstrip("-")
    return label or "x"


def quantity(memory: str) -> str:
    """A Docker-style size of the inventory (512m, 2g, 2Gi) as a Kubernetes quantity (512Mi)."""
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)([kmgKMG]?)(i?)", memory)
    if match is None:
        raise ProvisionError(f"memory {memory!r} is not a size such as 512m, 2g or 2Gi")
    number, unit, _ = match.groups()
    # Docker reads k/m/g (either case) as powers of 1024; in Kubernetes 'm' would mean milli.
    return f"{number}{unit.upper()}i" if unit else number


def _resources(group: SizedGroup) -> Any:
    amounts: dict[str, str] = {}
    if group.cpus is not None:
        amounts["cpu"] = f"{group.cpus:g}"
    if group.memory is not None:
        amounts["memory"] = quantity(group.memory)
    limits = dict(amounts)
    if group.gpus:
        limits["nvidia.com/gpu"] = str(group.gpus)  # GPUs are given as limits only
    return k8s.V1ResourceRequirements(requests=amounts or None, limits=limits or None)


class ClusterApi:
    """The calls this module makes, on a real cluster: CoreV1Api and AppsV1Api from kubeconfig
    (or the pod's service account when it runs inside the cluster)."""

    def __init__(self) -> None:
        import kubernetes.config as config  # type: ignore[import-untyped]

        try:
            config.load_kube_config()
        except (config.ConfigException, OSError, TypeError):
            try:
                config.load_incluster_config()
            except config.ConfigException:
                raise ProvisionError(
                    "no Kubernetes cluster configured: no kubeconfig ($KUBECONFIG or "
                    "~/.kube/config) and not running in a pod; point KUBECONFIG at the cluster"
                ) from None
        self.core = k8s.CoreV1Api()
        self.apps = k8s.AppsV1Api()

    def __getattr__(self, name: str) -> Any:
        owner = self.apps if "stateful_set" in name else self.core
        return getattr(owner, name)


class KubernetesProvider:
    """Creates the Service and StatefulSets of a run, waits for their pods, deletes them again.

    What it created is listed in `state_dir/created.json` as it goes, so teardown() deletes
    exactly that, also from another process after a crash. The run's label is derived from
    `state_dir`, so every process working on the same run agrees on it.
    """

    def __init__(
        self,
        inventory: Inventory,
        state_dir: Path,
        api: Any = None,
        ready_timeout_s: float = 600.0,
        poll_s: float = 2.0,
    ) -> None:
        if inventory.kubernetes is None:
            raise ProvisionError(
                f"{inventory.path}: provider kubernetes needs a `kubernetes:` block"
            )
        self.inventory = inventory
        self.settings: KubernetesSettings = inventory.kubernetes
        self.state_dir = Path(state_dir)
        self._api = api
        self.ready_timeout_s = ready_timeout_s
        self.poll_s = poll_s
        digest = hashlib.sha256(str(self.state_dir.resolve()).encode()).hexdigest()[:8]
        self.run = f"r{digest}"
        self.cluster = dns_label(inventory.name, 63)
        self.service = f"{dns_label('reprise-' + inventory.name, 30)}-{self.run}"
        self.labels = {"reprise.cluster": self.cluster, "reprise.run": self.run}

    @property
    def api(self) -> Any:
        if self._api is None:
            self._api = ClusterApi()
        return self._api

    @property
    def namespace(self) -> str:
        return self.settings.namespace

    @property
    def created_file(self) -> Path:
        return self.state_dir / "created.json"

    def stateful_set_name(self, group: SizedGroup) -> str:
        # pods add "-<ordinal>" and their revision label "-<10 chars>": 52 keeps both legal
        return f"{self.service}-{dns_label(group.group, 52 - len(self.service) - 1)}"

    def selector(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.labels.items())

    # -- objects ----------------------------------------------------------------------------
    def objects(self) -> list[Any]:
        """The Service first, then one StatefulSet per node group (client model objects)."""
        service = k8s.V1Service(
            api_version="v1",
            kind="Service",
            metadata=k8s.V1ObjectMeta(name=self.service, labels=dict(self.labels)),
            spec=k8s.V1ServiceSpec(
                cluster_ip="None",  # headless: one DNS record per pod, no virtual IP
                selector=dict(self.labels),
                # nodes find each other (torch rendezvous) before every pod is Ready
                publish_not_ready_addresses=True,
            ),
        )
        return [service, *(self._stateful_set(g) for g in self.settings.groups)]

    def _stateful_set(self, group: SizedGroup) -> Any:
        labels = {**self.labels, "reprise.group": dns_label(group.group, 63)}
        container = k8s.V1Container(
            name=CONTAINER,
            image=self.settings.image,
            image_pull_policy=self.settings.image_pull_policy,
            command=list(KEEPER),
            resources=_resources(group),
            volume_mounts=[k8s.V1VolumeMount(name="workdir", mount_path=self.inventory.workdir)],
        )
        pod = k8s.V1PodTemplateSpec(
            metadata=k8s.V1ObjectMeta(labels=labels),
            spec=k8s.V1PodSpec(
                containers=[container],
                volumes=[k8s.V1Volume(name="workdir", empty_dir=k8s.V1EmptyDirVolumeSource())],
                termination_grace_period_seconds=10,
            ),
        )
        return k8s.V1StatefulSet(
            api_version="apps/v1",
            kind="StatefulSet",
            metadata=k8s.V1ObjectMeta(name=self.stateful_set_name(group), labels=labels),
            spec=k8s.V1StatefulSetSpec(
                service_name=self.service,
                replicas=group.count,
                pod_management_policy="Parallel",  # all nodes at once, not one after another
                selector=k8s.V1LabelSelector(match_labels=labels),
                template=pod,
            ),
        )

    def manifests(self) -> list[dict[str, Any]]:
        """The objects as plain dicts; also written to `state_dir/manifests.yaml`."""
        docs: list[dict[str, Any]] = [
            k8s.ApiClient().sanitize_for_serialization(o) for o in self.objects()
        ]
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / "manifests.yaml").write_text(
            yaml.safe_dump_all(docs, sort_keys=False), encoding="utf-8"
        )
        return docs

    # -- provisioning -----------------------------------------------------------------------
    def _created(self) -> list[dict[str, str]]:
        if not self.created_file.is_file():
            return []
        entries: list[dict[str, str]] = json.loads(self.created_file.read_text())
        return entries

    def _record(self, entries: list[dict[str, str]]) -> None:
        write_text_atomic(self.created_file, json.dumps(entries, indent=2) + "\n")

    def provision(self) -> list[Node]:
        if self._created():
            self.teardown()  # an earlier run of this state_dir was not torn down: start clean
        self.manifests()
        created: list[dict[str, str]] = []
        for body in self.objects():
            name = body.metadata.name
            try:
                if body.kind == "Service":
                    self.api.create_namespaced_service(self.namespace, body)
                else:
                    self.api.create_namespaced_stateful_set(self.namespace, body)
            except ApiException as exc:
                raise ProvisionError(
                    f"{self.inventory.path}: creating {body.kind} {name} in namespace "
                    f"{self.namespace} failed ({exc.status} {exc.reason}): {_message(exc)}"
                ) from None
            created.append({"kind": body.kind, "name": name, "namespace": self.namespace})
            self._record(created)
        pods = self._wait_ready()
        return [self._node(pods[name], group) for name, group in self.expected_pods().items()]

    def expected_pods(self) -> dict[str, SizedGroup]:
        return {
            f"{self.stateful_set_name(g)}-{i}": g
            for g in self.settings.groups
            for i in range(g.count)
        }

    def _wait_ready(self) -> dict[str, Any]:
        expected = self.expected_pods()
        deadline = time.monotonic() + self.ready_timeout_s
        while True:
            listed = self.api.list_namespaced_pod(self.namespace, label_selector=self.selector())
            pods = {p.metadata.name: p for p in listed.items if p.metadata.name in expected}
            for name, pod in pods.items():
                problem = _fatal(pod)
                if problem:
                    raise ProvisionError(f"pod {name} (namespace {self.namespace}): {problem}")
            ready = [n for n in expected if n in pods and _ready(pods[n])]
            if len(ready) == len(expected):
                return pods
            if time.monotonic() > deadline:
                waiting = [f"{n} ({_state(pods.get(n))})" for n in expected if n not in ready]
                raise ProvisionError(
                    f"pods not Ready after {self.ready_timeout_s:.0f} s: {', '.join(waiting)}; "
                    f"check `kubectl -n {self.namespace} describe pod -l {self.selector()}`"
                )
            time.sleep(self.poll_s)

    def _node(self, pod: Any, group: SizedGroup) -> Node:
        name = pod.metadata.name
        address = f"{name}.{self.service}.{self.namespace}.svc"
        return Node(
            name=name,
            group=group.group,
            address=address,
            peer_address=address,
            port=0,
            gpus=group.gpus,
            slots=group.slots,
            python=self.inventory.python,
            workdir=self.inventory.workdir,
            labels={POD_LABEL: name, NAMESPACE_LABEL: self.namespace, **self.labels},
        )

    # -- teardown ---------------------------------------------------------------------------
    def teardown(self) -> None:
        """Delete what created.json lists, newest first, if it still carries this run's label;
        then wait until the run's pods are gone."""
        entries = self._created()
        options = k8s.V1DeleteOptions(propagation_policy="Foreground")
        problems: list[str] = []
        for entry in reversed(list(entries)):
            kind, name, namespace = entry["kind"], entry["name"], entry["namespace"]
            reader, deleter = (
                ("read_namespaced_service", "delete_namespaced_service")
                if kind == "Service"
                else ("read_namespaced_stateful_set", "delete_namespaced_stateful_set")
            )
            try:
                current = getattr(self.api, reader)(name, namespace)
                if (current.metadata.labels or {}).get("reprise.run") != self.run:
                    problems.append(f"{kind} {name} is not labelled reprise.run={self.run}; kept")
                else:
                    getattr(self.api, deleter)(name, namespace, body=options)
            except ApiException as exc:
                if exc.status != 404:  # already gone is what teardown wants
                    problems.append(f"deleting {kind} {name}: {exc.status} {exc.reason}")
                    continue
            entries.remove(entry)
            self._record(entries)
        if problems:
            raise ProvisionError(
                f"teardown of run {self.run} in namespace {self.namespace}: " + "; ".join(problems)
            )
        self._wait_gone()
        self.created_file.unlink(missing_ok=True)

    def _wait_gone(self) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        while True:
            listed = self.api.list_namespaced_pod(self.namespace, label_selector=self.selector())
            if not listed.items:
                return
            if time.monotonic() > deadline:
                names = ", ".join(p.metadata.name for p in listed.items)
                raise ProvisionError(
                    f"pods of run {self.run} still exist after teardown: {names}; "
                    f"`kubectl -n {self.namespace} delete pod -l {self.selector()}` removes them"
                )
            time.sleep(self.poll_s)


def _message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body).get("message", exc.body))
    except (TypeError, ValueError):
        return str(exc.body or exc.reason)


def _ready(pod: Any) -> bool:
    conditions = pod.status.conditions or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def _fatal(pod: Any) -> str | None:
    """Why a pod will never become Ready on its own, or None."""
    if pod.status.phase in ("Failed", "Succeeded"):
        return f"phase {pod.status.phase}; the node's keeper process ended"
    for status in pod.status.container_statuses or []:
        waiting = status.state.waiting if status.state else None
        if waiting is not None and waiting.reason in FATAL_WAITING:
            return (
                f"{waiting.reason}: {waiting.message or ''}; check the image name and that the "
                "cluster can pull it (kubernetes.image, image_pull_policy in the inventory)"
            )
    return None


def _state(pod: Any) -> str:
    if pod is None:
        return "not created"
    reasons = [c.reason for c in pod.status.conditions or [] if c.status != "True" and c.reason]
    return " ".join([pod.status.phase or "Unknown", *reasons])


# -- processes in pods -----------------------------------------------------------------------

# Runs in the pod: the wrapper leads its own session (setsid), so its PID is the group every
# process it starts belongs to; it writes the exit status beside the log when the command ends.
# Its `trap : TERM` keeps it alive through stop()'s SIGTERM to the group, to record the status
# (a handler, unlike an ignored signal, is not inherited by the command it runs).
_START = (
    'mkdir -p "$1" && cd "$1" && mkdir -p "$(dirname "$0")" && rm -f "$0.rc" "$0.pid" '
    "|| exit 97; shift; "
    "setsid sh -c '"
    'trap : TERM; echo $$ > "$0.pid"; "$@"; rc=$?; echo $rc > "$0.rc.tmp" && mv "$0.rc.tmp" "$0.rc"'
    '\' "$0" "$@" </dev/null >"$0" 2>&1 & echo started $!'
)
# `pgrep -g` without zombies, and /usr/bin/kill through env: dash's builtin kill rejects `--`.
_ALIVE = 'pgrep -g "$0" -r R,S,D,T,t,W,I >/dev/null'
_POLL = (
    f'if [ -f "$1.rc" ]; then echo rc $(cat "$1.rc"); elif {_ALIVE}; then echo running; '
    "else echo gone; fi"
)
_STOP = (
    f'env kill -TERM -- -"$0" 2>/dev/null; i=0; while {_ALIVE} && [ $i -lt "$1" ]; do '
    "sleep 0.1; i=$((i+1)); done; "
    f'if {_ALIVE}; then env kill -KILL -- -"$0"; sleep 0.5; fi; '
    f"if {_ALIVE}; then echo left; else echo stopped; fi"
)
_FETCH = 'if [ -f "$0" ]; then echo found; base64 "$0"; else echo missing; fi'


def _on_node(node: Node, path: str) -> str:
    """A path in the pod; relative ones are below the node's workdir."""
    return path if posixpath.isabs(path) else posixpath.join(node.workdir, path)


def _stream(*args: Any, **kwargs: Any) -> Any:
    from kubernetes.stream import stream  # type: ignore[import-untyped]

    return stream(*args, **kwargs)


class KubernetesLauncher:
    """Starts, watches and stops processes in the pods through the exec API.

    A process is started detached, in a session of its own, by `setsid sh -c` in the pod; the
    exec returns its PID, which is also its process group. stop() signals that group through
    another exec (`kill -TERM -- -PGID`, then -KILL after the grace period).
    """

    def __init__(
        self,
        inventory: Inventory,
        nodes: Sequence[Node] = (),
        api: Any = None,
        exec_fn: Callable[..., Any] | None = None,
    ) -> None:
        self.inventory = inventory
        self.nodes: dict[str, Node] = {n.name: n for n in nodes}
        self._api = api
        self.exec_fn = exec_fn or _stream

    @property
    def api(self) -> Any:
        if self._api is None:
            self._api = ClusterApi()
        return self._api

    def add_nodes(self, nodes: Sequence[Node]) -> None:
        self.nodes.update({n.name: n for n in nodes})

    def exec(self, node: Node, command: Sequence[str], doing: str) -> str:
        """One command in the node's pod; its output. API errors name the node."""
        pod = node.labels.get(POD_LABEL, node.name)
        namespace = node.labels.get(
            NAMESPACE_LABEL,
            self.inventory.kubernetes.namespace if self.inventory.kubernetes else "default",
        )
        try:
            out = self.exec_fn(
                self.api.connect_get_namespaced_pod_exec,
                pod,
                namespace,
                container=CONTAINER,
                command=list(command),
                stderr=True,
                stdin=False,
                stdout=True,
                tty=False,
            )
        except ApiException as exc:
            raise TestbedError(
                f"node {node.name!r} (pod {namespace}/{pod}): {doing} failed: "
                f"{exc.status} {exc.reason}"
            ) from None
        return str(out)

    def start(
        self,
        node: Node,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        log: str,
    ) -> Launched:
        self.nodes.setdefault(node.name, node)
        assigns = [f"{k}={v}" for k, v in env.items()]
        log = _on_node(node, log)
        command = ["sh", "-c", _START, log, node.workdir, "env", *assigns, *argv]
        out = self.exec(node, command, f"starting {name!r}")
        match = re.search(r"^started (\d+)$", out, re.MULTILINE)
        if match is None:
            raise TestbedError(
                f"node {node.name!r}: could not start {name!r} ({shlex.join(argv)}): {out.strip()}"
            )
        pgid = int(match.group(1))
        return Launched(node=node.name, name=name, pid=pgid, pgid=pgid, log=log)

    def poll(self, proc: Launched) -> int | None:
        node = self.nodes[proc.node]
        out = self.exec(
            node, ["sh", "-c", _POLL, str(proc.pgid), proc.log], f"watching {proc.name!r}"
        )
        words = out.split()
        if words[:1] == ["rc"] and len(words) > 1 and words[1].lstrip("-").isdigit():
            return int(words[1])
        if words[:1] == ["running"]:
            return None
        if words[:1] == ["gone"]:
            return VANISHED
        raise TestbedError(f"node {node.name!r}: cannot watch {proc.name!r}: {out.strip()}")

    def stop(self, proc: Launched, grace_s: float = 5.0) -> None:
        node = self.nodes[proc.node]
        ticks = str(max(1, round(grace_s * 10)))
        out = self.exec(node, ["sh", "-c", _STOP, str(proc.pgid), ticks], f"stopping {proc.name!r}")
        if out.split()[-1:] != ["stopped"]:
            raise TestbedError(
                f"node {node.name!r}: process group {proc.pgid} ({proc.name!r}) survived "
                f"SIGKILL: {out.strip()}"
            )

    def fetch(self, node: Node, remote: str, local: Path) -> None:
        out = self.exec(node, ["sh", "-c", _FETCH, _on_node(node, remote)], f"fetching {remote}")
        head, _, body = out.partition("\n")
        if head.strip() != "found":
            raise TestbedError(f"node {node.name!r}: no file {remote} to fetch")
        try:
            data = base64.b64decode(body, validate=False)
        except binascii.Error as exc:
            raise TestbedError(f"node {node.name!r}: {remote} came back garbled: {exc}") from None
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(data)

    def tail(self, node: Node, log: str, lines: int = 20) -> str:
        return self.exec(node, ["tail", "-n", str(lines), _on_node(node, log)], "reading a log")

    def recorded_pid(self, node: Node, log: str) -> int | None:
        text = self.exec(node, ["cat", f"{_on_node(node, log)}.pid"], "recovering a PID").strip()
        return int(text) if text.isdigit() else None

    def close(self) -> None:
        """Each exec is its own connection; nothing is held open."""
