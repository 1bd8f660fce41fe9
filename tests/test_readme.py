"""The README against the workflow: run counts as a dry run plans them, venv paths, progress."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from infra.workflow import copy_workflow, run_snakemake

REPO = Path(__file__).resolve().parents[1]


def figures_table() -> dict[str, int]:
    """target -> runs, read from the README's "## Figures" table."""
    text = (REPO / "README.md").read_text()
    section = text.split("\n## Figures\n", 1)[1].split("\n## ", 1)[0]
    runs = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        target = re.fullmatch(r"`(\w+)`", cells[0])
        if target and len(cells) >= 3 and cells[2].isdigit():
            runs[target.group(1)] = int(cells[2])
    return runs


def planned_simulations(workdir: Path) -> dict[str, int]:
    """Simulations `snakemake all -n` plans, per figure (from each job's log path) and in all."""
    result = run_snakemake(workdir, "all", "-n", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    logs = re.findall(r"^\s+log: results/logs/sim/(\w+)/", result.stdout, re.MULTILINE)
    planned = {figure: logs.count(figure) for figure in set(logs)}
    return {**planned, "all": len(logs)}


def test_readme_figures_table_counts_what_a_dry_run_plans(tmp_path: Path) -> None:
    table = figures_table()
    assert set(table) == {"figure8a", "figure8b", "figure9", "figure10", "figure11", "all"}
    assert planned_simulations(copy_workflow(tmp_path / "wf")) == table


@pytest.mark.parametrize(
    "command",
    [
        ".venv/bin/snakemake figure8a --config 'experiments={figure8a: {seeds: {pollux: []}}}'",
        "tail -f results/logs/sim/figure8a/elasticVpollux_e/n16g4/pollux.s0.log",
    ],
)
def test_readme_gives_the_fast_variant_and_where_progress_shows(command: str) -> None:
    text = (REPO / "README.md").read_text()
    quick_start = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert command in quick_start


def test_the_progress_log_the_readme_names_is_the_one_the_workflow_writes() -> None:
    rule = (REPO / "rules/simulate.smk").read_text()
    assert '"results/logs/sim/{experiment}/{trace}/{cluster}/{policy}.log"' in rule


def test_readme_commands_use_the_virtualenv() -> None:
    """Every command outside the Troubleshooting section runs the venv's own snakemake and pip."""
    text = (REPO / "README.md").read_text().split("\n## Troubleshooting", 1)[0]
    bare = re.findall(r"(?:^|`)(?:snakemake|pip) [^`\n]*", text, re.MULTILINE)
    assert not bare, bare
