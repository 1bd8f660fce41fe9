"""The `kubernetes` way to run Pollux: the AdaptDLJob CRD, AdaptDL's scheduler (with Pollux as its
allocator) and its RBAC, and one AdaptDLJob per trace job, as plain objects applied with the
`kubernetes` client (no helm).

The artifact's CRD is apiextensions.k8s.io/v1beta1, which Kubernetes removed in 1.22; ours is
apiextensions.k8s.io/v1. Version 1 prunes every field a structural schema does not declare, so the
schema names the spec fields upstream's submitter sets (application, targetNumReplicas,
targetBatchSize) besides AdaptDL's own. Built-in objects are checked offline with
kubernetes-validate; AdaptDLJobs against the CRD's own schema, and their pod templates as
PodTemplates. Objects are created through any objects with the client's create_* calls, so a
recording client tests every call and the real client submits to a cluster.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import kubernetes.client as k8s  # type: ignore[import-untyped]
import yaml

from reprise.data.traces import TraceJob
from reprise.errors import ProvisionError
from reprise.testbed.systems.adaptdl.compat import ADAPTDL_VERSION
from reprise.testbed.systems.adaptdl.monitor import GROUP, PLURAL, VERSION, names_of, object_name

API_VERSION = "1.33"  # the Kubernetes schema version objects are validated against
CRD_API = "apiextensions.k8s.io"
CRD_NAME = f"{PLURAL}.{GROUP}"
KIND = "AdaptDLJob"
SERVICE_ACCOUNT = "adaptdl"
CONFIG_MAP = "adaptdl-config"
SUPERVISOR_PORT = 8080
CHECKPOINT_MOUNT = "/checkpoint"
DATA_MOUNT = "/data"


@dataclass(frozen=True)
class PolluxKubeOptions:
    """Where the scheduler and the job images come from and what a replica asks for."""

    namespace: str = "reprise-pollux"
    release: str = "reprise"
    sched_image: str = f"petuum/adaptdl-sched:{ADAPTDL_VERSION}"
    job_registry: str = ""
    """Prefix of the job images (`<registry>reprise-adaptdl:latest`)."""
    job_image: str = "reprise-adaptdl:latest"
    gpus_per_replica: int = 1
    cpu_per_replica: str = "10"
    memory_per_replica: str = "80Gi"
    checkpoint_host_path: str = "/mnt/data1/checkpoints"
    data_host_path: str = "/mnt/data1"
    model_size: str = "full"
    max_batch_size: int = 12800
    local_bsz_max: int = 256


# -- the CRD -------------------------------------------------------------------------------------
def _int(minimum: int) -> Any:
    return k8s.V1JSONSchemaProps(type="integer", minimum=minimum)


def crd() -> Any:
    """The AdaptDLJob CustomResourceDefinition on apiextensions.k8s.io/v1."""
    spec_props = {
        "minReplicas": _int(0),
        "maxReplicas": _int(1),
        "preemptible": k8s.V1JSONSchemaProps(type="boolean"),
        "application": k8s.V1JSONSchemaProps(type="string"),
        "targetNumReplicas": _int(1),
        "targetBatchSize": _int(1),
        "template": k8s.V1JSONSchemaProps(type="object", x_kubernetes_preserve_unknown_fields=True),
    }
    schema = k8s.V1JSONSchemaProps(
        type="object",
        required=["spec"],
        properties={
            "metadata": k8s.V1JSONSchemaProps(
                type="object",
                # the name becomes a label value on the job's pods: at most 63 characters
                properties={"name": k8s.V1JSONSchemaProps(type="string", max_length=63)},
            ),
            "spec": k8s.V1JSONSchemaProps(
                type="object", required=["template"], properties=spec_props
            ),
            "status": k8s.V1JSONSchemaProps(
                type="object", x_kubernetes_preserve_unknown_fields=True
            ),
        },
    )
    columns = [
        ("Ready", "integer", ".status.readyReplicas"),
        ("Replicas", "string", ".status.replicas"),
        ("Restarts", "integer", ".status.group"),
        ("Status", "string", ".status.phase"),
        ("Age", "date", ".metadata.creationTimestamp"),
    ]
    return k8s.V1CustomResourceDefinition(
        api_version=f"{CRD_API}/v1",
        kind="CustomResourceDefinition",
        metadata=k8s.V1ObjectMeta(name=CRD_NAME),
        spec=k8s.V1CustomResourceDefinitionSpec(
            group=GROUP,
            scope="Namespaced",
            names=k8s.V1CustomResourceDefinitionNames(
                plural=PLURAL,
                singular="adaptdljob",
                kind=KIND,
                short_names=["adljob", "adljobs"],
            ),
            versions=[
                k8s.V1CustomResourceDefinitionVersion(
                    name=VERSION,
                    served=True,
                    storage=True,
                    schema=k8s.V1CustomResourceValidation(open_apiv3_schema=schema),
                    subresources=k8s.V1CustomResourceSubresources(status={}),
                    additional_printer_columns=[
                        k8s.V1CustomResourceColumnDefinition(name=n, type=t, json_path=p)
                        for n, t, p in columns
                    ],
                )
            ],
        ),
    )


# -- the scheduler and its RBAC ------------------------------------------------------------------
def _rule(groups: list[str], resources: list[str], verbs: list[str]) -> Any:
    return k8s.V1PolicyRule(api_groups=groups, resources=resources, verbs=verbs)


def scheduler_objects(opts: PolluxKubeOptions) -> list[Any]:
    """ServiceAccount, ClusterRole, ClusterRoleBinding, the scheduler's ConfigMap, Deployment
    (controller, Pollux allocator, supervisor) and the supervisor's Service."""
    labels = {"app": "adaptdl-sched", "release": opts.release}
    supervisor = f"{opts.release}-supervisor"
    role = k8s.V1ClusterRole(
        api_version="rbac.authorization.k8s.io/v1",
        kind="ClusterRole",
        metadata=k8s.V1ObjectMeta(name=f"{opts.release}-adaptdl"),
        rules=[
            _rule(["batch"], ["cronjobs", "jobs"], ["create", "get"]),
            _rule(
                [GROUP],
                [PLURAL, f"{PLURAL}/status"],
                ["get", "list", "watch", "create", "delete", "patch"],
            ),
            _rule([""], ["nodes"], ["list", "patch", "get"]),
            _rule(
                [""],
                ["pods", "podtemplates", "services", "persistentvolumeclaims"],
                ["get", "list", "watch", "delete", "create"],
            ),
            _rule(["apps"], ["deployments"], ["create", "get"]),
        ],
    )
    binding = k8s.V1ClusterRoleBinding(
        api_version="rbac.authorization.k8s.io/v1",
        kind="ClusterRoleBinding",
        metadata=k8s.V1ObjectMeta(name=f"{opts.release}-adaptdl"),
        subjects=[
            k8s.RbacV1Subject(kind="ServiceAccount", name=SERVICE_ACCOUNT, namespace=opts.namespace)
        ],
        role_ref=k8s.V1RoleRef(
            api_group="rbac.authorization.k8s.io",
            kind="ClusterRole",
            name=f"{opts.release}-adaptdl",
        ),
    )
    config = k8s.V1ConfigMap(
        api_version="v1",
        kind="ConfigMap",
        metadata=k8s.V1ObjectMeta(name=CONFIG_MAP, namespace=opts.namespace),
        data={
            "ADAPTDL_SUPERVISOR_URL": (
                f"http://{supervisor}.{opts.namespace}.svc.cluster.local:{SUPERVISOR_PORT}"
            ),
            "ADAPTDL_STORAGE_SUBPATH": opts.namespace,
            "ADAPTDL_IMAGE": opts.sched_image,
            "ADAPTDL_SCHED_VERSION": ADAPTDL_VERSION,
            "ADAPTDL_SCHED_DEPLOYMENT": f"{opts.release}-adaptdl-sched",
        },
    )
    env_from = [k8s.V1EnvFromSource(config_map_ref=k8s.V1ConfigMapEnvSource(name=CONFIG_MAP))]

    def container(name: str, module: str, port: int | None) -> Any:
        return k8s.V1Container(
            name=name,
            image=opts.sched_image,
            args=["python", "-m", module],
            env_from=env_from,
            ports=[k8s.V1ContainerPort(container_port=port, protocol="TCP")] if port else None,
            resources=k8s.V1ResourceRequirements(requests={"cpu": "1", "memory": "1Gi"}),
        )

    deployment = k8s.V1Deployment(
        api_version="apps/v1",
        kind="Deployment",
        metadata=k8s.V1ObjectMeta(
            name=f"{opts.release}-adaptdl-sched", namespace=opts.namespace, labels=labels
        ),
        spec=k8s.V1DeploymentSpec(
            replicas=1,
            selector=k8s.V1LabelSelector(match_labels=labels),
            strategy=k8s.V1DeploymentStrategy(type="Recreate"),
            template=k8s.V1PodTemplateSpec(
                metadata=k8s.V1ObjectMeta(labels=labels),
                spec=k8s.V1PodSpec(
                    service_account_name=SERVICE_ACCOUNT,
                    share_process_namespace=True,
                    containers=[
                        container("main", "adaptdl_sched", 9091),
                        # the allocator runs Pollux's policy over the jobs' goodput hints
                        container("allocator", "adaptdl_sched.allocator", None),
                        container("supervisor", "adaptdl_sched.supervisor", SUPERVISOR_PORT),
                    ],
                ),
            ),
        ),
    )
    service = k8s.V1Service(
        api_version="v1",
        kind="Service",
        metadata=k8s.V1ObjectMeta(name=supervisor, namespace=opts.namespace, labels=labels),
        spec=k8s.V1ServiceSpec(
            selector=labels,
            ports=[
                k8s.V1ServicePort(
                    name="http", port=SUPERVISOR_PORT, target_port=SUPERVISOR_PORT, protocol="TCP"
                )
            ],
        ),
    )
    account = k8s.V1ServiceAccount(
        api_version="v1",
        kind="ServiceAccount",
        metadata=k8s.V1ObjectMeta(name=SERVICE_ACCOUNT, namespace=opts.namespace),
        automount_service_account_token=True,
    )
    return [account, role, binding, config, deployment, service]


# -- the jobs ------------------------------------------------------------------------------------
def adaptdl_job(job: TraceJob, opts: PolluxKubeOptions) -> dict[str, Any]:
    """One trace job as an AdaptDLJob: our trainer image, the job's samples as its target,
    AdaptDL's checkpoint on the node's disk (upstream: /mnt/data1/<job>)."""
    name = object_name(job.job_id)
    samples = job.iterations * job.batch_size
    limits = {
        "nvidia.com/gpu": str(opts.gpus_per_replica),
        "cpu": opts.cpu_per_replica,
        "memory": opts.memory_per_replica,
    }
    args = [
        "-m",
        "reprise.testbed.systems.adaptdl.trainer",
        f"--model={job.model}",
        f"--size={opts.model_size}",
        f"--batch-size={job.batch_size}",
        f"--max-batch-size={max(opts.max_batch_size, job.batch_size)}",
        f"--local-bsz-max={opts.local_bsz_max}",
        f"--target-samples={samples}",
        f"--dataset-size={max(opts.max_batch_size, job.batch_size) * 10}",
        f"--status={CHECKPOINT_MOUNT}/status.json",
        "--backend=nccl" if opts.gpus_per_replica else "--backend=gloo",
    ]
    pod = k8s.V1PodTemplateSpec(
        spec=k8s.V1PodSpec(
            containers=[
                k8s.V1Container(
                    name="main",
                    image=f"{opts.job_registry}{opts.job_image}",
                    command=["python3"],
                    args=args,
                    env=[
                        k8s.V1EnvVar(name="PYTHONUNBUFFERED", value="true"),
                        k8s.V1EnvVar(name="ADAPTDL_CHECKPOINT_PATH", value=CHECKPOINT_MOUNT),
                        k8s.V1EnvVar(name="APPLICATION", value=job.model),
                        k8s.V1EnvVar(name="TARGET_SAMPLES", value=str(samples)),
                    ],
                    resources=k8s.V1ResourceRequirements(limits=limits, requests=dict(limits)),
                    volume_mounts=[
                        k8s.V1VolumeMount(name="checkpoint", mount_path=CHECKPOINT_MOUNT),
                        k8s.V1VolumeMount(name="data", mount_path=DATA_MOUNT, read_only=True),
                    ],
                )
            ],
            volumes=[
                k8s.V1Volume(
                    name="checkpoint",
                    host_path=k8s.V1HostPathVolumeSource(
                        path=f"{opts.checkpoint_host_path}/{name}", type="DirectoryOrCreate"
                    ),
                ),
                k8s.V1Volume(
                    name="data",
                    host_path=k8s.V1HostPathVolumeSource(
                        path=opts.data_host_path, type="Directory"
                    ),
                ),
            ],
        )
    )
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {"name": name, "namespace": opts.namespace, "labels": {"reprise/job": name}},
        "spec": {
            "application": job.model,
            "targetNumReplicas": job.num_gpu,
            "targetBatchSize": job.batch_size,
            "template": k8s.ApiClient().sanitize_for_serialization(pod),
        },
    }


def build_objects(trace: Sequence[TraceJob], opts: PolluxKubeOptions) -> list[Any]:
    """Namespace, CRD, scheduler and RBAC (client models), then one AdaptDLJob (dict) per job in
    submission order. The runner submits each job at its trace time."""
    names_of(trace)  # two jobs with one name would overwrite each other
    namespace = k8s.V1Namespace(
        api_version="v1", kind="Namespace", metadata=k8s.V1ObjectMeta(name=opts.namespace)
    )
    jobs = [adaptdl_job(j, opts) for j in sorted(trace, key=lambda j: (j.submit_time, j.idx))]
    return [namespace, crd(), *scheduler_objects(opts), *jobs]


def as_dicts(objects: Sequence[Any]) -> list[dict[str, Any]]:
    api = k8s.ApiClient()
    return [o if isinstance(o, dict) else api.sanitize_for_serialization(o) for o in objects]


def manifests_yaml(objects: Sequence[Any]) -> str:
    """Every object as one multi-document YAML (what `kubectl apply -f` takes)."""
    return yaml.safe_dump_all(as_dicts(objects), sort_keys=False)


# -- offline validation --------------------------------------------------------------------------
def _crd_schema(definition: Mapping[str, Any]) -> dict[str, Any]:
    """The CRD's openAPIV3Schema as a JSON schema (Kubernetes' x- keys dropped)."""

    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if not k.startswith("x-kubernetes")}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    version = definition["spec"]["versions"][0]
    return dict(strip(version["schema"]["openAPIV3Schema"]))


def validate(docs: Sequence[Mapping[str, Any]]) -> None:
    """Built-in kinds against the Kubernetes API schema (kubernetes-validate, strict);
    AdaptDLJobs against the CRD among `docs` and their pod templates as PodTemplates."""
    import jsonschema
    import kubernetes_validate  # type: ignore[import-untyped]

    def check(doc: Mapping[str, Any], label: str) -> None:
        try:
            kubernetes_validate.validate(dict(doc), API_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path)
            raise ProvisionError(f"{label}: {where}: {exc.message}") from None

    definitions = [d for d in docs if d.get("kind") == "CustomResourceDefinition"]
    schema = _crd_schema(definitions[0]) if definitions else None
    for doc in docs:
        label = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        if doc.get("kind") != KIND:
            check(doc, label)
            continue
        if schema is None:
            raise ProvisionError(f"{label}: no AdaptDLJob CRD among the objects to check it by")
        errors = sorted(
            jsonschema.Draft7Validator(schema).iter_errors(dict(doc)), key=lambda e: list(e.path)
        )
        if errors:
            where = ".".join(str(p) for p in errors[0].path)
            raise ProvisionError(f"{label}: {where}: {errors[0].message}")
        template = {
            "apiVersion": "v1",
            "kind": "PodTemplate",
            "metadata": {"name": doc["metadata"]["name"]},
            "template": copy.deepcopy(doc["spec"]["template"]),
        }
        check(template, f"{label} spec.template")


# -- the cluster ---------------------------------------------------------------------------------
@dataclass
class PolluxApis:
    """The client APIs the objects are created through (or recording stand-ins)."""

    apis: Any  # ApisApi: the discovery of served groups and versions
    extensions: Any  # ApiextensionsV1Api
    core: Any  # CoreV1Api
    rbac: Any  # RbacAuthorizationV1Api
    apps: Any  # AppsV1Api
    custom: Any  # CustomObjectsApi

    @classmethod
    def from_kubeconfig(cls) -> PolluxApis:
        from reprise.testbed.provision.kubernetes import ClusterApi

        cluster = ClusterApi()  # loads kubeconfig (or the pod's service account) or says why not
        return cls(
            k8s.ApisApi(),
            k8s.ApiextensionsV1Api(),
            cluster.core,
            k8s.RbacAuthorizationV1Api(),
            cluster.apps,
            k8s.CustomObjectsApi(),
        )


def served_versions(apis: Any, group: str) -> list[str]:
    """The versions of `group` the cluster serves (its API discovery); [] if it serves none."""
    for entry in apis.get_api_versions().groups or []:
        if entry.name == group:
            return [v.version for v in entry.versions or []]
    return []


def check_served(apis: Any, group: str, version: str, what: str) -> None:
    """ProvisionError naming what the cluster serves when it does not serve `group/version`."""
    versions = served_versions(apis, group)
    if version not in versions:
        offered = ", ".join(f"{group}/{v}" for v in versions) or f"no version of {group}"
        raise ProvisionError(f"{what} needs {group}/{version}, but the cluster serves {offered}")


# kind -> (PolluxApis field, create call, namespaced)
_CREATE: dict[str, tuple[str, str, bool]] = {
    "Namespace": ("core", "create_namespace", False),
    "CustomResourceDefinition": ("extensions", "create_custom_resource_definition", False),
    "ServiceAccount": ("core", "create_namespaced_service_account", True),
    "ConfigMap": ("core", "create_namespaced_config_map", True),
    "Service": ("core", "create_namespaced_service", True),
    "ClusterRole": ("rbac", "create_cluster_role", False),
    "ClusterRoleBinding": ("rbac", "create_cluster_role_binding", False),
    "Deployment": ("apps", "create_namespaced_deployment", True),
}


def install(objects: Sequence[Any], api: PolluxApis, namespace: str) -> list[str]:
    """Create the namespace, CRD, RBAC and scheduler (not the jobs); returns what was created."""
    check_served(
        api.apis,
        CRD_API,
        "v1",
        "the AdaptDLJob CustomResourceDefinition (Kubernetes 1.16 or newer; upstream's "
        "apiextensions.k8s.io/v1beta1 CRD needs 1.21 or older)",
    )
    done = []
    for obj in objects:
        if isinstance(obj, dict):
            continue
        if obj.kind not in _CREATE:
            raise ProvisionError(f"no create call for kind {obj.kind}")
        owner, method, namespaced = _CREATE[obj.kind]
        create = getattr(getattr(api, owner), method)
        if namespaced:
            create(namespace, obj)
        else:
            create(obj)
        done.append(f"{obj.kind}/{obj.metadata.name}")
    return done


def submit_job(job: Mapping[str, Any], api: PolluxApis, namespace: str) -> str:
    """Create one AdaptDLJob; a cluster whose AdaptDLJob CRD is not served at our version (an
    old v1beta1 install, say) is a ProvisionError, not a 404 from the first job."""
    check_served(api.apis, GROUP, VERSION, f"{KIND} {job['metadata']['name']}")
    api.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, dict(job))
    return f"{KIND}/{job['metadata']['name']}"
