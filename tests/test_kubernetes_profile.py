"""The Kubernetes profile up to the cluster's door.

It renders, `--profile kubernetes all -n` resolves without a cluster, and the resources Snakemake
gives each job become the pod spec the executor plugin would submit (its real `run_job`, with the
Kubernetes API replaced by a recorder).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import kubernetes.client
import pytest
import yte
from infra.workflow import REPO, copy_workflow, fields, job_blocks, run_snakemake
from snakemake_executor_plugin_kubernetes import Executor, parse_persistent_volumes

PROFILE = REPO / "kubernetes" / "config.yaml"
K8S_ENV = (
    "REPRISE_K8S_IMAGE",
    "REPRISE_K8S_NAMESPACE",
    "REPRISE_K8S_SERVICE_ACCOUNT",
    "REPRISE_K8S_STORAGE_PREFIX",
    "REPRISE_K8S_PVC",
    "REPRISE_K8S_JOBS",
    "REPRISE_GCS_PROJECT",
)


def render(**env: str) -> dict[str, Any]:
    """The profile as Snakemake reads it (YTE-templated) under the given REPRISE_* variables."""
    saved = {k: os.environ.pop(k) for k in K8S_ENV if k in os.environ}
    os.environ.update(env)
    try:
        with PROFILE.open() as fh:
            rendered: dict[str, Any] = yte.process_yaml(fh, require_use_yte=True)
        return rendered
    finally:
        for key in env:
            os.environ.pop(key, None)
        os.environ.update(saved)


def test_default_profile_uses_a_shared_volume() -> None:
    profile = render()
    assert profile["executor"] == "kubernetes"
    assert profile["container-image"] == "reprise:0.1.0"
    assert profile["kubernetes-namespace"] == "default"
    assert profile["default-storage-provider"] == "fs"
    assert profile["default-storage-prefix"] == "/mnt/reprise"
    assert profile["kubernetes-persistent-volumes"] == ["reprise-data:/mnt/reprise"]
    assert "kubernetes-service-account-name" not in profile
    assert profile["retries"] >= 1
    assert profile["default-resources"]["gpu_manufacturer"] == "nvidia"
    # experiments live in config/, not in a profile
    assert "config" not in profile and "configfile" not in profile


def test_site_values_come_from_the_environment() -> None:
    profile = render(
        REPRISE_K8S_IMAGE="registry.example.org/reprise:0.1.0",
        REPRISE_K8S_NAMESPACE="reprise",
        REPRISE_K8S_SERVICE_ACCOUNT="reprise-runner",
        REPRISE_K8S_STORAGE_PREFIX="gcs://reprise-bucket/run1",
        REPRISE_GCS_PROJECT="my-project",
        REPRISE_K8S_JOBS="7",
    )
    assert profile["container-image"] == "registry.example.org/reprise:0.1.0"
    assert profile["kubernetes-namespace"] == "reprise"
    assert profile["kubernetes-service-account-name"] == "reprise-runner"
    assert profile["default-storage-provider"] == "gcs"
    assert profile["default-storage-prefix"] == "gcs://reprise-bucket/run1"
    assert profile["storage-gcs-project"] == "my-project"
    assert profile["jobs"] == 7
    assert "kubernetes-persistent-volumes" not in profile


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`snakemake --profile kubernetes all -n` in a copy, with no kubeconfig anywhere."""
    base = tmp_path_factory.mktemp("k8s")
    root = copy_workflow(base / "wf")
    env = {"HOME": str(base / "home"), "KUBECONFIG": ""}
    for key in K8S_ENV:
        env[key] = ""
    result = run_snakemake(root, "--profile", "kubernetes", "all", "-n", env=env, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    yield output


def test_dry_run_of_all_resolves_without_a_cluster(dry_run: str) -> None:
    assert "This was a dry-run" in dry_run
    simulate = job_blocks(dry_run, "simulate")
    assert simulate
    for job in simulate:
        assert job["output"].startswith("/mnt/reprise/results/runs/sim/")
        assert "(send to storage)" in job["output"]
    # the workflow's own files are read where they are, not from the storage
    tables = job_blocks(dry_run, "figure_table")
    assert tables and all("config/paper/" in t["input"] for t in tables)
    assert not any("/mnt/reprise/config/" in t["input"] for t in tables)


class RecordingBatchApi:
    def __init__(self) -> None:
        self.submitted: list[tuple[str, Any]] = []

    def create_namespaced_job(self, namespace: str, body: Any) -> Any:
        self.submitted.append((namespace, body))
        return SimpleNamespace(metadata=body.metadata)


def pod_spec_for(resources: dict[str, Any], profile: dict[str, Any]) -> dict[str, Any]:
    """What the plugin's run_job submits for a job with these resources under this profile."""
    executor = Executor.__new__(Executor)
    api = RecordingBatchApi()
    executor.batchapi = api
    executor.lock = threading.Lock()
    executor.logger = logging.getLogger("k8s-test")
    executor.workflow = SimpleNamespace(
        deployment_settings=SimpleNamespace(deployment_method=frozenset())
    )
    executor.k8s_cpu_scalar = 0.95  # the plugin's default; the profile keeps it
    executor.k8s_service_account_name = profile.get("kubernetes-service-account-name")
    executor.namespace = profile["kubernetes-namespace"]
    executor.container_image = profile["container-image"]
    executor.privileged = False
    executor.persistent_volumes = parse_persistent_volumes(
        profile.get("kubernetes-persistent-volumes", [])
    )
    executor.secret_envvars = {}
    executor.run_namespace = "test-run"
    executor.format_job_exec = lambda job: "python -m snakemake --target-jobs ..."  # type: ignore[method-assign]
    submitted: list[Any] = []
    executor.report_job_submission = submitted.append  # type: ignore[method-assign]
    job = SimpleNamespace(resources=resources, jobid=1, attempt=1, is_containerized=False)
    executor.run_job(job)
    assert len(api.submitted) == 1 and len(submitted) == 1
    namespace, body = api.submitted[0]
    assert namespace == profile["kubernetes-namespace"]
    spec: dict[str, Any] = kubernetes.client.ApiClient().sanitize_for_serialization(body)
    return spec


def numeric(resources: dict[str, str]) -> dict[str, Any]:
    return {k: int(v) if v.isdigit() else v for k, v in resources.items()}


def test_simulate_resources_become_container_requests(dry_run: str) -> None:
    profile = render()
    resources = numeric(fields(job_blocks(dry_run, "simulate")[0]["resources"]))
    assert resources["mem_mb"] == 2000 and resources["disk_mb"] == 1000
    spec = pod_spec_for(resources, profile)
    pod = spec["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "reprise:0.1.0"
    assert container["resources"]["requests"] == {
        "cpu": "950m",
        "memory": "2000M",
        "ephemeral-storage": "1000M",
    }
    assert container["resources"]["limits"] == {
        "cpu": "1000m",
        "memory": "2000M",
        "ephemeral-storage": "1000M",
    }
    assert {"mountPath": "/mnt/reprise", "name": "reprise-data"} in container["volumeMounts"]
    claims = {v["name"]: v.get("persistentVolumeClaim") for v in pod["volumes"]}
    assert claims["reprise-data"] == {"claimName": "reprise-data"}
    assert pod["restartPolicy"] == "Never" and "tolerations" not in pod
    assert spec["spec"]["backoffLimit"] == 0  # retries are Snakemake's (--retries), not the Job's


def test_a_gpu_rule_gets_nvidia_gpus_and_the_toleration(dry_run: str) -> None:
    """A rule asking for `gpu` (the testbed stage will) under the profile's default manufacturer."""
    profile = render()
    resources = numeric(fields(job_blocks(dry_run, "simulate")[0]["resources"]))
    resources.update(gpu=4, machine_type="a2-highgpu-4g")
    pod = pod_spec_for(resources, profile)["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["resources"]["requests"]["nvidia.com/gpu"] == "4"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "4"
    assert pod["tolerations"] == [
        {"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Equal", "value": "present"}
    ]
    assert pod["nodeSelector"] == {"node.kubernetes.io/instance-type": "a2-highgpu-4g"}


def test_profile_and_symlink_are_in_place() -> None:
    link = REPO / "kubernetes"
    assert link.is_symlink() and os.readlink(link) == "workflow/profiles/kubernetes"
    assert (REPO / "workflow/profiles/kubernetes/Dockerfile").is_file()
    assert Path(REPO / "slurm").is_symlink()
