"""Synthetic traces in the style of the artifact's generator, every stream seeded.

See docs/traces.md#generator.

Upstream draws deadlines and best-effort flags from Python's unseeded global RNG; here that
stream is `random.Random(deadline_seed)`, so Figures 9 and 11 become repeatable. With the
Figure 10 parameters (min_ddl = max_ddl = 1.5, no best-effort jobs) that stream has no
influence on the output, and the generated trace equals the authors' Figure 10 trace.
"""

from __future__ import annotations

import csv
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reprise.data.clusters import ClusterSpec
from reprise.data.profiles import ThroughputProfiles
from reprise.data.traces import load_trace
from reprise.data.validate import check_trace
from reprise.errors import ConfigError, TraceError

# (model, global batch) in the order of upstream's 14-entry job table; choice() indexes into it
TEMPLATES: tuple[tuple[str, int], ...] = (
    ("resnet50", 64),
    ("resnet50", 128),
    ("resnet50", 256),
    ("vgg16", 64),
    ("vgg16", 128),
    ("vgg16", 256),
    ("inception3", 64),
    ("inception3", 128),
    ("gpt2", 128),
    ("gpt2", 256),
    ("bert", 128),
    ("bert", 64),
    ("deepspeech2", 64),
    ("deepspeech2", 32),
)

Row = tuple[int, int, int, str, int, int, int, int, int]

HEADER = (
    "job_id",
    "submit_time",
    "iteration",
    "model_name",
    "ddl",
    "batch_size",
    "num_gpu",
    "duration",
    "best_effort",
)


@dataclass(frozen=True)
class GeneratorParams:
    num_jobs: int
    lam: float
    """Mean inter-arrival time in seconds (0 = every job arrives at 0)."""
    seed: int = 0
    deadline_seed: int = 0
    min_ddl: float = 0.5
    max_ddl: float = 1.5
    best_effort_share: float = 0.0
    max_gpus: int = 16


def _gpu_count(rng: random.Random, cap: int) -> int:
    r = rng.uniform(0, 1)
    if 0.83 <= r <= 0.86:
        gpus = 2
    elif 0.86 <= r <= 0.89:
        gpus = 4
    elif 0.89 <= r <= 0.99:
        gpus = 8
    elif r >= 0.99:
        gpus = 16
    else:
        gpus = 1
    return min(gpus, cap)


def _duration(rng: random.Random) -> float:
    # 20% long jobs (10^2.5 .. 10^4 minutes' worth of seconds), 80% short ones
    if rng.random() >= 0.80:
        return 60 * (10 ** rng.uniform(2.5, 4))
    return 60 * (10 ** rng.uniform(1, 2.5))


def generate_rows(params: GeneratorParams, profiles: ThroughputProfiles) -> list[Row]:
    """Rows in HEADER order."""
    template_rng = random.Random(params.seed)
    arrival_rng = random.Random(params.seed + 1)
    duration_rng = random.Random(params.seed + 2)
    gpu_rng = random.Random(params.seed + 3)
    deadline_rng = random.Random(params.deadline_seed)
    rows: list[Row] = []
    arrival = 0.0
    for i in range(params.num_jobs):
        gpus = _gpu_count(gpu_rng, params.max_gpus)
        model, batch = template_rng.choice(TEMPLATES)
        duration = _duration(duration_rng)
        tput = profiles.tput(model, batch, gpus)
        if math.isnan(tput):
            raise TraceError(
                f"throughput profile {model}.csv (in {profiles.source}) has no measurement (nan) "
                f"for batch {batch} at {gpus} GPUs"
            )
        steps = duration * tput
        if i > 0 and params.lam > 0:
            arrival += -math.log(1.0 - arrival_rng.random()) * params.lam
        ddl = arrival + int(deadline_rng.uniform(params.min_ddl, params.max_ddl) * duration)
        best_effort = int(deadline_rng.uniform(0, 1) < params.best_effort_share)
        rows.append(
            (i, int(arrival), int(steps), model, int(ddl), batch, gpus, int(duration), best_effort)
        )
    return rows


def write_generated_trace(
    params: GeneratorParams,
    profiles: ThroughputProfiles,
    dest: Path,
    clusters: Sequence[tuple[str, ClusterSpec]] = (),
    key: str = "generated",
) -> int:
    """Generate, check like any trace (rows, profiles, `clusters`), then move into place: a
    failing check leaves no file at `dest`. `key` is the config key the parameters came from."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.part")
    try:
        try:
            rows = generate_rows(params, profiles)
            with tmp.open("w", newline="") as fh:
                writer = csv.writer(fh, lineterminator="\n")
                writer.writerow(HEADER)
                writer.writerows(rows)
            check_trace(tmp, load_trace(tmp, profiles), profiles, clusters)
        except TraceError as exc:
            raise ConfigError(
                f"config key {key}: these parameters (deadline seed {params.deadline_seed}) "
                f"generate an invalid trace, so {dest} was not written: {exc}. Change the "
                f"parameters under {key}."
            ) from None
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)
    return len(rows)


def generator_params(spec: Mapping[str, Any], deadline_seed: int | None) -> GeneratorParams:
    """Build parameters from a config `generated:` block (keys as GeneratorParams fields)."""
    known = set(GeneratorParams.__dataclass_fields__)
    unknown = set(spec) - known
    if unknown:
        raise ConfigError(
            f"generated trace: unknown key(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(sorted(known))}"
        )
    values = dict(spec)
    values["deadline_seed"] = deadline_seed or 0
    return GeneratorParams(**values)
