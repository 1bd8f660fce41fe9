"""Helpers for tests that run the real workflow in a throw-away copy of the repository."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
COPY_IGNORE = shutil.ignore_patterns(
    ".venv", ".git", "results", "resources", ".snakemake", "__pycache__", "*.egg-info", ".*cache"
)
FIG8A_TRACE = "ElasticFlow-artifact/ElasticFlow/traces_for_ElasticFlow/elasticVpollux_e.csv"
WITHOUT_POLLUX = ("--config", "experiments={figure8a: {seeds: {pollux: []}}}")
"""Appended to a `snakemake figure8a` of a test: Pollux (three runs of many minutes) is shown as
"not run" instead; its own tests run it on cut-down traces."""


def copy_workflow(dest: Path, resources_from: Path | None = None) -> Path:
    """Copy the workflow (no results) to dest; reuse a verified resources/ tree if given."""
    shutil.copytree(REPO, dest, ignore=COPY_IGNORE, symlinks=True)
    if resources_from is not None and (resources_from / "resources").is_dir():
        shutil.copytree(resources_from / "resources", dest / "resources")
    return dest


TINY_TABLE = "results/tables/tiny.csv"
"""The figure table of `tiny_config`'s experiment: the target that runs all its simulations."""


def tiny_config(
    directory: Path,
    mirror: Path,
    policies: list[str],
    jobs: int = 12,
    seeds: Mapping[str, list[int]] | None = None,
    cluster: str = "n4g8",
) -> Path:
    """A cut-down experiment `tiny`: the first jobs of the Figure 8(a) trace (on 32 GPUs)."""
    lines = (mirror / FIG8A_TRACE).read_text().splitlines()[: jobs + 1]
    trace = directory / "tiny_trace.csv"
    trace.write_text("\n".join(lines) + "\n")
    config = directory / "tiny.yaml"
    config.write_text(
        f"traces:\n  tiny:\n    file: {trace}\n    gpu_type: T4\n"
        f"experiments:\n  tiny:\n    runs:\n      - {{trace: tiny, cluster: {cluster}}}\n"
        f"    slot: 60\n    policies: [{', '.join(policies)}]\n"
        "    paper: config/paper/figure8a.yaml\n"
    )
    if seeds:
        with config.open("a") as fh:
            fh.write("    seeds:\n")
            for policy, values in seeds.items():
                fh.write(f"      {policy}: [{', '.join(map(str, values))}]\n")
    return config


def run_snakemake(
    workdir: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    timeout: int = 600,
    command: Sequence[str] = tuple(SNAKEMAKE),
) -> subprocess.CompletedProcess[str]:
    """`snakemake ARGS` in workdir under `timeout -k 5`, so a stuck status query cannot hang.

    An empty string in `env` removes that variable; `command` replaces `python -m snakemake`.
    """
    full_env = {**os.environ, "REPRISE_PROGRESS": "0", **(env or {})}
    for key, value in (env or {}).items():
        if value == "":
            full_env.pop(key, None)
    return subprocess.run(
        ["timeout", "-k", "5", str(timeout), *command, *args],
        cwd=workdir,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout + 30,
    )


def digest(root: Path, patterns: tuple[str, ...] = ("**/*",)) -> dict[str, str]:
    """sha256 of every file below root matching one of the patterns."""
    files = {p for pattern in patterns for p in root.glob(pattern) if p.is_file()}
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(files)
    }


def mtimes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


RESULT_PATTERNS = ("runs/**/*.csv", "runs/**/*.json", "tables/*.csv", "traces/*.csv")
"""What a run produces, minus logs and benchmarks (which hold wall times)."""


def job_counts(output: str) -> dict[str, int]:
    """The `Job stats` table Snakemake prints before running: rule -> number of jobs."""
    counts: dict[str, int] = {}
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("Job stats:"):
            for row in lines[i + 3 :]:
                parts = row.split()
                if len(parts) != 2 or not parts[1].isdigit() or parts[0] == "total":
                    break
                counts[parts[0]] = int(parts[1])
            break
    return counts


def job_blocks(output: str, rule: str) -> list[dict[str, str]]:
    """The job descriptions Snakemake prints (`rule NAME:` / `localrule NAME:` + indented lines)."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    for line in output.splitlines():
        if line in (f"rule {rule}:", f"localrule {rule}:"):
            current = {}
            blocks.append(current)
        elif current is not None and line.startswith("    ") and ": " in line:
            key, value = line.strip().split(": ", 1)
            current[key] = value
        else:
            current = None
    return blocks


def fields(value: str) -> dict[str, str]:
    """`a=1, b=x` (a wildcards: or resources: line) as a dict."""
    return dict(item.split("=", 1) for item in value.split(", ") if "=" in item)
