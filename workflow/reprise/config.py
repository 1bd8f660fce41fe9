"""Cross-checks of the workflow config beyond its JSON schema, and the paths derived from it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from reprise.data.fetch import UpstreamFile
from reprise.errors import ConfigError
from reprise.policies.registry import entry_of, policy_labels, seeded_policies

ARTIFACT = "ElasticFlow-artifact/ElasticFlow"
PROFILE_DIRS = {
    "T4": f"{ARTIFACT}/scheduler/throughputs_T4",
    "A100": f"{ARTIFACT}/scheduler/throughputs_A100",
}
UPSTREAM_ROOT = "resources/upstream"


ITP_ARCHIVE = "elasticflow-traces/data/elasticflow-traces.tar.gz"
ITP_TRACES = (*(f"cluster{i:02d}" for i in range(1, 11)), "195job")
SEED_SEPARATOR = ".s"
"""A generated trace instance is named <trace>.s<deadline seed>; a seeded run of a randomised
policy <policy>.s<seed>."""


def cluster_spec_path(name: str) -> str:
    return f"{ARTIFACT}/scheduler/cluster_specs/{name}.csv"


def trace_instances(config: Mapping[str, Any], name: str) -> list[str]:
    """The concrete traces behind a configured name: one per deadline seed if generated."""
    entry = config["traces"][name]
    if "generated" in entry:
        return [instance_name(name, seed) for seed in entry.get("deadline_seeds", [0])]
    return [name]


def instance_name(base: str, seed: int | None) -> str:
    """`base`, or `base.s<seed>` for a seeded instance (the inverse of `split_instance`)."""
    return base if seed is None else f"{base}{SEED_SEPARATOR}{seed}"


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


def policy_instances(experiment: Mapping[str, Any], policy: str) -> list[str]:
    """The runs of `policy` in one experiment: one per seed (default: seed 0) if it is seeded."""
    if not entry_of(policy).seeded:
        return [policy]
    seeds: list[int] = experiment.get("seeds", {}).get(policy, [0])
    return [instance_name(policy, seed) for seed in seeds]


def pending_policies(experiment: Mapping[str, Any]) -> list[str]:
    """Policies shown as "not run": the listed ones and the seeded ones given no seed."""
    pending = list(experiment.get("pending_policies", []))
    for policy in experiment["policies"]:
        if not policy_instances(experiment, policy) and policy not in pending:
            pending.append(policy)
    return pending


def policy_data_files(catalog: Mapping[str, UpstreamFile], policy_instance: str) -> list[str]:
    """The upstream files (below resources/upstream) that one policy run reads besides the trace."""
    prefix = entry_of(split_instance(policy_instance)[0]).data
    if prefix is None:
        return []
    return sorted(
        f"{UPSTREAM_ROOT}/{p}" for p in catalog if p.startswith(prefix) and "/" in p[len(prefix) :]
    )


def data_root_of(policy_instance: str, files: list[str]) -> str:
    """The directory that holds `ElasticFlow-artifact/...` for a run whose policy reads `files`."""
    prefix = entry_of(split_instance(policy_instance)[0]).data
    if prefix is None or not files:
        return ""
    head, sep, _ = files[0].partition(prefix)
    if not sep:
        raise ConfigError(f"policy data file {files[0]!r} is not below {prefix!r}")
    return head.rstrip("/") or "."


def _key(path: Sequence[Any]) -> str:
    parts = [f"[{p}]" if isinstance(p, int) else f".{p}" for p in path]
    return "".join(parts).lstrip(".") or "(top level)"


def check_schema(config: Mapping[str, Any], schema_path: Path | str) -> None:
    """Raise ConfigError for the first schema violation, naming the config key and what the
    schema says the key is for (Snakemake's own message shows the schema, not the fix)."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.path)))
    if not errors:
        return
    error = jsonschema.exceptions.best_match(errors)
    assert error is not None  # errors is not empty
    description = error.schema.get("description") if isinstance(error.schema, dict) else None
    hint = f" ({description})" if description else ""
    if error.validator == "uniqueItems":
        hint += "; list each entry once"
    raise ConfigError(
        f"config key {_key(list(error.path))}: {error.message}{hint}; schema {schema_path}"
    )


def _check_generated(name: str, spec: Mapping[str, Any]) -> None:
    low, high = spec.get("min_ddl", 0.5), spec.get("max_ddl", 1.5)
    if high < low:
        raise ConfigError(
            f"config key traces.{name}.generated.max_ddl: {high} is below min_ddl {low}; "
            f"deadlines are drawn between min_ddl and max_ddl times the duration"
        )


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
        if "generated" in trace:
            _check_generated(name, trace["generated"])
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
        for policy in exp.get("seeds", {}):
            if policy not in seeded_policies():
                raise ConfigError(
                    f"config key experiments.{exp_name}.seeds.{policy}: seeds are for the "
                    f"randomised policies only ({', '.join(sorted(seeded_policies()))})"
                )
        if not Path(exp["paper"]).is_file():
            raise ConfigError(
                f"config key experiments.{exp_name}.paper: no such file {exp['paper']!r}"
            )


def trace_clusters(config: Mapping[str, Any], instance: str) -> list[tuple[str, str]]:
    """Every (config key of a run, cluster name) that runs the trace behind `instance`."""
    base, _ = split_instance(instance)
    return [
        (f"experiments.{exp_name}.runs[{i}]", run["cluster"])
        for exp_name, exp in config["experiments"].items()
        for i, run in enumerate(exp["runs"])
        if run["trace"] == base
    ]


def runs_of(config: Mapping[str, Any], experiment: str) -> list[Run]:
    exp = config["experiments"][experiment]
    return [
        Run(experiment, instance, r["cluster"], policy_run)
        for r in exp["runs"]
        for instance in trace_instances(config, r["trace"])
        for policy in exp["policies"]
        for policy_run in policy_instances(exp, policy)
    ]


def profile_files(catalog: Mapping[str, UpstreamFile], gpu_type: str) -> list[str]:
    prefix = PROFILE_DIRS[gpu_type] + "/"
    return sorted(f"{UPSTREAM_ROOT}/{p}" for p in catalog if p.startswith(prefix))


def load_paper(path: Path | str) -> dict[str, Any]:
    """A figure's paper file, with every policy's display label from the registry."""
    with Path(path).open() as fh:
        doc: dict[str, Any] = yaml.safe_load(fh)
    for key in ("order", "published"):
        if key not in doc:
            raise ConfigError(f"{path}: missing key {key!r}")
    if "labels" in doc:
        raise ConfigError(
            f"{path}: key 'labels' is no longer read; a policy's label is its `label` in "
            "workflow/reprise/policies/registry.py"
        )
    doc["labels"] = policy_labels()
    return doc
