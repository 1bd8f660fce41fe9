"""AdaptDL 0.2.11 from PyPI on the locked torch and numpy: a checked import and its checkpoints."""

from __future__ import annotations

import importlib
import time
from importlib import metadata
from typing import Any

from reprise.errors import ConfigError

ADAPTDL_VERSION = "0.2.11"
# The newest releases that still carry what adaptdl 0.2.11 calls (see the package docstring).
SETUPTOOLS_PIN = "81.0.0"
SEMVER_PIN = "2.13.0"
INSTALL_HINT = "install the adaptdl extra: pip install -e '.[adaptdl]'"


def load_adaptdl_torch() -> Any:
    """`adaptdl.torch`, or a ConfigError naming the missing or too-new package and the pin."""
    try:
        module = importlib.import_module("adaptdl.torch")
    except ModuleNotFoundError as exc:
        if exc.name == "pkg_resources":
            raise ConfigError(
                "adaptdl.torch imports pkg_resources, which setuptools removed in version 82 "
                f"(this environment has setuptools {_version('setuptools')}): pin "
                f"setuptools=={SETUPTOOLS_PIN}, or {INSTALL_HINT}"
            ) from None
        if exc.name is not None and exc.name.split(".")[0] == "adaptdl":
            raise ConfigError(f"adaptdl is not installed: {INSTALL_HINT}") from None
        raise
    semver = importlib.import_module("semver")
    if not hasattr(semver.VersionInfo, "isvalid"):
        raise ConfigError(
            f"semver {_version('semver')} has no VersionInfo.isvalid, which "
            f"adaptdl.torch.init_process_group calls: pin semver=={SEMVER_PIN}, or {INSTALL_HINT}"
        )
    return module


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "(not installed)"


def checkpoint_globals() -> list[Any]:
    """The numpy types in AdaptDL's model checkpoint (its gain and learning-rate factor are numpy
    scalars saved beside the state dicts), for torch.load's weights-only unpickler."""
    import numpy as np

    multiarray = importlib.import_module("numpy._core.multiarray")
    dtype_classes = {type(np.dtype(t)) for t in (np.float64, np.float32, np.int64, np.bool_)}
    return [
        multiarray.scalar,
        multiarray._reconstruct,
        np.ndarray,
        np.dtype,
        *sorted(dtype_classes, key=lambda c: c.__name__),
    ]


def allow_checkpoint_globals() -> None:
    """Let AdaptDL's checkpoint load under torch >= 2.6 without turning weights_only off."""
    import torch

    torch.serialization.add_safe_globals(checkpoint_globals())


HINTS_EVERY_S = 30.0
"""How often AdaptDL's rank 0 reports its hints on its own (adaptdl.torch._metrics)."""


def hint_reporter(every_s: float) -> Any:
    """A callable for rank 0 to call after each step that fits and reports AdaptDL's hints when
    `every_s` passed since the last report, or None where AdaptDL's own 30 s cadence is wanted.

    AdaptDL 0.2.11 reports every 30 s from inside its step profiler and has no setting for it;
    a run on a compressed clock (minutes for hours) calls the same two functions AdaptDL calls
    (`_fit_perf_params`, `_report_sched_hints`) more often.
    """
    if every_s >= HINTS_EVERY_S:
        return None
    metrics = importlib.import_module("adaptdl.torch._metrics")
    for name in ("_fit_perf_params", "_report_sched_hints"):
        if not callable(getattr(metrics, name, None)):
            raise ConfigError(
                f"adaptdl {_version('adaptdl')} has no adaptdl.torch._metrics.{name}: "
                f"--hints-every-s needs adaptdl=={ADAPTDL_VERSION}"
            )
    last = [time.monotonic()]

    def report() -> None:
        if time.monotonic() - last[0] < every_s:
            return
        try:
            metrics._fit_perf_params()
        except (ValueError, AssertionError):
            return  # no optimizer step profiled yet: nothing to fit
        metrics._report_sched_hints()
        last[0] = time.monotonic()

    return report
