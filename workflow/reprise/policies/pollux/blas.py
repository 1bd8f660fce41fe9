"""Keep OpenBLAS on one thread while Pollux runs (its L-BFGS-B fits are tiny BLAS calls).

Measured here: with OpenBLAS's default thread pool one fit of the step-time model takes ~20x
longer on a busy machine, because every small BLAS call wakes the pool. `threadpoolctl` is used
when installed; otherwise the OpenBLAS copies loaded into the process are asked directly.
"""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Callable, Iterator

_LOCAL_SETTER = "openblas_set_num_threads_local"
"""Per-thread limit (OpenBLAS >= 0.3.27); returns the previous value."""
_GLOBAL_PAIRS = (
    ("scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"),
    ("scipy_openblas_set_num_threads", "scipy_openblas_get_num_threads"),
    ("openblas_set_num_threads64_", "openblas_get_num_threads64_"),
    ("openblas_set_num_threads", "openblas_get_num_threads"),
)


def _loaded_openblas() -> list[ctypes.CDLL]:
    try:
        with open("/proc/self/maps") as fh:
            lines = fh.read().splitlines()
    except OSError:  # not Linux: leave the thread pools alone
        return []
    paths = sorted({ln.split()[-1] for ln in lines if "openblas" in ln and ".so" in ln})
    libs: list[ctypes.CDLL] = []
    for path in paths:
        try:
            libs.append(ctypes.CDLL(path))  # already mapped: this only takes a reference
        except OSError:
            continue
    return libs


def _limit_one(lib: ctypes.CDLL) -> Callable[[], None] | None:
    """Set `lib` to one thread; return how to undo it (None if `lib` offers no setter)."""
    local = getattr(lib, _LOCAL_SETTER, None)
    if local is not None:
        set_local = local
        set_local.restype = ctypes.c_int
        set_local.argtypes = [ctypes.c_int]
        previous = int(set_local(1))
        return lambda: set_local(previous)
    for set_name, get_name in _GLOBAL_PAIRS:
        setter = getattr(lib, set_name, None)
        getter = getattr(lib, get_name, None)
        if setter is None or getter is None:
            continue
        setter.argtypes = [ctypes.c_int]
        getter.restype = ctypes.c_int
        old = int(getter())
        setter(1)
        return lambda: setter(old)
    return None


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Run the body with BLAS limited to one thread, restoring the previous limits after."""
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-not-found,import-untyped,unused-ignore]
    except ImportError:
        threadpool_limits = None
    if threadpool_limits is not None:
        with threadpool_limits(limits=1, user_api="blas"):
            yield
        return
    undo = [u for u in (_limit_one(lib) for lib in _loaded_openblas()) if u is not None]
    try:
        yield
    finally:
        for restore in reversed(undo):
            restore()
