"""The throughput-profile figure: iterations/s and scaling efficiency vs workers, and the time
profiling took per model."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

MODEL_LABELS = {
    "resnet50": "ResNet-50",
    "vgg16": "VGG-16",
    "inception3": "Inception-v3",
    "gpt2": "GPT-2",
    "bert": "BERT",
    "deepspeech2": "DeepSpeech2",
}


def plot_throughput(table: pd.DataFrame, times: pd.DataFrame, outputs: list[Path]) -> None:
    fig, (ax_tp, ax_eff, ax_time) = plt.subplots(1, 3, figsize=(14, 4.2))
    batch = int(table["global_batch"].min())
    rows = table[table["global_batch"] == batch]
    clusters = sorted(rows["cluster"].unique())
    for model, group in rows.groupby("model", sort=True):
        label = MODEL_LABELS.get(str(model), str(model))
        group = group.sort_values("workers")
        ax_tp.plot(group["workers"], group["iterations_per_s"], marker="o", label=label)
        ax_eff.plot(group["workers"], group["scaling_efficiency"], marker="o", label=label)
    workers = sorted(rows["workers"].unique())
    for ax in (ax_tp, ax_eff):
        ax.set_xscale("log", base=2)
        ax.set_xticks(workers, [str(w) for w in workers])
        ax.set_xlabel("workers")
        ax.grid(alpha=0.3)
    ax_tp.set_yscale("log")
    ax_tp.set_ylabel(f"iterations/s (global batch {batch})")
    ax_eff.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax_eff.set_ylabel("scaling efficiency (speed-up / workers)")
    ax_eff.set_ylim(bottom=0)
    ax_tp.legend(fontsize=8)
    per_model = times.groupby("model")["seconds"].sum().sort_values()
    labels = [MODEL_LABELS.get(str(m), str(m)) for m in per_model.index]
    ax_time.barh(labels, per_model.to_numpy(), color="#4c72b0")
    for y, value in enumerate(per_model.to_numpy()):
        ax_time.text(value, y, f" {value:.0f} s", va="center", fontsize=8)
    ax_time.set_xlabel("profiling wall time (s)")
    ax_time.set_title("time to profile (cf. Figure 12(a))", fontsize=10)
    size = ", ".join(sorted(rows["size"].unique()))
    fig.suptitle(f"Throughput profile on {', '.join(clusters)} ({size} models)")
    fig.tight_layout()
    for out in outputs:
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=150)
    plt.close(fig)
