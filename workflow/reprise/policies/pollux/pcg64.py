"""numpy's PCG64 bit generator and the Generator methods the search uses, compiled and inlined.

See docs/policies/pollux.md#the-compiled-search.

A numba kernel can draw from a numpy Generator directly, but each draw is then an indirect call
into numpy (about twice what numpy's own fill loop costs per value), and the allocation search
draws 15,000-160,000 values per generation. Here the generator's state is copied into a small
array (`state_of`), advanced by compiled code with numpy's algorithms, and written back
(`store`): PCG64's 128-bit LCG step and XSL-RR output, the 53-bit double, the buffered 32-bit
half, numpy's masked rejection for `shuffle` and Lemire's method for `integers`. The values and
the final state are numpy's (tests/test_pollux_kernels.py compares them).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from reprise.jit import compiled

State = npt.NDArray[np.uint64]
"""[state high, state low, increment high, increment low, has a buffered half, the half]"""

_MASK64 = (1 << 64) - 1
_MULT_HI = np.uint64(2549297995355413924)
_MULT_LO = np.uint64(4865540595714422341)
_LOW32 = np.uint64(0xFFFFFFFF)
_SHIFT32 = np.uint64(32)
_DOUBLE_UNIT = 1.0 / 9007199254740992.0


def is_pcg64(rng: np.random.Generator) -> bool:
    return isinstance(rng.bit_generator, np.random.PCG64)


def state_of(rng: np.random.Generator) -> State:
    """A copy of a PCG64 generator's state, for the compiled functions below."""
    raw = rng.bit_generator.state
    lcg, inc = raw["state"]["state"], raw["state"]["inc"]
    return np.array(
        [lcg >> 64, lcg & _MASK64, inc >> 64, inc & _MASK64, raw["has_uint32"], raw["uinteger"]],
        dtype=np.uint64,
    )


def store(rng: np.random.Generator, state: State) -> None:
    """Put a state advanced by the compiled functions back into the generator."""
    hi, lo, inc_hi, inc_lo, has, half = (int(v) for v in state)
    rng.bit_generator.state = {
        "bit_generator": "PCG64",
        "state": {"state": (hi << 64) | lo, "inc": (inc_hi << 64) | inc_lo},
        "has_uint32": has,
        "uinteger": half,
    }


@compiled
def _mulhi(a: Any, b: Any) -> Any:
    """The high 64 bits of the 128-bit product of two 64-bit numbers."""
    a_lo = a & _LOW32
    a_hi = a >> _SHIFT32
    b_lo = b & _LOW32
    b_hi = b >> _SHIFT32
    ll = a_lo * b_lo
    lh = a_lo * b_hi
    hl = a_hi * b_lo
    mid = (ll >> _SHIFT32) + (lh & _LOW32) + (hl & _LOW32)
    return a_hi * b_hi + (lh >> _SHIFT32) + (hl >> _SHIFT32) + (mid >> _SHIFT32)


@compiled
def next_uint64(st: Any) -> Any:
    """One LCG step (state = state * multiplier + increment), then XSL-RR of the new state."""
    s_hi = st[0]
    s_lo = st[1]
    lo = s_lo * _MULT_LO
    hi = _mulhi(s_lo, _MULT_LO) + s_lo * _MULT_HI + s_hi * _MULT_LO
    new_lo = lo + st[3]
    carry = np.uint64(1) if new_lo < lo else np.uint64(0)
    new_hi = hi + st[2] + carry
    st[0] = new_hi
    st[1] = new_lo
    rot = new_hi >> np.uint64(58)
    x = new_hi ^ new_lo
    return (x >> rot) | (x << ((np.uint64(64) - rot) & np.uint64(63)))


@compiled
def next_double(st: Any) -> float:
    return float(next_uint64(st) >> np.uint64(11)) * _DOUBLE_UNIT


@compiled
def next_uint32(st: Any) -> Any:
    """32 bits: the high half kept from the previous 64-bit draw, else a new draw's low half."""
    if st[4]:
        st[4] = np.uint64(0)
        return st[5]
    value = next_uint64(st)
    st[4] = np.uint64(1)
    st[5] = value >> _SHIFT32
    return value & _LOW32


@compiled
def random_interval(st: Any, top: int) -> Any:
    """Uniform in 0..top by masked rejection (numpy's `random_interval`)."""
    if top == 0:
        return np.int64(0)
    limit = np.uint64(top)
    mask = limit
    for shift in (1, 2, 4, 8, 16, 32):
        mask |= mask >> np.uint64(shift)
    if limit <= _LOW32:
        value = next_uint32(st) & mask
        while value > limit:
            value = next_uint32(st) & mask
    else:
        value = next_uint64(st) & mask
        while value > limit:
            value = next_uint64(st) & mask
    return np.int64(value)


@compiled
def shuffle(st: Any, values: Any) -> None:
    """In place, as `Generator.shuffle` does a 1-d array (Fisher-Yates from the end)."""
    for i in range(len(values) - 1, 0, -1):
        j = random_interval(st, i)
        values[i], values[j] = values[j], values[i]


@compiled
def integers(st: Any, high: int, size: int) -> Any:
    """`Generator.integers(high, size=size)` (int64) for 0 < high <= 2**32: Lemire's method."""
    out = np.zeros(size, dtype=np.int64)
    if high <= 1:
        return out
    span = np.uint64(high)
    threshold = (np.uint64(0xFFFFFFFF) - (span - np.uint64(1))) % span
    for i in range(size):
        m = next_uint32(st) * span
        leftover = m & _LOW32
        if leftover < span:
            while leftover < threshold:
                m = next_uint32(st) * span
                leftover = m & _LOW32
        out[i] = np.int64(m >> _SHIFT32)
    return out


@compiled
def doubles(st: Any, size: int) -> Any:
    out = np.empty(size)
    for i in range(size):
        out[i] = next_double(st)
    return out
