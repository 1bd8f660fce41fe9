"""The report's front page: every figure, policy and group, reproduced vs published, pass/warn."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from reprise.analysis.tables import read_table

STATUS_STYLE = {
    "pass": "#d8f0d2",
    "warn": "#fbe3c2",
    "not run": "#e6e6e6",
    "no reference": "#ffffff",
}


def figure_name(experiment: str) -> str:
    """The paper's name of a figure target: figure8a -> Figure 8(a), figure11 -> Figure 11."""
    found = re.fullmatch(r"figure(\d+)([a-z]?)", experiment)
    if not found:
        return experiment
    number, panel = found.groups()
    return f"Figure {number}" + (f"({panel})" if panel else "")


def scorecard_rows(tables: Mapping[str, Path]) -> list[dict[str, str]]:
    """Flatten the figure tables into one list with a mark per row."""
    out: list[dict[str, str]] = []
    for figure, path in tables.items():
        for row in read_table(path):
            if row["status"] != "ok":
                mark = "not run"
            elif not row["published"]:
                mark = "no reference"
            else:
                mark = "pass" if row["within_tolerance"] == "true" else "warn"
            out.append({"figure": figure, "figure_name": figure_name(figure), **row, "mark": mark})
    return out


SCORECARD_COLUMNS = (
    ("figure_name", "figure"),
    ("group_label", "group"),
    ("label", "policy"),
    ("ratio_published_rule", "reproduced"),
    ("published", "published"),
    ("delta", "delta"),
    ("ratio_completion", "completion-based"),
    ("seeds", "seeds"),
    ("mark", "mark"),
    ("note", "note"),
)
"""(row key, column heading) of the scorecard table, in order."""


def _summary(rows: Sequence[Mapping[str, str]]) -> str:
    counts = {m: sum(1 for r in rows if r["mark"] == m) for m in STATUS_STYLE}
    return ", ".join(f"{n} {m}" for m, n in counts.items() if n)


def _claim_text(claim: Mapping[str, Any]) -> tuple[str, str]:
    verdict = "holds" if claim["holds"] else "does not hold"
    why = f" ({claim['why']})" if claim.get("why") else ""
    return verdict, f"{figure_name(claim.get('experiment', ''))}: {claim['claim']}{why}"


def _rst_cell(text: str) -> str:
    # backslash-escape what rst would read as markup inside a table cell
    return "".join("\\" + c if c in "*`|_\\" else c for c in text)


def render_scorecard_rst(
    rows: Sequence[Mapping[str, str]], claims: Sequence[Mapping[str, Any]], dest: Path
) -> None:
    """The scorecard as reStructuredText, for the report's front page to include."""
    lines = [
        "Scorecard",
        "=========",
        "",
        f"Summary: {_summary(rows)}. *pass* = within the figure's tolerance declared in "
        "``config/paper/``; a *warn* row's note gives the measured cause of the difference.",
        "",
        "Claims:",
        "",
    ]
    for claim in claims:
        verdict, text = _claim_text(claim)
        lines.append(f"- **{verdict}**: {_rst_cell(text)}")
    lines += ["", ".. list-table::", "   :header-rows: 1", ""]
    lines.append("   * - " + "\n     - ".join(head for _, head in SCORECARD_COLUMNS))
    for row in rows:
        cells = [_rst_cell(row.get(key) or "") for key, _ in SCORECARD_COLUMNS]
        lines.append("   * - " + "\n     - ".join(cells))
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text("\n".join(lines) + "\n")


def render_scorecard(
    rows: Sequence[Mapping[str, str]], claims: Sequence[Mapping[str, Any]], dest: Path
) -> None:
    """A self-contained HTML page (no scripts), so it opens in any browser."""
    head = "".join(f"<th>{heading}</th>" for _, heading in SCORECARD_COLUMNS)
    body = []
    for r in rows:
        style = STATUS_STYLE[r["mark"]]
        cells = [r.get(key) or "" for key, _ in SCORECARD_COLUMNS]
        body.append(
            f'<tr style="background:{style}">'
            + "".join(f"<td>{html.escape(c or '')}</td>" for c in cells)
            + "</tr>"
        )
    claim_items = "".join(
        f"<li><b>{verdict}</b>: {html.escape(text)}</li>"
        for verdict, text in map(_claim_text, claims)
    )
    summary = _summary(rows)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Reprise scorecard</title>
<style>body{{font-family:sans-serif;margin:1.5em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #bbb;padding:2px 6px;font-size:13px;text-align:right}}
td:last-child{{text-align:left;max-width:40em}}</style></head>
<body><h1>Reprise scorecard</h1>
<p>Reproduced deadline satisfactory ratios (each policy's own counting rule, as published)
beside the published values; "pass" means within the figure's tolerance declared in
<code>config/paper/</code>. The completion-based column counts a job as met only if its recorded
completion is no later than its deadline. A warn row's note gives the measured cause of the
difference (<code>notes</code> in <code>config/paper/</code>). Summary: {html.escape(summary)}.</p>
<h2>Claims</h2><ul>{claim_items}</ul>
<h2>Numbers</h2><table><tr>{head}</tr>{"".join(body)}</table></body></html>
"""
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(page)
