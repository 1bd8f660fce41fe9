"""The `kubernetes` deployment: a Job per role, a Service for the aggregator, data_path as a volume.

Built with the `kubernetes` client's models, checked offline against the API schemas
(kubernetes-validate) and submitted through any object with the client's create_* methods, so a
recording client tests the calls here and the real one submits to an existing cluster.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import kubernetes.client as k8s  # type: ignore[import-untyped]

from reprise.errors import ProvisionError
from reprise.testbed.systems.fedscale.job import FedScaleSettings, job_file

API_VERSION = "1.33"
DATA_MOUNT = "/data"
LOG_MOUNT = "/logs"
JOB_MOUNT = "/job"


@dataclass(frozen=True)
class KubeOptions:
    """testbed.fedscale.kubernetes: where the images and data live on the user's cluster."""

    namespace: str = "reprise-fedscale"
    registry: str = ""
    data_claim: str = ""
    host_data_path: str = "/srv/fedscale/data"
    use_cuda: bool = False


def _volumes(opts: KubeOptions, name: str) -> list[Any]:
    data = (
        k8s.V1Volume(
            name="data",
            persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(
                claim_name=opts.data_claim, read_only=True
            ),
        )
        if opts.data_claim
        else k8s.V1Volume(
            name="data",
            host_path=k8s.V1HostPathVolumeSource(path=opts.host_data_path, type="Directory"),
        )
    )
    return [
        data,
        k8s.V1Volume(name="logs", empty_dir=k8s.V1EmptyDirVolumeSource()),
        k8s.V1Volume(name="job", config_map=k8s.V1ConfigMapVolumeSource(name=f"{name}-job")),
    ]


def _mounts() -> list[Any]:
    return [
        k8s.V1VolumeMount(name="data", mount_path=DATA_MOUNT, read_only=True),
        k8s.V1VolumeMount(name="logs", mount_path=LOG_MOUNT),
        k8s.V1VolumeMount(name="job", mount_path=JOB_MOUNT, read_only=True),
    ]


def _job(name: str, role: str, image: str, args: list[str], opts: KubeOptions, gpu: bool) -> Any:
    limits = {"cpu": "1", "memory": "4Gi"}
    if gpu:
        limits["nvidia.com/gpu"] = "1"
    labels = {
        "app.kubernetes.io/name": "fedscale",
        "reprise.fedscale/role": role,
        "reprise.fedscale/run": name,
    }
    container = k8s.V1Container(
        name=role,
        image=image,
        args=args,
        ports=[k8s.V1ContainerPort(container_port=29650)] if role == "aggregator" else None,
        resources=k8s.V1ResourceRequirements(requests={"cpu": "1", "memory": "2Gi"}, limits=limits),
        volume_mounts=_mounts(),
    )
    return k8s.V1Job(
        api_version="batch/v1",
        kind="Job",
        metadata=k8s.V1ObjectMeta(name=f"{name}-{role}", namespace=opts.namespace, labels=labels),
        spec=k8s.V1JobSpec(
            # FedScale cannot take a restarted executor back into a run: no retries
            backoff_limit=0,
            ttl_seconds_after_finished=3600,
            template=k8s.V1PodTemplateSpec(
                metadata=k8s.V1ObjectMeta(labels=labels),
                spec=k8s.V1PodSpec(
                    restart_policy="Never",
                    containers=[container],
                    volumes=_volumes(opts, name),
                    hostname=role if role == "aggregator" else None,
                ),
            ),
        ),
    )


def build_objects(settings: FedScaleSettings, opts: KubeOptions) -> list[Any]:
    """ConfigMap (the job file), the aggregator's Service and Job, one Job per executor."""
    name = settings.run_name.replace("_", "-").lower()
    service = f"{name}-aggregator"
    job = job_file(
        settings,
        data_dir=DATA_MOUNT,
        log_path=LOG_MOUNT,
        ps_ip=f"{service}.{opts.namespace}.svc",
        ps_port=settings.port,
        executor_host="executors",
    )
    job["use_cuda"] = str(opts.use_cuda)
    objects: list[Any] = [
        k8s.V1ConfigMap(
            api_version="v1",
            kind="ConfigMap",
            metadata=k8s.V1ObjectMeta(name=f"{name}-job", namespace=opts.namespace),
            data={"job.json": json.dumps(job, indent=2)},
        ),
        k8s.V1Service(
            api_version="v1",
            kind="Service",
            metadata=k8s.V1ObjectMeta(name=service, namespace=opts.namespace),
            spec=k8s.V1ServiceSpec(
                selector={"reprise.fedscale/role": "aggregator", "reprise.fedscale/run": name},
                ports=[
                    k8s.V1ServicePort(port=settings.port, target_port=settings.port, name="grpc")
                ],
            ),
        ),
        _job(
            name,
            "aggregator",
            f"{opts.registry}reprise-fedscale-aggregator:latest",
            [],
            opts,
            False,
        ),
    ]
    objects += [
        _job(
            name,
            f"executor{rank}",
            f"{opts.registry}reprise-fedscale-executor:latest",
            [str(rank)],
            opts,
            opts.use_cuda,
        )
        for rank in range(1, settings.executors + 1)
    ]
    return objects


def as_dicts(objects: list[Any]) -> list[dict[str, Any]]:
    api = k8s.ApiClient()
    return [api.sanitize_for_serialization(o) for o in objects]


def validate(docs: list[Mapping[str, Any]]) -> None:
    """Offline schema check; an invalid object is a ProvisionError naming it and the field."""
    import kubernetes_validate  # type: ignore[import-untyped]

    for doc in docs:
        try:
            kubernetes_validate.validate(dict(doc), API_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path)
            raise ProvisionError(
                f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}: {where}: {exc.message}"
            ) from None


class Creator(Protocol):
    def create_namespaced_config_map(self, namespace: str, body: Any) -> Any: ...
    def create_namespaced_service(self, namespace: str, body: Any) -> Any: ...


def submit(objects: list[Any], core: Any, batch: Any, namespace: str) -> list[str]:
    """Create every object through the given CoreV1Api / BatchV1Api (or recording stand-ins)."""
    done = []
    for obj in objects:
        if obj.kind == "ConfigMap":
            core.create_namespaced_config_map(namespace, obj)
        elif obj.kind == "Service":
            core.create_namespaced_service(namespace, obj)
        elif obj.kind == "Job":
            batch.create_namespaced_job(namespace, obj)
        else:
            raise ProvisionError(f"no create call for kind {obj.kind}")
        done.append(f"{obj.kind}/{obj.metadata.name}")
    return done
