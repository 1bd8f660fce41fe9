"""benchmarks/bench_scaling.py: a tiny grid end to end (table, plot, exponent) and its CPU cap."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks/bench_scaling.py"


def _bench(mirror: Path, out: Path, *args: str) -> list[dict[str, str]]:
    cmd = [sys.executable, str(SCRIPT), "--mirror", str(mirror), "--out", str(out), *args]
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600)
    with out.with_suffix(".csv").open() as fh:
        return list(csv.DictReader(fh))


def test_small_grid_gives_table_plot_and_exponent(mirror: Path, tmp_path: Path) -> None:
    out = tmp_path / "scaling"
    rows = _bench(mirror, out, "--policies", "edf", "--jobs", "40", "80", "--gpus", "512")
    assert [(r["policy"], r["gpus"], r["jobs"], r["status"]) for r in rows] == [
        ("edf", "512", "40", "ok"),
        ("edf", "512", "80", "ok"),
    ]
    assert all(int(r["done"]) == int(r["jobs"]) for r in rows)
    # constant load: the mean gap on 512 GPUs is 8 x the one on 4,096
    assert {r["gap_s"] for r in rows} == {"288"}
    assert all(float(r["cpu_s"]) > 0 and float(r["max_rss_mb"]) > 0 for r in rows)
    table = out.with_suffix(".md").read_text()
    assert "| edf | 512 | 2 |" in table  # two finished points: an exponent is fitted
    assert out.with_suffix(".png").stat().st_size > 0
    # a point measured again replaces its row; other points stay
    rows = _bench(mirror, out, "--policies", "edf", "--jobs", "80", "--gpus", "512")
    assert [r["jobs"] for r in rows] == ["40", "80"]


def test_cpu_cap_reports_the_jobs_done_so_far(mirror: Path, tmp_path: Path) -> None:
    rows = _bench(
        mirror,
        tmp_path / "capped",
        *("--policies", "ef-accessctrl", "--jobs", "3000", "--gpus", "512", "--cpu-cap", "1"),
    )
    (row,) = rows
    assert row["status"] == "cpu cap"
    assert 0 <= int(row["done"]) < 3000
    assert float(row["cpu_s"]) >= 1
    assert row["ratio"] == ""


@pytest.mark.parametrize(
    ("points", "expected"),
    [([(1000, 1.0), (10000, 10.0)], 1.0), ([(1000, 1.0), (10000, 100.0), (100, 0.01)], 2.0)],
)
def test_fitted_exponent(points: list[tuple[float, float]], expected: float) -> None:
    sys.path.insert(0, str(SCRIPT.parent))
    from bench_scaling import fitted_exponent

    assert fitted_exponent(points) == pytest.approx(expected)
    assert fitted_exponent(points[:1]) is None
