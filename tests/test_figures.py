"""The figures as a reader sees them: paper names, GPU axes, explained marks, visible references.

Each figure is drawn from a table that `figure_rows` builds out of real run records and the real
paper file, so the names on it come from config/paper/ exactly as in `snakemake figureN`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.text import Text
from run_records import write_record
from test_tables_claims import job

from reprise.analysis.tables import figure_rows, write_table
from reprise.config import load_paper
from reprise.plots import draw, efficiency, grouped_bars, ratio_bars
from reprise.records.outcome import RunOutcome

REPO = Path(__file__).resolve().parents[1]
INTERNAL = re.compile(
    r"dlas-gpu|ef-accessctrl|edf-accessctrl|chronus-greedy|\bn\d+g\d+\b|fig\d+_|cluster\d\d"
)
"""Ids that belong in paths and configs, never on a figure."""


def record(
    root: Path, name: str, meta: dict[str, object], met: int, total: int, late: int = 0
) -> Path:
    # deadline 100: met at 90, missed at 150, or late at 150 yet counted as met (i < late)
    jobs = [job(i, 90 if i < met and i >= late else 150, 100, i < met) for i in range(total)]
    # the published rule's ratio is accepted / (accepted + declined), as each policy reports it
    result = RunOutcome(jobs=jobs, rounds=[], accepted=met, declined=total - met)
    write_record(result, root / name, meta)
    return root / name


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Figure]]:
    """Figures the plot functions would save, kept open for inspection instead."""
    figures: list[Figure] = []
    for module in (ratio_bars, grouped_bars, efficiency):
        monkeypatch.setattr(module, "save", lambda fig, pdf, png: figures.append(fig))
    yield figures


def texts(fig: Figure) -> list[str]:
    """Every piece of text a reader sees: titles, axis and tick labels, legends, annotations."""
    fig.canvas.draw()
    found = [t.get_text() for t in fig.findobj(Text) if t.get_visible() and t.get_text()]
    return found


def figure9_table(tmp_path: Path) -> Path:
    paper = load_paper(REPO / "config/paper/figure9.yaml")
    dirs = []
    for cluster, base in (("n8g8", 10), ("n16g8", 14), ("n32g8", 17)):
        for pi, policy in enumerate(paper["order"]):
            for seed in (0, 1, 2):
                meta = {
                    "trace": f"fig9_1000job.s{seed}",
                    "cluster": {"name": cluster},
                    "policy": policy,
                }
                met = min(20, base // 2 + 3 * pi + seed)
                late = 2 if policy == "ef-accessctrl" else 0
                dirs.append(record(tmp_path, f"{cluster}-{policy}-{seed}", meta, met, 20, late))
    table = tmp_path / "figure9.csv"
    write_table(figure_rows(paper, dirs, []), table)
    return table


def test_figure9_speaks_gpus_explains_its_error_bars_and_shows_every_mark(
    tmp_path: Path, drawn: list[Figure]
) -> None:
    table = figure9_table(tmp_path)
    paper = load_paper(REPO / "config/paper/figure9.yaml")
    draw.draw_figure(
        "grouped_bars",
        table,
        [],
        paper,
        "Figure 9: ablation",
        tmp_path / "f.pdf",
        tmp_path / "f.png",
    )
    (fig,) = drawn
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_xticklabels()] == ["64 GPUs", "128 GPUs", "256 GPUs"]
    assert ax.get_xlabel() == "Cluster size"
    seen = texts(fig)
    assert not [t for t in seen if INTERNAL.search(t)], seen
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[:4] == [
        "EDF",
        "EDF + Admission Control",
        "EDF + Elastic Scaling",
        "ElasticFlow",
    ]
    assert {"published", "completion-based ratio", "±1 s.d. over 3 seeds"} <= set(legend)
    # the published triangles and completion dashes lie above the error bars and their caps
    caps = [line for line in ax.lines if line.get_marker() == "_"]
    published = [line for line in ax.lines if line.get_marker() == "<"]
    dashes = [line for line in ax.lines if line.get_linestyle() == "--"]
    assert caps and len(published) == 12 and len(dashes) == 12
    assert min(m.get_zorder() for m in published + dashes) > max(c.get_zorder() for c in caps)
    # and beside, not on, the cap: a triangle sits at its bar's edge, a cap at its centre
    cap_x = {round(float(x), 6) for c in caps for x in c.get_xdata()}
    assert not cap_x & {round(float(m.get_xdata()[0]), 6) for m in published}


def test_figure8b_labels_its_traces_as_the_paper(tmp_path: Path, drawn: list[Figure]) -> None:
    """A small fake Figure 8(b) table (its real runs take 20 minutes): x labels 1..10, Philly."""
    paper = load_paper(REPO / "config/paper/figure8b.yaml")
    dirs = [
        record(
            tmp_path,
            f"{trace}-{policy}",
            {"trace": trace, "cluster": {"name": "n64g8"}, "policy": policy},
            met=3 + i,
            total=10,
        )
        for trace in paper["groups"]
        for i, policy in enumerate(paper["order"])
    ]
    table = tmp_path / "figure8b.csv"
    write_table(figure_rows(paper, dirs, []), table)
    draw.draw_figure("grouped_bars", table, [], paper, "t", tmp_path / "f.pdf", tmp_path / "f.png")
    (fig,) = drawn
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels == [*map(str, range(1, 11)), "Philly"]
    assert not [t for t in texts(fig) if INTERNAL.search(t)]


def figure8a_rows() -> list[dict[str, str]]:
    def row(policy: str, label: str, value: str, completion: str) -> dict[str, str]:
        return {
            "policy": policy,
            "label": label,
            "status": "ok",
            "published": value,
            "ratio_published_rule": value,
            "ratio_std": "",
            "ratio_completion": completion,
            "seeds": "",
            "accepted": "1",
            "total": "2",
        }

    return [
        row("edf", "EDF", "0.1179", "0.1179"),
        row("ef-accessctrl", "ElasticFlow", "0.7282", "0.6513"),
    ]


def test_figure8a_completion_dash_shows_on_an_equal_bar_and_prints_where_it_differs(
    tmp_path: Path, drawn: list[Figure]
) -> None:
    ratio_bars.plot_ratio_bars(figure8a_rows(), "t", tmp_path / "f.pdf", tmp_path / "f.png")
    (fig,) = drawn
    (ax,) = fig.axes
    bars = ax.patches
    dashes = [line for line in ax.lines if line.get_linestyle() == "--" and len(line.get_xdata())]
    assert len(bars) == 2 and len(dashes) == 2
    for bar, dash in zip(bars, dashes, strict=True):
        xs = dash.get_xdata()
        # wider than its bar: where it equals the bar's top it still shows on both sides
        assert min(xs) < bar.get_x() and max(xs) > bar.get_x() + bar.get_width()
        assert dash.get_zorder() > bar.get_zorder()
    seen = texts(fig)
    assert "0.651" in seen  # the completion-based value, where it differs
    assert seen.count("0.118") == 1  # equal: printed once, as the bar's value


def efficiency_runs(tmp_path: Path) -> tuple[list[Path], list[Path], Path]:
    """Six Figure 10 run records with events, their published logs, and their table."""
    paper = load_paper(REPO / "config/paper/figure10.yaml")
    dirs, logs = [], []
    for i, policy in enumerate(paper["order"]):
        rundir = record(
            tmp_path,
            policy,
            {"trace": "fig10_100job", "cluster": {"name": "n16g8"}, "policy": policy},
            met=10,
            total=10,
        )
        rows = ["time,ce"] + [f"{t * 2400},{0.05 + 0.01 * i + 0.02 * (t % 3)}" for t in range(300)]
        (rundir / "events.csv").write_text("\n".join(rows) + "\n")
        log = tmp_path / "upstream" / paper["published_curves"][policy]
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("\n".join(rows) + "\n")
        dirs.append(rundir)
        logs.append(log)
    table = tmp_path / "figure10.csv"
    write_table(figure_rows(paper, dirs, []), table)
    return dirs, logs, table


def panel(fig: Figure, title_start: str) -> Axes:
    return next(ax for ax in fig.axes if ax.get_title().startswith(title_start))


def test_figure10_one_readable_panel_per_policy_over_the_published_curve(
    tmp_path: Path, drawn: list[Figure]
) -> None:
    dirs, logs, table = efficiency_runs(tmp_path)
    paper = load_paper(REPO / "config/paper/figure10.yaml")
    draw.draw_figure(
        "efficiency_curves",
        table,
        dirs,
        paper,
        "t",
        tmp_path / "f.pdf",
        tmp_path / "f.png",
        (),
        logs,
    )
    (fig,) = drawn
    panels = [ax for ax in fig.axes if ax.get_visible()]
    titles = [ax.get_title() for ax in panels]
    assert [t.split(":")[0] for t in titles] == [
        "EDF",
        "Gandiva",
        "Tiresias",
        "Themis",
        "Chronus (greedy)",
        "ElasticFlow",
    ]
    assert "published 1.00" in panel(fig, "Tiresias").get_title()
    for ax in panels:
        reproduced, published = (line for line in ax.lines if len(line.get_xdata()))
        assert (
            published.get_linestyle() == ":" and published.get_zorder() >= reproduced.get_zorder()
        )
        # the busy first hours get the width, not the 200 h tail
        assert ax.get_xlim() == (0.0, efficiency.X_LIMIT_H)
        notes = [t.get_text() for t in ax.texts]
        assert any("last job ends at 199 h" in n for n in notes), notes
        assert any("largest gap to published: 0.000" in n for n in notes), notes
    assert not [t for t in texts(fig) if INTERNAL.search(t)]


def test_figure10_names_a_missing_published_log(tmp_path: Path) -> None:
    from reprise.errors import ConfigError

    dirs, _, table = efficiency_runs(tmp_path)
    paper = load_paper(REPO / "config/paper/figure10.yaml")
    with pytest.raises(ConfigError, match=r"logs/figure10/edf/scheduling_events\.csv"):
        draw.draw_figure(
            "efficiency_curves", table, dirs, paper, "t", tmp_path / "f.pdf", tmp_path / "f.png"
        )


def test_largest_gap_reads_both_step_curves_at_every_step() -> None:
    ours = [(0.0, 0.1), (1.0, 0.2), (2.0, 0.0)]
    theirs = [(0.0, 0.1), (1.5, 0.25), (2.0, 0.0)]
    # at t=1.0 ours steps to 0.2 while theirs is still 0.1; at 1.5 theirs is 0.25 against 0.2
    assert efficiency.largest_gap(ours, theirs) == pytest.approx(0.1)
    assert efficiency.largest_gap(ours, ours) == 0.0
