"""The `min_mi` gate of dig_stages.align: the MI reported at the result, on a fixed grid over the reference."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from dig_stages.align_level import LevelSampling, _Level, mutual_information
from dig_stages.align_newton import linear_joint
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


def _inside(mk: np.ndarray, grid: tuple[int, int], mov_shape: tuple[int, int]) -> np.ndarray | None:
    """Which grid points (y, x) map onto the moving image (None: all of them). Per grid row the inside points
    form one run of x (the image is convex): its ends come from the four half-planes, no per-point test."""
    gh, gw = grid
    hm, wm = mov_shape
    ys = np.arange(gh, dtype=np.float64)
    lo = np.zeros(gh)
    hi = np.full(gh, gw - 1.0)
    for row, top in ((0, wm - 1), (1, hm - 1)):
        a, off = mk[row, 0], mk[row, 1] * ys + mk[row, 2]  # q = a x + off along the row
        if abs(a) * gw < 1e-9:  # q constant along the row (to far below a pixel)
            hi = np.where((off < 0) | (off > top), -1.0, hi)
            continue
        ends = np.sort(np.stack([-off / a, (top - off) / a]), axis=0)
        lo, hi = np.maximum(lo, ends[0]), np.minimum(hi, ends[1])
    lo, hi = np.ceil(lo - 1e-9), np.floor(hi + 1e-9)
    if lo.max() <= 0 and hi.min() >= gw - 1:
        return None
    xs = np.arange(gw, dtype=np.float64)
    return ((xs >= lo[:, None]) & (xs <= hi[:, None])).ravel()


def _gate_joint(fixed: np.ndarray, mov: np.ndarray, m: np.ndarray, bins: int, k: int) -> np.ndarray:
    """`_Level(everywhere=True).joint` for a regular grid of step k: the moving image resampled by Pillow."""
    f = fixed[::k, ::k]
    mk = m @ np.diag([float(k), float(k), 1.0])  # grid index -> moving pixel
    val = (_warp_plane(mov, mk, f.shape, pad=False) * np.float32(bins - 1)).ravel()
    fbin = np.minimum((f.ravel() * bins).astype(np.intp), bins - 1)
    ins = _inside(mk, f.shape, mov.shape)
    if ins is not None:
        val, fbin = val[ins], fbin[ins]
    j0 = np.clip(val.astype(np.intp), 0, bins - 2)
    val -= j0  # weight of bin j0 + 1
    j0 += fbin * bins
    return linear_joint(j0, val, None, bins * bins).reshape(bins, bins)
