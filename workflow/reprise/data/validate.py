"""Checks of a loaded trace against what it will meet: throughput profiles and cluster shapes."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from reprise.data.clusters import ClusterSpec
from reprise.data.profiles import ThroughputProfiles
from reprise.data.traces import TraceJob
from reprise.errors import TraceError


def check_gpu_counts(
    path: Path | str, jobs: Sequence[TraceJob], profiles: ThroughputProfiles
) -> None:
    """Every job's GPU count must be a measured column of its profile row.

    Gandiva, Tiresias, Themis and Chronus run a job at exactly `num_gpu` GPUs and read its
    throughput there; a count without a measurement has no defined speed.
    """
    for job in jobs:
        row = profiles.row(job.model, job.batch_size)
        columns = row.columns()
        where = f"{path}: row {job.line}, column 'num_gpu'"
        profile = f"{profiles.source}/{job.model}.csv (batch {job.batch_size})"
        if job.num_gpu not in columns:
            raise TraceError(
                f"{where}: {job.num_gpu} GPUs, but the throughput profile {profile} has columns "
                f"for {', '.join(map(str, columns))} GPUs only; use one of those"
            )
        if math.isnan(row.tput(job.num_gpu)):
            measured = [g for g in columns if not math.isnan(row.tput(g))]
            raise TraceError(
                f"{where}: {job.num_gpu} GPUs, but the throughput profile {profile} has no "
                f"measurement (nan) there; use one of {', '.join(map(str, measured))}"
            )


def check_fits_clusters(
    path: Path | str, jobs: Sequence[TraceJob], clusters: Sequence[tuple[str, ClusterSpec]]
) -> None:
    """Every job must fit each cluster it is run on: at most all its GPUs, whole nodes if more
    than one. `clusters` pairs each spec with the config key of the run that uses it."""
    for key, cluster in clusters:
        shape = (
            f"cluster {cluster.name} ({cluster.num_nodes} nodes x {cluster.gpus_per_node} GPUs "
            f"= {cluster.num_gpus}, {key})"
        )
        for job in jobs:
            where = f"{path}: row {job.line}, column 'num_gpu'"
            if job.num_gpu > cluster.num_gpus:
                raise TraceError(
                    f"{where}: job {job.job_id} asks for {job.num_gpu} GPUs, more than the "
                    f"{shape}; lower num_gpu or run the trace on a larger cluster"
                )
            if job.num_gpu > cluster.gpus_per_node and job.num_gpu % cluster.gpus_per_node:
                raise TraceError(
                    f"{where}: job {job.job_id} asks for {job.num_gpu} GPUs, which spans "
                    f"{cluster.gpus_per_node}-GPU nodes only partly on {shape}; use a multiple "
                    f"of {cluster.gpus_per_node}"
                )


def check_trace(
    path: Path | str,
    jobs: Sequence[TraceJob],
    profiles: ThroughputProfiles,
    clusters: Sequence[tuple[str, ClusterSpec]],
) -> None:
    """Everything a policy assumes of a trace beyond its own rows (see the two checks above)."""
    check_gpu_counts(path, jobs, profiles)
    check_fits_clusters(path, jobs, clusters)
