"""Pollux on Kubernetes, to the API boundary: the paper's objects (CRD on apiextensions.k8s.io/v1,
scheduler, RBAC, 25 AdaptDLJobs) validated offline and created through a recording client; a
cluster that does not serve the CRD's version is a clear error."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("kubernetes_validate", reason="needs the testbed extra")

import kubernetes.client as k8s
import yaml

from reprise.data.profiles import ThroughputProfiles
from reprise.data.traces import load_trace
from reprise.errors import ProvisionError
from reprise.testbed.systems.adaptdl.kubernetes import (
    PolluxApis,
    PolluxKubeOptions,
    as_dicts,
    build_objects,
    install,
    manifests_yaml,
    submit_job,
    validate,
)
from reprise.testbed.systems.adaptdl.trace import write_figure6a_trace

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def paper_objects(a100_profiles: ThroughputProfiles, tmp_path_factory: Any) -> list[Any]:
    path = tmp_path_factory.mktemp("trace") / "figure6a.csv"
    write_figure6a_trace(a100_profiles, path)
    return build_objects(load_trace(path), PolluxKubeOptions())


def test_the_papers_manifests_validate_offline(paper_objects: list[Any]) -> None:
    docs = as_dicts(paper_objects)
    validate(docs)
    kinds = [d["kind"] for d in docs]
    assert kinds[:8] == [
        "Namespace",
        "CustomResourceDefinition",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "Deployment",
        "Service",
    ]
    assert kinds.count("AdaptDLJob") == 25
    crd = docs[1]
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    spec_schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    # v1 prunes undeclared fields: what upstream's submitter sets must be declared
    assert {"application", "targetNumReplicas", "targetBatchSize", "template"} <= set(
        spec_schema["properties"]
    )
    first = docs[8]
    assert first["metadata"]["name"] == "job-0"
    container = first["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert "--target-samples=48473376" in container["args"]  # 1514793 iterations x batch 32
    loaded = list(yaml.safe_load_all(manifests_yaml(paper_objects)))
    assert loaded == docs


def test_validation_names_the_broken_object_and_field(paper_objects: list[Any]) -> None:
    docs = as_dicts(paper_objects)
    bad_job = copy.deepcopy(docs)
    bad_job[9]["spec"]["targetNumReplicas"] = 0
    with pytest.raises(ProvisionError, match=r"AdaptDLJob/job-1: spec\.targetNumReplicas"):
        validate(bad_job)
    bad_pod = copy.deepcopy(docs)
    bad_pod[10]["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = 3
    with pytest.raises(ProvisionError, match=r"AdaptDLJob/job-2 spec\.template: .*3"):
        validate(bad_pod)
    bad_deployment = copy.deepcopy(docs)
    bad_deployment[6]["spec"]["replicas"] = "one"
    with pytest.raises(ProvisionError, match=r"Deployment/reprise-adaptdl-sched: spec\.replicas"):
        validate(bad_deployment)
    with pytest.raises(ProvisionError, match="no AdaptDLJob CRD"):
        validate(docs[8:])


class Recorder:
    """Every API the installer uses, recording each call; discovery answers as configured."""

    def __init__(self, groups: dict[str, list[str]]) -> None:
        self.groups = groups
        self.calls: list[tuple[Any, ...]] = []

    def get_api_versions(self) -> Any:
        return k8s.V1APIGroupList(
            groups=[
                k8s.V1APIGroup(
                    name=name,
                    versions=[
                        k8s.V1GroupVersionForDiscovery(group_version=f"{name}/{v}", version=v)
                        for v in versions
                    ],
                )
                for name, versions in self.groups.items()
            ]
        )

    def __getattr__(self, name: str) -> Any:
        if not name.startswith("create_"):
            raise AttributeError(name)

        def record(*args: Any) -> None:
            self.calls.append((name, *args))

        return record


def _apis(rec: Recorder) -> PolluxApis:
    return PolluxApis(rec, rec, rec, rec, rec, rec)


def test_install_and_submit_through_a_recording_client(paper_objects: list[Any]) -> None:
    rec = Recorder({"apiextensions.k8s.io": ["v1"], "adaptdl.petuum.com": ["v1"]})
    done = install(paper_objects, _apis(rec), "reprise-pollux")
    assert done == [
        "Namespace/reprise-pollux",
        "CustomResourceDefinition/adaptdljobs.adaptdl.petuum.com",
        "ServiceAccount/adaptdl",
        "ClusterRole/reprise-adaptdl",
        "ClusterRoleBinding/reprise-adaptdl",
        "ConfigMap/adaptdl-config",
        "Deployment/reprise-adaptdl-sched",
        "Service/reprise-supervisor",
    ]
    assert [c[0] for c in rec.calls] == [
        "create_namespace",
        "create_custom_resource_definition",
        "create_namespaced_service_account",
        "create_cluster_role",
        "create_cluster_role_binding",
        "create_namespaced_config_map",
        "create_namespaced_deployment",
        "create_namespaced_service",
    ]
    job = as_dicts(paper_objects)[8]
    assert submit_job(job, _apis(rec), "reprise-pollux") == "AdaptDLJob/job-0"
    assert rec.calls[-1] == (
        "create_namespaced_custom_object",
        "adaptdl.petuum.com",
        "v1",
        "reprise-pollux",
        "adaptdljobs",
        job,
    )


def test_a_crd_version_the_cluster_does_not_serve_is_a_clear_error(
    paper_objects: list[Any],
) -> None:
    old = Recorder({"apiextensions.k8s.io": ["v1beta1"]})
    with pytest.raises(
        ProvisionError,
        match=r"needs apiextensions\.k8s\.io/v1, but the cluster serves "
        r"apiextensions\.k8s\.io/v1beta1",
    ):
        install(paper_objects, _apis(old), "reprise-pollux")
    assert old.calls == []  # nothing half-installed
    # an AdaptDLJob CRD left by the artifact's helm chart at another version
    other = Recorder({"apiextensions.k8s.io": ["v1"], "adaptdl.petuum.com": ["v1beta1"]})
    with pytest.raises(ProvisionError, match=r"AdaptDLJob job-0 needs adaptdl\.petuum\.com/v1"):
        submit_job(as_dicts(paper_objects)[8], _apis(other), "reprise-pollux")
    none = Recorder({"apiextensions.k8s.io": ["v1"]})
    with pytest.raises(ProvisionError, match=r"serves no version of adaptdl\.petuum\.com"):
        submit_job(as_dicts(paper_objects)[8], _apis(none), "reprise-pollux")


def test_without_a_cluster_the_real_client_says_how_to_point_at_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ProvisionError, match="point KUBECONFIG at the cluster"):
        PolluxApis.from_kubeconfig()
