"""Cross-checks of the workflow config beyond its JSON schema, and the paths derived from it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from reprise.data.fetch import UpstreamFile
from reprise.errors import ConfigError

ARTIFACT = "ElasticFlow-artifact/ElasticFlow"
PROFILE_DIRS = {
    "T4": f"{ARTIFACT}/scheduler/throughputs_T4",
    "A100": f"{ARTIFACT}/scheduler/throughputs_A100",
}
UPSTREAM_ROOT = "resources/upstream"


def cluster_spec_path(name: str) -> str:
    return f"{ARTIFACT}/scheduler/cluster_specs/{name}.csv"


@dataclass(frozen=True)
class Run:
    experiment: str
    trace: str
    cluster: str
    policy: str

    @property
    def directory(self) -> str:
        return f"results/runs/sim/{self.experiment}/{self.trace}/{self.cluster}/{self.policy}"


def check_config(config: Mapping[str, Any], catalog: Mapping[str, UpstreamFile]) -> None:
    """Raise ConfigError naming the offending key for references the schema cannot check."""
    traces = config["traces"]
    for name, trace in traces.items():
        upstream = trace.get("upstream")
        if upstream is not None and upstream not in catalog:
            raise ConfigError(
                f"config key traces.{name}.upstream: {upstream!r} is not in the upstream catalog "
                f"{config['data']['catalog']}"
            )
        local = trace.get("file")
        if local is not None and not Path(local).is_file():
            raise ConfigError(f"config key traces.{name}.file: no such file {local!r}")
    for exp_name, exp in config["experiments"].items():
        for i, run in enumerate(exp["runs"]):
            if run["trace"] not in traces:
                raise ConfigError(
                    f"config key experiments.{exp_name}.runs[{i}].trace: unknown trace "
                    f"{run['trace']!r}; defined traces: {', '.join(sorted(traces))}"
                )
            if cluster_spec_path(run["cluster"]) not in catalog:
                raise ConfigError(
                    f"config key experiments.{exp_name}.runs[{i}].cluster: no upstream cluster "
                    f"spec named {run['cluster']!r}"
                )
        if not Path(exp["paper"]).is_file():
            raise ConfigError(
                f"config key experiments.{exp_name}.paper: no such file {exp['paper']!r}"
            )


def runs_of(config: Mapping[str, Any], experiment: str) -> list[Run]:
    exp = config["experiments"][experiment]
    return [
        Run(experiment, r["trace"], r["cluster"], policy)
        for r in exp["runs"]
        for policy in exp["policies"]
    ]


def profile_files(catalog: Mapping[str, UpstreamFile], gpu_type: str) -> list[str]:
    prefix = PROFILE_DIRS[gpu_type] + "/"
    return sorted(f"{UPSTREAM_ROOT}/{p}" for p in catalog if p.startswith(prefix))


def load_paper(path: Path | str) -> dict[str, Any]:
    with Path(path).open() as fh:
        doc: dict[str, Any] = yaml.safe_load(fh)
    for key in ("order", "labels", "published"):
        if key not in doc:
            raise ConfigError(f"{path}: missing key {key!r}")
    return doc
