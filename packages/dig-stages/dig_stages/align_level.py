"""The MI evaluator of one pyramid level (CPU): fixed reference samples, pre-binned, against the moving image."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from dig_stages.align_newton import level_matrices, linear_joint, mi_many, smooth_joint

# samples x matrices per vectorised evaluation on the CPU
CHUNK = 1 << 15


@dataclass(frozen=True)
class LevelSampling:
    """How a level picks its reference samples and bins them (shared with the torch path's level)."""

    bins: int
    samples: int
    margin: float = (
        0.0  # level-0 px from the border that every transform of the search box keeps on the image
    )
    everywhere: bool = False  # the reported MI: an even grid over the whole reference, as the gate expects
    # given (x, y) level pixels of the reference: these are the samples (those inside the margin), none chosen
    points: tuple[np.ndarray, np.ndarray] | None = field(default=None, compare=False, repr=False)


def mutual_information(joint: np.ndarray) -> tuple[float, float]:
    """(MI in nats, normalised MI (H(F)+H(M))/H(F,M)) of a joint histogram."""
    tot = joint.sum()
    if tot <= 0:
        return 0.0, 1.0
    p = joint * (1.0 / tot)
    pf = p.sum(axis=1)
    pm = p.sum(axis=0)
    q = p[p > 0]
    hj = -float(np.dot(q, np.log(q)))
    q = pf[pf > 0]
    hf = -float(np.dot(q, np.log(q)))
    q = pm[pm > 0]
    hm = -float(np.dot(q, np.log(q)))
    return hf + hm - hj, (hf + hm) / hj if hj > 0 else 1.0


def inset(shape: tuple[int, int], scale: float, s: LevelSampling) -> tuple[int, int, bool]:
    """(columns, rows) left out at each border of a level, and whether samples still need the inside test."""
    h, w = shape
    # sample only where every transform of the box lands on the moving image: no inside test needed
    mx = min(int(math.ceil(s.margin / scale)) + 1, (w - 1) // 4)
    my = min(int(math.ceil(s.margin / scale)) + 1, (h - 1) // 4)
    if s.everywhere:
        return 0, 0, True
    return mx, my, s.margin / scale + 1 > min(mx, my)


THRESHOLD_SUBSET = 1 << 13  # values of the even subset from which `_kth_largest` estimates its threshold


def _kth_largest(values: np.ndarray, k: int) -> float:
    """About the k-th largest of `values`, from an even subset: a threshold that keeps about k of them
    (a partition of the subset costs a fraction of an exact selection over every pixel)."""
    stride = max(1, values.size // THRESHOLD_SUBSET)
    sub = values[::stride]
    kk = min(sub.size, max(1, round(k * sub.size / values.size)))
    return float(np.partition(sub, sub.size - kk)[sub.size - kk])


def _sample_points(fixed: np.ndarray, scale: float, s: LevelSampling) -> tuple[np.ndarray, np.ndarray, bool]:
    """(x, y) reference pixels of a level's samples, and whether they need the inside test."""
    h, w = fixed.shape
    mx, my, need_inside = inset((h, w), scale, s)
    if s.points is not None:
        px, py = (np.asarray(a).astype(np.intp) for a in s.points)
        inside = (px >= mx) & (px <= w - 1 - mx) & (py >= my) & (py <= h - 1 - my)
        mask = np.zeros(h * w, bool)
        mask[py[inside] * w + px[inside]] = True  # each pixel once, in raster order
        sel = np.flatnonzero(mask)
        return sel % w, sel // w, need_inside
    samples = s.samples
    iw, ih = w - 2 * mx, h - 2 * my
    n = iw * ih
    if s.everywhere and n > samples:
        step = math.sqrt(n / samples)
        gx = np.unique((np.arange(0, iw, step)).astype(np.intp))
        gy = np.unique((np.arange(0, ih, step)).astype(np.intp))
        ys, xs = (a.ravel() for a in np.meshgrid(gy, gx, indexing="ij"))
    elif n <= samples:
        ys, xs = np.mgrid[0:ih, 0:iw]
        xs, ys = xs.ravel(), ys.ravel()
    else:
        # The pixels where the reference changes most carry the alignment: a fraction of the samples
        # are the strongest-gradient pixels, the rest an even grid (keeps every direction constrained).
        # Central differences, as the torch path: |f(x+1) - f(x-1)| leaves the pixel's own noise out
        # of its selection (forward differences pick pixels by their own noise: a sub-pixel bias).
        inner = fixed[my : my + ih, mx : mx + iw]
        gm = np.zeros_like(inner)
        gm[:, 1:-1] += np.abs(inner[:, 2:] - inner[:, :-2])
        gm[1:-1, :] += np.abs(inner[2:, :] - inner[:-2, :])
        k = samples // 2
        keep = gm.ravel() >= _kth_largest(gm.ravel(), k)
        # about samples - k grid points: a fractional step (rounded down per row / column) keeps the count
        step = max(1.0, math.sqrt(n / max(1, samples - k)))
        gy = np.unique(np.arange(0, ih, step).astype(np.intp))
        gx = np.unique(np.arange(0, iw, step).astype(np.intp))
        grid = (gy[:, None] * iw + gx[None, :]).ravel()
        keep[grid] = True
        sel = np.flatnonzero(keep)
        ys, xs = sel // iw, sel % iw
    return xs + mx, ys + my, need_inside


class _Level:
    """One pyramid level: fixed samples (pre-binned) and the moving image, ready for MI evaluations."""

    def __init__(self, fixed: np.ndarray, moving: np.ndarray, scale: float, sampling: LevelSampling):
        bins = sampling.bins
        self.scale = scale
        self.bins = bins
        self.evals = 0
        self.shape = moving.shape
        xs, ys, self.need_inside = _sample_points(fixed, scale, sampling)
        self.xs = xs.astype(np.float32)
        self.ys = ys.astype(np.float32)
        fv = fixed[ys, xs]
        self.fbin = (np.minimum((fv * bins).astype(np.intp), bins - 1) * bins).astype(np.intp)
        self.frow = self.fbin // bins
        # (ux, uy, 1): level-0 reference offsets from the box centre (set by the search for gradients)
        self.u3 = np.zeros((3, 0), np.float32)
        # the moving image pre-scaled to bin units: the interpolated value is the (linear) bin coordinate
        # (padded by a row so a sample on the last pixel never indexes past the end)
        mflat = (np.asarray(moving, np.float32) * np.float32(bins - 1)).reshape(-1)
        self.mflat = np.concatenate([mflat, np.zeros(moving.shape[1] + 2, np.float32)])
        self.nb = bins * bins

    def joints_level(self, lm: np.ndarray) -> np.ndarray:
        """Joint histograms (K, bins, bins) for K level-pixel matrices (K, 2, 3), in one pass."""
        h, w = self.shape
        k = lm.shape[0]
        c32 = lm.astype(np.float32)
        qx = c32[:, 0, 0, None] * self.xs
        qx += c32[:, 0, 1, None] * self.ys
        qx += c32[:, 0, 2, None]
        qy = c32[:, 1, 0, None] * self.xs
        qy += c32[:, 1, 1, None] * self.ys
        qy += c32[:, 1, 2, None]
        ins = None
        if self.need_inside:  # else the margin keeps every sample on the image: no test, no clip
            ins = ((qx >= 0) & (qx <= w - 1) & (qy >= 0) & (qy <= h - 1)).astype(np.float64).ravel()
            np.clip(qx, 0, np.float32(w - 1.001), out=qx)
            np.clip(qy, 0, np.float32(h - 1.001), out=qy)
        xi = qx.astype(np.intp)
        yi = qy.astype(np.intp)
        qx -= xi  # fractions
        qy -= yi
        idx = yi * w
        idx += xi
        f = self.mflat
        a = f[idx]
        b = f[idx + 1]
        b -= a
        b *= qx
        a += b  # top row
        idx += w
        c = f[idx]
        d = f[idx + 1]
        d -= c
        d *= qx
        c += d  # bottom row
        c -= a
        c *= qy
        a += c  # bilinear value in bin units
        # Linear binning on the moving side keeps MI continuous (and differentiable almost everywhere) in
        # the parameters: hard bins make it a staircase on which a local search stalls at ~0.2 px.
        j0 = a.astype(np.intp)
        np.minimum(j0, self.bins - 2, out=j0)
        a -= j0  # weight of bin j0 + 1
        j0 += self.fbin
        if k > 1:
            j0 += (np.arange(k) * self.nb)[:, None]
        j0, a = j0.ravel(), a.ravel()
        self.evals += k
        # j0 <= bins - 2: the last column never receives, so the shift never crosses a row or a histogram
        return linear_joint(j0, a, ins, k * self.nb).reshape(k, self.bins, self.bins)

    def joint(self, m: np.ndarray) -> np.ndarray:
        """Joint histogram for one level-0 matrix (2x3)."""
        return self.joints_level(level_matrices(np.asarray(m)[None], self.scale))[0]

    def mi(self, m: np.ndarray) -> float:
        return mutual_information(self.joint(m))[0]

    def mi_batch(self, mats: np.ndarray) -> np.ndarray:
        """Objective for (K, 2, 3) level-0 matrices: MI of the Parzen-smoothed joint histograms."""
        lm = level_matrices(mats, self.scale)
        # chunks that keep the per-sample arrays cache-sized: one huge pass is slower than several
        step = max(1, CHUNK // max(1, self.xs.size))
        return np.concatenate(
            [mi_many(smooth_joint(self.joints_level(lm[i : i + step]))) for i in range(0, len(lm), step)]
        )
