"""One simulation run: load the inputs, run a policy, write its run record."""

from __future__ import annotations

import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import reprise
from reprise.config import instance_name
from reprise.data.clusters import load_cluster_spec
from reprise.data.fetch import UpstreamFile, sha256_of, verify_used
from reprise.data.profiles import load_profiles
from reprise.data.traces import load_trace
from reprise.data.validate import check_trace
from reprise.policies import get_policy
from reprise.policies.registry import entry_of
from reprise.records.result import RunResult
from reprise.records.writer import write_run_record
from reprise.sim.options import SimOptions


def _checksums(paths: Sequence[Path], root: Path | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in paths:
        key = str(p.relative_to(root)) if root is not None and p.is_relative_to(root) else p.name
        out[key] = sha256_of(p)
    return out


def run_simulation(
    *,
    trace: Path,
    cluster_spec: Path,
    profile_dir: Path,
    policy: str,
    options: SimOptions,
    outdir: Path,
    experiment: str = "",
    trace_name: str = "",
    trace_seed: int | None = None,
    policy_seed: int | None = None,
    policy_data: Sequence[Path] = (),
    trace_sources: Sequence[Path] = (),
    catalog: Mapping[str, UpstreamFile] | None = None,
) -> dict[str, Any]:
    """Simulate `policy` and write jobs.csv, events.csv, summary.json into `outdir`.

    `trace_name`/`trace_seed` name the trace as configured (the file's stem by default);
    a randomised policy's run records its `policy_seed` (`options.seed`); `policy_data` are the
    extra upstream files the policy reads (checksummed below `options.data_root`); `trace_sources`
    the files the trace was prepared from. Every input found in `catalog` is verified against
    its pinned sha256 before it is used, and all their hashes go into summary.json.
    """
    profile_files = sorted(profile_dir.glob("*.csv"))
    upstream = verify_used(
        [*trace_sources, cluster_spec, *profile_files, *policy_data], catalog or {}
    )
    profiles = load_profiles(profile_dir)
    jobs = load_trace(trace, profiles)
    cluster = load_cluster_spec(cluster_spec)
    check_trace(trace, jobs, profiles, [(f"run {outdir}", cluster)])
    simulate = get_policy(policy)
    run = RunResult(
        kind="sim",
        experiment=experiment,
        trace=trace_name or trace.stem,
        trace_seed=trace_seed,
        cluster=cluster.name,
        policy=policy,
        policy_seed=policy_seed,
        outcome=simulate(jobs, cluster, profiles, options),
    )
    meta: dict[str, Any] = {
        **({"experiment": experiment} if experiment else {}),
        "trace": instance_name(run.trace, trace_seed),
        "policy": policy,
        "cluster": {
            "name": cluster.name,
            "num_gpus": cluster.num_gpus,
            "nodes": cluster.num_nodes,
            "gpus_per_node": cluster.gpus_per_node,
        },
        "options": {
            "slot": options.slot,
            "gpu_type": options.gpu_type,
            **{name: getattr(options, name) for name in entry_of(policy).switches},
            **({"seed": options.seed} if policy_seed is not None else {}),
        },
        "inputs": {
            "trace": {trace.name: sha256_of(trace)},
            "cluster_spec": {cluster_spec.name: sha256_of(cluster_spec)},
            "profiles": _checksums(profile_files, profile_dir),
            **(
                {"policy_data": _checksums(policy_data, Path(options.data_root))}
                if policy_data
                else {}
            ),
            "upstream": upstream,
        },
        "versions": {
            "reprise": reprise.__version__,
            "python": platform.python_version(),
            "numpy": np.__version__,
        },
    }
    return write_run_record(run, outdir, meta)
