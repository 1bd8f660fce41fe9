"""The one numba decorator of the project (the Pollux kernels, ElasticFlow's leftover pricing)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from numba import njit

Fn = TypeVar("Fn", bound=Callable[..., Any])


def compiled(fn: Fn) -> Fn:
    """numba's nopython compilation, cached beside the module; typed as the Python function."""
    return cast(Fn, njit(cache=True, nogil=True)(fn))


def inlined(fn: Fn) -> Fn:
    """`compiled`, and inlined into its callers by numba (no call, no reference counting of
    the arrays passed): for the small steps of a hot loop."""
    return cast(Fn, njit(cache=True, nogil=True, inline="always")(fn))
