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


ITP_ARCHIVE = "elasticflow-traces/data/elasticflow-traces.tar.gz"
ITP_TRACES = (*(f"cluster{i:02d}" for i in range(1, 11)), "195job")
SEED_SEPARATOR = ".s"
"""A generated trace instance is named <trace>.s<deadline seed>."""


def cluster_spec_path(name: str) -> str:
    return f"{ARTIFACT}/scheduler/cluster_specs/{name}.csv"


def trace_instances(config: Mapping[str, Any], name: str) -> list[str]:
    """The concrete traces behind a configured name: one per deadline seed if generated."""
    entry = config["traces"][name]
    if "generated" in entry:
        return [f"{name}{SEED_SEPARATOR}{seed}" for seed in entry.get("deadline_seeds", [0])]
    return [name]


def split_instance(instance: str) -> tuple[str, int | None]:
    base, sep, seed = instance.rpartition(SEED_SEPARATOR)
    if sep and seed.isdigit():
        return base, int(seed)
    return instance, None


def trace_entry(config: Mapping[str, Any], instance: str) -> Mapping[str, Any]:
    base, _ = split_instance(instance)
    entry: Mapping[str, Any] = config["traces"][base]
    return entry


def trace_source(config: Mapping[str, Any], instance: str) -> str | None:
    """The file a trace is read from; None for generated traces."""
    entry = trace_entry(config, instance)
    if "upstream" in entry:
        return f"{UPSTREAM_ROOT}/{entry['upstream']}"
    if "file" in entry:
        return str(entry["file"])
    if "itp" in entry:
        return f"resources/traces/itp/{entry['itp']}.csv"
    return None


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
        itp = trace.get("itp")
        if itp is not None and itp not in ITP_TRACES:
            raise ConfigError(
                f"config key traces.{name}.itp: {itp!r} is not in the elasticflow-traces tarball "
                f"({', '.join(ITP_TRACES)})"
            )
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
        Run(experiment, instance, r["cluster"], policy)
        for r in exp["runs"]
        for instance in trace_instances(config, r["trace"])
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
