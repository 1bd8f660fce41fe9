"""Pollux goodput model: step-time model and fit, statistical efficiency, batch choice.

See docs/policies/pollux.md#model.

Vectorised over configurations, and `best_goodput` also over jobs (one parameter set per element),
so a whole search population is scored with a handful of array operations.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import scipy.optimize

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

EPS = 1e-8
"""Tolerance of the ceil operations and lower bound of every fitted parameter."""
BATCH_CANDIDATES = 50
"""Global batch sizes tried per configuration, geometrically spaced."""


class PerfParams(NamedTuple):
    """Step time: T_compute = alpha_c + beta_c * local batch, T_net per link, overlap gamma."""

    alpha_c: float
    beta_c: float
    alpha_n: float
    """inter-node network: constant term"""
    beta_n: float
    """inter-node network: per extra replica beyond two"""
    alpha_r: float
    """intra-node network: constant term"""
    beta_r: float
    gamma: float
    """1 = no overlap of compute and network, 10 ~ perfect overlap"""


def efficiency(
    grad_sqr: FloatArray | float,
    grad_var: FloatArray | float,
    init_batch: FloatArray | float,
    batch_size: FloatArray | float,
) -> FloatArray:
    """Statistical efficiency of `batch_size` relative to `init_batch` (gradient noise scale)."""
    scale = np.asarray(batch_size, dtype=np.float64) / init_batch
    denom = grad_var / scale + grad_sqr
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = np.where(denom > 0, (grad_var + grad_sqr) / denom, 1.0)
    return np.asarray(gain / scale, dtype=np.float64)


def _network_time(
    p: FloatArray, nodes: FloatArray | IntArray, replicas: FloatArray | IntArray
) -> FloatArray:
    """Network time; `p` holds the 7 parameters on its last axis (broadcast against nodes)."""
    inter = nodes > 1
    intra = replicas > 1
    alpha = np.where(inter, p[..., 2], np.where(intra, p[..., 4], EPS))
    beta = np.where(inter, p[..., 3], np.where(intra, p[..., 5], EPS))
    return np.asarray(alpha + beta * np.maximum(replicas - 2, EPS), dtype=np.float64)


def _geomspace(start: FloatArray, stop: FloatArray, num: int) -> FloatArray:
    """`np.geomspace(start, stop, num)` for positive (K,) arrays, same arithmetic, less overhead."""
    log_start = np.log10(start)
    delta = np.log10(stop) - log_start
    steps = np.arange(num, dtype=np.float64)[:, None]
    step = delta / (num - 1)
    # numpy's linspace divides first when any step underflows to 0 (equal ends)
    y = steps / (num - 1) * delta if np.any(step == 0) else steps * step
    y += log_start
    y[-1] = log_start + delta
    out = np.power(10.0, y)
    out[0] = start
    out[-1] = stop
    return out


def best_goodput(
    params: FloatArray,
    grad: FloatArray,
    init_batch: FloatArray,
    max_batch: FloatArray,
    atomic_range: tuple[FloatArray, FloatArray],
    nodes: FloatArray | IntArray,
    replicas: FloatArray | IntArray,
) -> tuple[FloatArray, IntArray, IntArray]:
    """Best (goodput, atomic batch, accumulation steps) per element, gradient accumulation allowed.

    Shapes: params (K, 7), grad (K, 2) = (sqr, var), the rest (K,). Tries 50 global batches between
    max(init batch, min atomic x replicas) and the max batch; invalid atomic batches score 0.
    """
    nodes_f = np.asarray(nodes, dtype=np.float64)
    reps = np.asarray(replicas, dtype=np.float64)
    min_atomic, max_atomic = atomic_range
    start = np.maximum(init_batch, min_atomic * reps)
    batch = _geomspace(start, np.broadcast_to(max_batch, start.shape), BATCH_CANDIDATES)
    local = batch / reps
    accum = np.ceil(local / max_atomic - EPS) - 1
    # one replica with a batch above the initial one accumulates at least once: its gradient
    # statistics would otherwise come from a single micro-batch
    accum = np.where((reps == 1) & (local > init_batch + EPS), np.maximum(accum, 1), accum)
    accum_i = accum.astype(np.int64)
    atomic = np.ceil(local / (accum_i + 1) - EPS).astype(np.int64)
    total_batch = reps * atomic * (accum_i + 1)
    accum_time = params[:, 0] + params[:, 1] * atomic
    net_time = _network_time(params, nodes_f, reps)
    gamma = params[:, 6]
    optim_time = np.exp(np.log(accum_time**gamma + net_time**gamma) / gamma)
    tput = total_batch / (accum_i * accum_time + optim_time)
    good = tput * efficiency(grad[:, 0], grad[:, 1], init_batch, total_batch)
    good = np.where((min_atomic <= atomic) & (atomic <= max_atomic), good, 0.0)
    best = np.argmax(good, axis=0)
    cols = np.arange(good.shape[1])
    return good[best, cols], atomic[best, cols], accum_i[best, cols]


def best_goodput_one(
    params: PerfParams,
    grad: tuple[float, float],
    init_batch: int,
    max_batch: int,
    atomic_range: tuple[int, int],
    nodes: float,
    replicas: float,
) -> tuple[float, int, int]:
    """Scalar convenience wrapper of `best_goodput`."""
    good, atomic, accum = best_goodput(
        np.array([params], dtype=np.float64),
        np.array([grad], dtype=np.float64),
        np.array([init_batch], dtype=np.float64),
        np.array([max_batch], dtype=np.float64),
        (np.array([atomic_range[0]], dtype=np.float64), np.array([atomic_range[1]], np.float64)),
        np.array([nodes], dtype=np.float64),
        np.array([replicas], dtype=np.float64),
    )
    return float(good[0]), int(atomic[0]), int(accum[0])


def _objective(
    x: FloatArray,
    atomic: FloatArray,
    log_accum: FloatArray,
    log_step: FloatArray,
    link: IntArray,
    retro: FloatArray,
) -> tuple[float, FloatArray]:
    """RMS log error of compute and step time plus the two regularisers, with its gradient.

    `link` is 0 for inter-node, 1 for intra-node and 2 for single-replica observations; `retro`
    is max(replicas - 2, 1e-8).
    """
    ac, bc, an, bn, ar, br, g = (float(v) for v in x)
    n = len(atomic)
    comp = ac + bc * atomic
    net = np.array([an, ar, EPS])[link] + np.array([bn, br, EPS])[link] * retro
    comp_g = comp**g
    net_g = net**g
    total = comp_g + net_g
    log_comp = np.log(comp)
    log_net = np.log(net)
    log_opt = np.log(total) / g
    e1 = log_comp - log_accum
    e2 = log_opt - log_step
    err1 = math.sqrt(float(e1 @ e1) / n)
    err2 = math.sqrt(float(e2 @ e2) / n)
    ratio_n = bn / an
    ratio_r = br / ar
    value = err1 + err2 + 1e-3 * (g - 1.0) ** 2 + 1e-2 * (ratio_n**2 + ratio_r**2)
    # d err / d prediction = e / (n * err); an exact fit (err = 0) contributes no gradient
    w1 = e1 / (n * err1) if err1 > 0 else np.zeros(n)
    w2 = e2 / (n * err2) if err2 > 0 else np.zeros(n)
    d_comp = w1 / comp + w2 * comp_g / (comp * total)
    d_net = w2 * net_g / (net * total)
    d_alpha = np.bincount(link, weights=d_net, minlength=3)
    d_beta = np.bincount(link, weights=d_net * retro, minlength=3)
    d_g = float(w2 @ ((comp_g * log_comp + net_g * log_net) / total - log_opt)) / g
    grad = np.array(
        [
            float(d_comp.sum()),
            float(d_comp @ atomic),
            d_alpha[0] - 2e-2 * bn**2 / an**3,
            d_beta[0] + 2e-2 * bn / an**2,
            d_alpha[1] - 2e-2 * br**2 / ar**3,
            d_beta[1] + 2e-2 * br / ar**2,
            d_g + 2e-3 * (g - 1.0),
        ]
    )
    return value, grad


def fit_perf_params(
    nodes: IntArray,
    replicas: IntArray,
    atomic: IntArray,
    accum_time: FloatArray,
    step_time: FloatArray,
) -> PerfParams:
    """Fit the step-time model to observed configurations with L-BFGS-B (bounded, as upstream).

    Parameters that the observations cannot identify are pinned: alpha_c when only one atomic
    batch was seen (half the mean compute time), the inter-node pair without multi-node runs, the
    intra-node pair without single-node multi-replica runs, both betas without runs above two
    replicas.
    """
    x0 = [1e-1, 1e-2] * 3 + [1.0 + 1e-3]
    lower = [EPS, EPS] * 3 + [1.0]
    upper = [math.inf, math.inf] * 3 + [10.0]
    if len(np.unique(atomic)) == 1:
        x0[0] = lower[0] = upper[0] = float(np.mean(accum_time)) / 2
    if not np.any(nodes > 1):
        x0[2] = upper[2] = lower[2]
        x0[3] = upper[3] = lower[3]
    if not np.any((nodes == 1) & (replicas > 1)):
        x0[4] = upper[4] = lower[4]
        x0[5] = upper[5] = lower[5]
    if not np.any(replicas > 2):
        x0[3] = upper[3] = lower[3]
        x0[5] = upper[5] = lower[5]
    link = np.where(nodes > 1, 0, np.where(replicas > 1, 1, 2)).astype(np.intp)
    args = (
        atomic.astype(np.float64),
        np.log(accum_time),
        np.log(step_time),
        link,
        np.maximum(replicas - 2, EPS).astype(np.float64),
    )
    result = scipy.optimize.minimize(
        _objective,
        np.array(x0),
        args=args,
        jac=True,
        method="L-BFGS-B",
        bounds=scipy.optimize.Bounds(lower, upper, keep_feasible=True),
    )
    fitted = [float(v) for v in result.x]
    if not np.any(nodes > 1):
        # prior: the inter-node link is no faster than the intra-node one
        fitted[2] = max(fitted[2], fitted[4] * 1.1)
        fitted[3] = max(fitted[3], fitted[5] * 1.1)
    return PerfParams(*fitted)
