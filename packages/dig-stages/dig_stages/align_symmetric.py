"""The inverse-consistent finish of dig_stages.align (CPU): the finest level's ascent run the other way round.

The forward estimate samples the reference on its pixel grid and interpolates the moving image; where the
moving image has been resampled or its intensities remapped non-linearly, that interpolation biases the
optimum by a few hundredths of a pixel, mostly in scale. Registering the moving image to the reference
(the roles swapped: moving pixels sampled, the reference interpolated) has a bias of its own; the two are
largely independent, and the mean of the forward transform and the inverse of the backward one halves it.
Started from the inverse of the forward estimate, the backward ascent needs only the finest level.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from dig_stages.align_level import LevelSampling
from dig_stages.align_newton import gauss_newton
from dig_stages.align_search import FINE_RADIUS, Box
from dig_stages.align_types import corners

# The backward ascent starts at the forward optimum, a few hundredths of a pixel from its own: fewer steps
# and a coarser stop than the forward one's (GN_FINE) lose nothing once the two are averaged.
GN_BACK = (5, 0.02)
# The two estimates of a sound registration agree to a few hundredths of a pixel at 256 px and more (a few
# tenths at 64 px); where their corners lie further apart than this, one is off and the mean is not taken
AGREE_PX = 1.0


def _inverse(m: np.ndarray) -> np.ndarray:
    return np.linalg.inv(np.vstack([m, [0.0, 0.0, 1.0]]))[:2]


def _reversed(box: Box) -> Box:
    """The search box of the swapped registration: moving -> reference, the inverse ranges."""
    lo = np.array([-box.hi[0], 1 / box.hi[1], 1 / box.hi[2], -box.hi[3], -box.hi[4]])
    hi = np.array([-box.lo[0], 1 / box.lo[1], 1 / box.lo[2], -box.lo[3], -box.lo[4]])
    x0 = np.array([-box.x0[0], 1 / box.x0[1], 1 / box.x0[2], -box.x0[3], -box.x0[4]])
    return Box(x0, lo, hi, box.mov_shape, box.ref_shape, box.cm, box.cf)


def symmetric(
    box: Box,
    x: np.ndarray,
    images: tuple[np.ndarray, np.ndarray],
    forward_level: Any,
    factory: Callable[..., Any],
    tau: float,
) -> tuple[np.ndarray, int]:
    """The forward estimate `x` averaged with the inverse of the backward one; `images` are the finest
    (reference, moving) level, `forward_level` the forward ascent's evaluator there (its samples and bins).
    Returns (parameters inside `box`, MI evaluations)."""
    fixed, moving = images
    back = _reversed(box)
    hm, wm = box.mov_shape
    units = np.array([2 / math.hypot(wm, hm), 2 / wm, 2 / hm, 1.0, 1.0])
    forward = box.matrices(x)[0]
    xb = np.clip(back.params(_inverse(forward)), back.lo, back.hi)
    near = back.around(xb, units, FINE_RADIUS)
    # the backward samples are the moving pixels nearest to where the forward samples land: the same places,
    # chosen on the reference's gradients (the moving image's own strongest gradients can be edited content
    # that the reference lacks, and samples there pull the backward estimate off)
    fx, fy = (np.asarray(a, np.float64) for a in (forward_level.xs, forward_level.ys))
    qx = np.rint(forward[0, 0] * fx + forward[0, 1] * fy + forward[0, 2])
    qy = np.rint(forward[1, 0] * fx + forward[1, 1] * fy + forward[1, 2])
    sampling = LevelSampling(forward_level.bins, qx.size, margin=near.margin(), points=(qx, qy))
    level = factory(moving, fixed, 1.0, sampling)
    xb, _, n, _ = gauss_newton(level, near, xb, units, GN_BACK, tau)
    backward = _inverse(near.matrices(xb)[0])
    if _corner_gap(forward, backward, box.ref_shape) > AGREE_PX:
        return x, n  # the two disagree: one of them is off; the forward one came through the whole search
    return np.clip(box.params(0.5 * (forward + backward)), box.lo, box.hi), n


def _corner_gap(a: np.ndarray, b: np.ndarray, shape: tuple[int, int]) -> float:
    """The largest distance (px) between where two reference -> moving matrices put the reference corners."""
    return float(np.max(np.linalg.norm(corners(shape) @ (a - b).T, axis=1)))
