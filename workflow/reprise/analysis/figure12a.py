"""Figure 12(a): how long profiling each model's throughput table took, from the
`throughput_profile` run record, beside the published seconds."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import yaml

from reprise.errors import ConfigError

COLUMNS = (
    "model",
    "measured_s",
    "published_s",
    "measured_over_published",
    "measurements",
    "workers",
    "global_batch_sizes",
    "size",
    "cluster",
)


def profiling_table(run_dir: Path, paper_path: Path) -> pd.DataFrame:
    """One row per model of the run or of the paper; what each side measured is stated
    (workers, batch sizes, model size), since the paper profiled real models on 1 to 64 A100s."""
    paper = yaml.safe_load(paper_path.read_text())
    for key in ("published", "source"):
        if key not in paper:
            raise ConfigError(f"{paper_path}: no {key!r} (published Figure 12(a) seconds)")
    summary = json.loads((run_dir / "summary.json").read_text())
    measured: dict[str, float] = summary["metrics"]["profiling_seconds_per_model"]
    counts = pd.read_csv(run_dir / "measurements.csv").groupby("model").size()
    settings = summary["settings"]
    rows = []
    for model in dict.fromkeys([*settings["models"], *paper["published"]]):
        seconds = measured.get(model)
        published = paper["published"].get(model)
        rows.append(
            {
                "model": model,
                "measured_s": seconds,
                "published_s": published,
                "measured_over_published": round(seconds / published, 3)
                if seconds is not None and published
                else None,
                "measurements": int(counts.get(model, 0)),
                "workers": " ".join(str(w) for w in settings["workers"]),
                "global_batch_sizes": " ".join(str(b) for b in settings["global_batch_sizes"]),
                "size": settings["size"],
                "cluster": summary["cluster"],
            }
        )
    return pd.DataFrame(rows, columns=list(COLUMNS))
