"""Figure 11: deadline ratio (a) and best-effort JCT gain over Gandiva (b) vs best-effort share."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.lines import Line2D

from reprise.plots.style import policy_colors, save, seeds_of


def share_of(group: str) -> int:
    """fig11_be30 -> 30."""
    digits = "".join(ch for ch in group.rsplit("be", 1)[-1] if ch.isdigit())
    return int(digits) if digits else 0


def jct_improvement(rows: Sequence[Mapping[str, str]]) -> dict[tuple[str, str], float]:
    """(group, policy) -> Gandiva's mean best-effort JCT / the policy's (docs/engine.md#metrics)."""
    jct = {
        (r["group"], r["policy"]): float(r["best_effort_mean_jct"])
        for r in rows
        if r["status"] == "ok" and r["best_effort_mean_jct"]
    }
    out = {}
    for (group, policy), value in jct.items():
        base = jct.get((group, "gandiva"))
        if base is not None and value > 0:
            out[(group, policy)] = base / value
    return out


def plot_best_effort_mix(
    rows: Sequence[Mapping[str, str]],
    published_jct: Mapping[str, Mapping[str, float]],
    title: str,
    pdf: Path,
    png: Path,
) -> None:
    policies = list(dict.fromkeys(r["policy"] for r in rows))
    labels = {r["policy"]: r["label"] for r in rows}
    colors = policy_colors(policies)
    improvement = jct_improvement(rows)
    fig, (ax_a, ax_b) = plt.subplots(1, 2, figsize=(10, 4.0), layout="constrained")
    for policy in policies:
        mine = sorted(
            (share_of(r["group"]), float(r["ratio_published_rule"]))
            for r in rows
            if r["policy"] == policy and r["status"] == "ok"
        )
        paper = sorted(
            (share_of(r["group"]), float(r["published"]))
            for r in rows
            if r["policy"] == policy and r["published"]
        )
        color = colors[policy]
        if mine:
            ax_a.plot(*zip(*mine, strict=True), marker="o", color=color, label=labels[policy])
        if paper:
            ax_a.plot(*zip(*paper, strict=True), linestyle=":", color=color)
        ours_b = sorted((share_of(g), v) for (g, p), v in improvement.items() if p == policy)
        if ours_b:
            ax_b.plot(*zip(*ours_b, strict=True), marker="o", color=color, label=labels[policy])
        paper_b = sorted(
            (share_of(g), float(v[policy])) for g, v in published_jct.items() if policy in v
        )
        if paper_b and not all(math.isnan(v) for _, v in paper_b):
            ax_b.plot(*zip(*paper_b, strict=True), linestyle=":", color=color)
    ax_a.set_xlabel("Best-effort jobs (%)")
    ax_a.set_ylabel("Deadline satisfactory ratio")
    ax_a.set_ylim(0, 1.05)
    ax_a.set_title("(a) deadline satisfactory ratio", fontsize=9)
    ax_b.set_xlabel("Best-effort jobs (%)")
    ax_b.set_ylabel("Gandiva JCT / policy JCT")
    ax_b.set_title("(b) best-effort JCT improvement over Gandiva", fontsize=9)
    # under both panels: inside (a) it covered the curves
    handles = ax_a.get_legend_handles_labels()[0]
    handles += [
        Line2D(
            [],
            [],
            color="#555555",
            marker="o",
            label=f"reproduced (mean of {seeds_of(rows)} seeds)",
        ),
        Line2D([], [], color="#555555", linestyle=":", label="published"),
    ]
    fig.legend(handles=handles, fontsize=7, ncols=4, loc="outside lower center", frameon=False)
    fig.suptitle(title, fontsize=10)
    for ax in (ax_a, ax_b):
        ax.grid(alpha=0.3)
    save(fig, pdf, png)
