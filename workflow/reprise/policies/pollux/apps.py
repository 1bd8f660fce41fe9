"""Pollux ground truth per application: measured step times and gradient statistics.

See docs/policies/pollux.md#model.

Values for unmeasured configurations are interpolated the way the Pollux artifact's simulator does.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy.interpolate import LinearNDInterpolator

from reprise.errors import ConfigError, SimulationError

FloatArray = npt.NDArray[np.float64]

TRACES_SUBDIR = Path("ElasticFlow-artifact/pollux/pollux_simulator/traces")
"""Where the per-application measurements live below the data root."""

MAX_INTERP_NODES = 16
"""The N-D interpolation clamps the node count here (the measurements stop at 16 nodes)."""


@dataclass(frozen=True)
class AppSettings:
    """Hard-coded per-application settings of the artifact (epochs to train, local-batch cap)."""

    max_epochs: int
    max_local_bsz: int | None = None


APP_SETTINGS: dict[str, AppSettings] = {
    "bert": AppSettings(2),
    "cifar10": AppSettings(100),
    "ncf": AppSettings(10),
    "imagenet": AppSettings(90),
    "deepspeech2": AppSettings(80),
    "yolov3": AppSettings(50, max_local_bsz=8),
}

FIXED_BATCH: dict[str, int] = {"ncf": 32768}
"""Applications whose global batch the simulator pins (and whose replicas are capped at 1)."""


def _read_rows(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        raise ConfigError(f"Pollux ground truth file {path} is missing (fetch the upstream data)")
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def canonical_placement(placement: tuple[int, ...]) -> tuple[int, ...]:
    """Drop empty nodes and rotate to the lexicographically smallest rotation (artifact's key)."""
    nodes = tuple(p for p in placement if p)
    return min(nodes[i:] + nodes[:i] for i in range(len(nodes)))


@dataclass
class Application:
    """Measurements of one application; lookups are memoised (the event loop repeats them)."""

    name: str
    max_epochs: int
    init_batch_size: int
    max_batch_size: int
    min_local_bsz: int
    max_local_bsz: int
    validation_bsz: tuple[int, ...]
    progress: FloatArray
    """(batch sizes, epochs): cumulative progress after each epoch."""
    grad_sqr: FloatArray
    grad_var: FloatArray
    curves: dict[int, tuple[FloatArray, FloatArray, FloatArray]]
    """placement id -> (local batch sizes ascending, step times, sync times)."""
    scatter: LinearNDInterpolator
    """(nodes, replicas, local batch) -> (step time, sync time) over all measurements."""
    _tput_memo: dict[tuple[tuple[int, ...], int], tuple[float, float]] = field(default_factory=dict)
    _grad_memo: dict[tuple[int, int], tuple[float, float]] = field(default_factory=dict)

    def progress_at(self, epoch: int) -> float:
        """Progress needed to finish `epoch` epochs: the minimum over the measured batch sizes."""
        if epoch == 0:
            return 0.0
        return float(self.progress[:, epoch - 1].min())

    def _bracket(self, batch_size: int) -> tuple[int, int]:
        lower: int | None = None
        upper: int | None = None
        for i, bsz in enumerate(self.validation_bsz):
            if bsz <= batch_size:
                lower = i
            if bsz >= batch_size:
                upper = i
                break
        if lower is None or upper is None:
            raise SimulationError(
                f"Pollux {self.name}: batch size {batch_size} outside the measured range "
                f"{self.validation_bsz[0]}..{self.validation_bsz[-1]}"
            )
        return lower, upper

    def grad_stats(self, batch_size: int, epoch: int) -> tuple[float, float]:
        """(grad_sqr, grad_var) during `epoch`, linear between the two nearest measured batches."""
        key = (batch_size, epoch)
        hit = self._grad_memo.get(key)
        if hit is not None:
            return hit
        lo, up = self._bracket(batch_size)
        lo_sqr, up_sqr = float(self.grad_sqr[lo, epoch]), float(self.grad_sqr[up, epoch])
        lo_var, up_var = float(self.grad_var[lo, epoch]), float(self.grad_var[up, epoch])
        if lo == up:
            value = (lo_sqr, lo_var)
        else:
            b_lo, b_up = self.validation_bsz[lo], self.validation_bsz[up]
            span = b_up - b_lo
            value = (
                ((batch_size - b_lo) * up_sqr + (b_up - batch_size) * lo_sqr) / span,
                ((batch_size - b_lo) * up_var + (b_up - batch_size) * lo_var) / span,
            )
        self._grad_memo[key] = value
        return value

    def step_sync(self, placement: tuple[int, ...], local_bsz: int) -> tuple[float, float]:
        """(step time, sync time) of one iteration at `local_bsz` per replica on `placement`."""
        key = (placement, local_bsz)
        hit = self._tput_memo.get(key)
        if hit is not None:
            return hit
        canon = canonical_placement(placement)
        pid = int("".join(map(str, canon)))
        curve = self.curves.get(pid)
        if curve is not None:
            bsz, step, sync = curve
            if not bsz[0] <= local_bsz <= bsz[-1]:
                # upstream's interp1d raises here too
                raise SimulationError(
                    f"Pollux {self.name}: local batch {local_bsz} outside the measured range "
                    f"{bsz[0]:g}..{bsz[-1]:g} of placement {pid}"
                )
            value = (
                float(np.interp(local_bsz, bsz, step)),
                float(np.interp(local_bsz, bsz, sync)),
            )
        else:
            nodes = min(len(canon), MAX_INTERP_NODES)
            out = self.scatter(np.array([[nodes, sum(canon), local_bsz]], dtype=np.float64))[0]
            value = (float(out[0]), float(out[1]))
            if math.isnan(value[0]) or math.isnan(value[1]):
                raise SimulationError(
                    f"Pollux {self.name}: placement {canon} with local batch {local_bsz} lies "
                    "outside the measured configurations (upstream asserts here)"
                )
        self._tput_memo[key] = value
        return value


def load_application(traces_dir: Path, name: str) -> Application:
    """Read `placements.csv`, `scalability.csv` and each `validation-<B>.csv` of one application."""
    settings = APP_SETTINGS.get(name)
    if settings is None:
        known = ", ".join(sorted(APP_SETTINGS))
        raise ConfigError(f"Pollux has no ground truth for model {name!r}; known: {known}")
    app_dir = traces_dir / name
    tables: dict[int, list[dict[str, str]]] = {}
    for path in app_dir.glob("validation-*.csv"):
        tables[int(path.stem.split("-")[-1])] = _read_rows(path)
    if not tables:
        raise ConfigError(f"no validation-*.csv files in {app_dir} (fetch the upstream data)")
    bszs = tuple(sorted(tables))
    rows = min(len(t) for t in tables.values())
    if settings.max_epochs > rows:
        raise ConfigError(f"{app_dir}: {rows} epochs measured, {settings.max_epochs} needed")

    def column(col: str) -> FloatArray:
        return np.array([[float(r[col]) for r in tables[b][:rows]] for b in bszs])

    placements = _read_rows(app_dir / "placements.csv")
    by_pid: dict[int, list[tuple[float, float, float]]] = {}
    grouped: dict[tuple[int, int, int], list[tuple[float, float]]] = {}
    local_sizes: list[int] = []
    for r in placements:
        text = r["placement"].strip()
        bsz, step, sync = int(r["local_bsz"]), float(r["step_time"]), float(r["sync_time"])
        local_sizes.append(bsz)
        by_pid.setdefault(int(text), []).append((bsz, step, sync))
        key = (len(text), sum(int(c) for c in text), bsz)
        grouped.setdefault(key, []).append((step, sync))
    curves: dict[int, tuple[FloatArray, FloatArray, FloatArray]] = {}
    for pid, pts in by_pid.items():
        arr = np.array(pts, dtype=np.float64)
        order = np.argsort(arr[:, 0], kind="stable")
        arr = arr[order]
        curves[pid] = (arr[:, 0].copy(), arr[:, 1].copy(), arr[:, 2].copy())
    # scattered points: per (nodes, replicas, local batch) means of the placement measurements
    # (sorted by key, as a group-by yields them) followed by the scalability rows in file order
    xs: list[tuple[float, float, float]] = []
    ys: list[tuple[float, float]] = []
    for key in sorted(grouped):
        vals = np.array(grouped[key], dtype=np.float64)
        xs.append((float(key[0]), float(key[1]), float(key[2])))
        ys.append((float(vals[:, 0].mean()), float(vals[:, 1].mean())))
    for r in _read_rows(app_dir / "scalability.csv"):
        xs.append((float(r["num_nodes"]), float(r["num_replicas"]), float(r["local_bsz"])))
        ys.append((float(r["step_time"]), float(r["sync_time"])))
    scatter = LinearNDInterpolator(np.array(xs), np.array(ys))
    min_local = min(local_sizes)
    max_local = settings.max_local_bsz or max(local_sizes)
    max_batch = bszs[-1]
    if max_batch < min_local:
        raise ConfigError(f"{app_dir}: largest batch {max_batch} below smallest local {min_local}")
    return Application(
        name=name,
        max_epochs=settings.max_epochs,
        init_batch_size=bszs[0],
        max_batch_size=max_batch,
        min_local_bsz=min_local,
        max_local_bsz=max_local,
        validation_bsz=bszs,
        progress=column("progress"),
        grad_sqr=column("grad_sqr"),
        grad_var=column("grad_var"),
        curves=curves,
        scatter=scatter,
    )


def load_applications(data_root: Path | str, names: set[str]) -> dict[str, Application]:
    """Load the applications a trace needs from `<data_root>/ElasticFlow-artifact/pollux/...`."""
    if not str(data_root):
        raise ConfigError(
            "the Pollux policy needs SimOptions.data_root (the directory that holds "
            "ElasticFlow-artifact/pollux/pollux_simulator/traces)"
        )
    traces_dir = Path(data_root) / TRACES_SUBDIR
    if not traces_dir.is_dir():
        raise ConfigError(f"Pollux ground truth directory {traces_dir} does not exist")
    return {name: load_application(traces_dir, name) for name in sorted(names)}
