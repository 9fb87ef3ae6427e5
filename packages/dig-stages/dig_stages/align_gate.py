"""The `min_mi` gate of dig_stages.align: the MI reported at the result, on a fixed grid over the reference."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from dig_stages.align_level import LevelSampling, _Level, mutual_information
from dig_stages.align_types import AlignParams
from dig_stages.align_warp import _warp_plane

GATE_SAMPLES = 1 << 16  # samples of the MI reported and gated by min_mi


def final_mi(
    fixed: np.ndarray,
    mov: np.ndarray,
    m: np.ndarray,
    p: AlignParams,
    factory: Callable[..., Any] | None = None,
) -> tuple[float, float]:
    """(MI, NMI) at the result, for the `min_mi` gate: unblurred full-resolution images, `bins` bins, an even
    grid over the whole reference (outside pixels left out), linear binning on the moving side."""
    # MI estimates are biased upwards by about bins^2 / (2 samples): a fixed, large count keeps the gate's
    # threshold meaning the same whatever the search used
    n = max(p.samples, GATE_SAMPLES)
    k = _gate_step(fixed.shape, n)
    if factory is None and k:
        return mutual_information(_gate_joint(fixed, mov, m, p.bins, k))
    L = (factory or _Level)(fixed, mov, 1.0, LevelSampling(p.bins, n, everywhere=True))
    return mutual_information(np.asarray(L.joint(m)))


def _gate_step(shape: tuple[int, int], samples: int) -> int:
    """The integer step of `_Level`'s everywhere-grid when that grid is regular (0 when it is not)."""
    h, w = shape
    if h * w <= samples:
        return 1
    step = math.sqrt(h * w / samples)
    k = int(round(step))
    regular = all(
        np.array_equal(np.unique(np.arange(0, d, step).astype(np.intp)), np.arange(0, d, k)) for d in (h, w)
    )
    return k if regular else 0


def _gate_joint(fixed: np.ndarray, mov: np.ndarray, m: np.ndarray, bins: int, k: int) -> np.ndarray:
    """`_Level(everywhere=True).joint` for a regular grid of step k: the moving image resampled by Pillow."""
    f = fixed[::k, ::k]
    gh, gw = f.shape
    mk = m @ np.diag([float(k), float(k), 1.0])  # grid index -> moving pixel
    val = _warp_plane(mov, mk, (gh, gw), pad=False) * np.float32(bins - 1)
    xs = np.arange(gw, dtype=np.float64)
    ys = np.arange(gh, dtype=np.float64)[:, None]
    qx = mk[0, 0] * xs + (mk[0, 1] * ys + mk[0, 2])
    qy = mk[1, 0] * xs + (mk[1, 1] * ys + mk[1, 2])
    hm, wm = mov.shape
    ins = ((qx >= 0) & (qx <= wm - 1) & (qy >= 0) & (qy <= hm - 1)).astype(np.float64).ravel()
    val = val.ravel()
    j0 = np.clip(val.astype(np.intp), 0, bins - 2)
    a = val - j0
    j0 += np.minimum((f.ravel() * bins).astype(np.intp), bins - 1) * bins
    upper = np.bincount(j0, weights=a * ins, minlength=bins * bins)
    joint = np.bincount(j0, weights=ins, minlength=bins * bins) - upper
    joint[1:] += upper[:-1]
    return joint.reshape(bins, bins)
