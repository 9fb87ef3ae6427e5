"""Mutual-information registration under a similarity transform (rotation, x/y scale, shift), coarse to fine."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dig_stages.align_newton import (
    GN_FINE,
    GN_MID,
    GN_TAU,
    GN_TOP,
    gauss_newton,
    level_matrices,
    mi_many,
    smooth_joint,
)

# Every level is sampled: a fixed subset keeps the objective deterministic (smooth for the Newton steps)
# while bounding the cost of one MI evaluation.
DEFAULT_SAMPLES = 1 << 14
COARSE_MIN_DIM = 48  # the auto pyramid stops before the top level would be smaller than this
COARSE_BINS = 32
GATE_SAMPLES = 1 << 16  # samples of the MI reported and gated by min_mi
COARSE_SAMPLE_DIV = 4
NORM_SAMPLES = 1 << 14  # pixels of the percentile range of _normalise
CHUNK = (
    1 << 15
)  # samples x matrices per vectorised evaluation on the CPU  # coarse levels hold a few thousand samples: 64x64 bins would be mostly empty


@dataclass
class AlignParams:
    """Cookbook `data_processing.alignment` / `registration` keys (stage_algorithms.md §2, §3)."""

    rot_range_deg: tuple[float, float, float] = (-1.0, 1.0, 0.1)
    shift_step: float = 2.0
    bins: int = 64
    interp: str = "bilinear"
    no_resize: bool = True
    # auto-derived from the moving vs reference dims when None
    sx_range: tuple[float, float, float] | None = None
    sy_range: tuple[float, float, float] | None = None
    shift_range: float | None = None
    pyr_levels: int | None = None
    min_mi: float | None = None
    samples: int = DEFAULT_SAMPLES
    seed: int = 0
    ignored: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> AlignParams:
        """Build from a cookbook block; unknown keys (e.g. `gpu`) are kept in `ignored` for the metadata."""
        d = dict(d or {})
        known = {k for k in cls.__dataclass_fields__ if k != "ignored"}
        kw: dict[str, Any] = {}
        for k in list(d):
            if k in known:
                v = d.pop(k)
                if k in ("rot_range_deg", "sx_range", "sy_range") and v is not None:
                    v = tuple(float(x) for x in v)
                    if len(v) != 3:
                        raise ValueError(f"align_params.{k}: expected [min, max, step], got {list(v)}")
                kw[k] = v
        if kw.get("interp", "bilinear") not in ("bilinear", "nearest"):
            raise ValueError(f"align_params.interp: expected bilinear or nearest, got {kw['interp']!r}")
        return cls(**kw, ignored=d)


@dataclass
class Transform:
    """Maps reference pixel p to moving pixel q = c_m + R(rot) diag(sx, sy) (p - c_f) + (tx, ty).

    Pixel centres sit at integer coordinates; c_f and c_m are the image centres ((w-1)/2, (h-1)/2).
    """

    rot_deg: float
    sx: float
    sy: float
    tx: float
    ty: float
    ref_center: tuple[float, float]
    mov_center: tuple[float, float]

    def matrix(self) -> np.ndarray:
        """2x3 affine matrix (reference -> moving pixel coordinates)."""
        a = math.radians(self.rot_deg)
        c, s = math.cos(a), math.sin(a)
        lin = np.array([[c * self.sx, -s * self.sy], [s * self.sx, c * self.sy]])
        cf = np.array(self.ref_center)
        off = np.array(self.mov_center) + np.array([self.tx, self.ty]) - lin @ cf
        return np.hstack([lin, off[:, None]])

    def apply(self, pts: np.ndarray) -> np.ndarray:
        """Map (N, 2) reference points (x, y) to moving points."""
        m = self.matrix()
        return np.asarray(pts, float) @ m[:, :2].T + m[:, 2]


@dataclass
class AlignResult:
    """The warped image and what registration found."""

    image: np.ndarray
    transform: Transform
    mi: float
    nmi: float
    passed: bool
    seconds: float
    levels: int
    evaluations: int

    def metadata(self) -> dict[str, Any]:
        t = asdict(self.transform)
        t["matrix"] = self.transform.matrix().round(8).tolist()
        return {
            "transform": t,
            "mi": round(self.mi, 6),
            "nmi": round(self.nmi, 6),
            "passed": self.passed,
            "seconds": round(self.seconds, 4),
            "pyr_levels": self.levels,
            "evaluations": self.evaluations,
        }


def to_gray(img: np.ndarray) -> np.ndarray:
    """Luminance as float32 (Rec. 601 weights; alpha dropped). Elementwise, so no BLAS threading enters."""
    a = np.asarray(img)
    if a.ndim == 3:
        if a.shape[2] >= 3:
            c = a[..., :3].astype(np.float32)
            return (
                c[..., 0] * np.float32(0.299) + c[..., 1] * np.float32(0.587) + c[..., 2] * np.float32(0.114)
            )
        a = a[..., 0]
    return a.astype(np.float32, copy=False)


def _normalise(g: np.ndarray) -> np.ndarray:
    # Robust range so a few hot pixels do not squeeze the histogram into a handful of bins.
    # (from an even subset of about NORM_SAMPLES pixels: a sort of the whole crop costs more than the search)
    k = max(1, math.ceil(math.sqrt(g.size / NORM_SAMPLES)))
    # numpy's linear percentiles from a sort (a vectorised sort beats np.percentile's partition here)
    sub = np.sort(g[::k, ::k], axis=None)
    lo, hi = (float(np.interp(q * (sub.size - 1), np.arange(sub.size), sub)) for q in (0.001, 0.999))
    if hi <= lo:
        hi = lo + 1.0
    a = g - np.float32(lo)
    a *= np.float32(1.0 / (hi - lo))
    return np.clip(a, 0.0, 1.0, out=a).astype(np.float32, copy=False)


def _down2(g: np.ndarray) -> np.ndarray:
    h, w = g.shape[0] // 2 * 2, g.shape[1] // 2 * 2
    g = g[:h, :w]
    return 0.25 * (g[0::2, 0::2] + g[1::2, 0::2] + g[0::2, 1::2] + g[1::2, 1::2])


def _blur3(g: np.ndarray) -> np.ndarray:
    """[1, 2, 1] / 4 binomial blur along both axes (edges repeat)."""
    a = g * np.float32(0.5)
    a[1:] += g[:-1] * np.float32(0.25)
    a[:-1] += g[1:] * np.float32(0.25)
    a[0] += g[0] * np.float32(0.25)
    a[-1] += g[-1] * np.float32(0.25)
    b = a * np.float32(0.5)
    b[:, 1:] += a[:, :-1] * np.float32(0.25)
    b[:, :-1] += a[:, 1:] * np.float32(0.25)
    b[:, 0] += a[:, 0] * np.float32(0.25)
    b[:, -1] += a[:, -1] * np.float32(0.25)
    return b


def _pyramid(g: np.ndarray, levels: int) -> list[np.ndarray]:
    pyr = [g]
    for _ in range(levels - 1):
        pyr.append(_down2(pyr[-1]))
    return pyr


def _sample(
    img: np.ndarray, x: np.ndarray, y: np.ndarray, nearest: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear (or nearest) samples of a 2D image at float coords; returns (values, inside-mask)."""
    h, w = img.shape
    inside = (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
    flat = img.reshape(-1)
    if nearest:
        xi = np.clip(np.rint(x), 0, w - 1).astype(np.intp)
        yi = np.clip(np.rint(y), 0, h - 1).astype(np.intp)
        return flat[yi * w + xi], inside
    xc = np.clip(x, 0, w - 1.000001)
    yc = np.clip(y, 0, h - 1.000001)
    xi = xc.astype(np.intp)
    yi = yc.astype(np.intp)
    fx = (xc - xi).astype(np.float32)
    fy = (yc - yi).astype(np.float32)
    idx = yi * w + xi
    if w == 1 or h == 1:  # degenerate strip: no neighbour to interpolate with
        return flat[idx], inside
    top = flat[idx] + fx * (flat[idx + 1] - flat[idx])
    bot = flat[idx + w] + fx * (flat[idx + w + 1] - flat[idx + w])
    return top + fy * (bot - top), inside


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


@dataclass
class Box:
    """The search box of one registration: start point, bounds, centres (level-0 reference pixels)."""

    x0: np.ndarray  # (rot rad, sx, sy, tx, ty) at the centre of the ranges
    lo: np.ndarray
    hi: np.ndarray
    ref_shape: tuple[int, int]
    mov_shape: tuple[int, int]
    cf: tuple[float, float]
    cm: tuple[float, float]

    def matrices(self, xs: np.ndarray) -> np.ndarray:
        """(B, 5) parameter rows -> (B, 2, 3) matrices, the same formula as Transform.matrix."""
        xs = np.clip(np.atleast_2d(xs), self.lo, self.hi)
        c, s = np.cos(xs[:, 0]), np.sin(xs[:, 0])
        sx, sy = xs[:, 1], xs[:, 2]
        m = np.empty((xs.shape[0], 2, 3))
        m[:, 0, 0], m[:, 0, 1] = c * sx, -s * sy
        m[:, 1, 0], m[:, 1, 1] = s * sx, c * sy
        m[:, 0, 2] = self.cm[0] + xs[:, 3] - (m[:, 0, 0] * self.cf[0] + m[:, 0, 1] * self.cf[1])
        m[:, 1, 2] = self.cm[1] + xs[:, 4] - (m[:, 1, 0] * self.cf[0] + m[:, 1, 1] * self.cf[1])
        return m

    def margin(self) -> float:
        """Level-0 reference px from each border inside which every transform of the box stays on the moving image."""
        hf, wf = self.ref_shape
        hm, wm = self.mov_shape
        verts = np.array(np.meshgrid(*zip(self.lo, self.hi, strict=True), indexing="ij")).reshape(5, -1).T
        m = self.matrices(verts)
        corners = np.array([[0, 0, 1], [wf - 1, 0, 1], [0, hf - 1, 1], [wf - 1, hf - 1, 1]], float)
        q = np.einsum("bij,cj->bci", m, corners)
        over = max(
            float(np.max(-q[..., 0])),
            float(np.max(q[..., 0] - (wm - 1))),
            float(np.max(-q[..., 1])),
            float(np.max(q[..., 1] - (hm - 1))),
            0.0,
        )
        return over / max(1e-6, float(min(self.lo[1], self.lo[2]))) * 1.02 + 1.0


class _Level:
    """One pyramid level: fixed samples (pre-binned) and the moving image, ready for MI evaluations."""

    def __init__(
        self,
        fixed: np.ndarray,
        moving: np.ndarray,
        scale: float,
        bins: int,
        samples: int,
        seed: int,
        margin: float = 0.0,
        everywhere: bool = False,
    ):
        self.scale = scale
        self.bins = bins
        self.evals = 0
        h, w = fixed.shape
        self.shape = moving.shape
        # sample only where every transform of the box lands on the moving image: no inside test needed
        mx = min(int(math.ceil(margin / scale)) + 1, (w - 1) // 4)
        my = min(int(math.ceil(margin / scale)) + 1, (h - 1) // 4)
        self.need_inside = margin / scale + 1 > min(mx, my)
        if everywhere:  # the reported MI: an even grid over the whole reference, as the gate expects
            mx = my = 0
            self.need_inside = True
        iw, ih = w - 2 * mx, h - 2 * my
        n = iw * ih
        if everywhere and n > samples:
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
            top = np.argpartition(gm.ravel(), n - k)[n - k :]
            step = max(1, int(math.sqrt(n / max(1, samples - k))))
            grid = (np.arange(0, ih, step)[:, None] * iw + np.arange(0, iw, step)[None, :]).ravel()
            keep = np.zeros(n, bool)
            keep[top] = True
            keep[grid] = True
            sel = np.flatnonzero(keep)
            ys, xs = sel // iw, sel % iw
        xs, ys = xs + mx, ys + my
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
        n = k * self.nb
        if ins is None:
            upper = np.bincount(j0, weights=a, minlength=n)
            joint = np.bincount(j0, minlength=n) - upper
        else:
            upper = np.bincount(j0, weights=a * ins, minlength=n)
            joint = np.bincount(j0, weights=ins, minlength=n) - upper
        # j0 <= bins - 2: the last column never receives, so the shift never crosses a row or a histogram
        joint[1:] += upper[:-1]
        return joint.reshape(k, self.bins, self.bins)

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


def _grid(r: tuple[float, float, float], min_step: float) -> np.ndarray:
    lo, hi, step = r
    if hi < lo:
        lo, hi = hi, lo
    step = max(abs(step), min_step)
    if step <= 0:
        return np.array([(lo + hi) / 2])
    n = int(math.floor((hi - lo) / step + 1e-9)) + 1
    vals = lo + step * np.arange(n)
    # centre the grid on the range so an even split does not bias one side
    return vals + ((hi - vals[-1]) / 2 if n > 1 else (hi - lo) / 2)


def derive(params: AlignParams, ref_shape: tuple[int, int], mov_shape: tuple[int, int]) -> dict[str, Any]:
    """Fill the auto-derived keys (scale and shift ranges, pyramid levels) from the two image sizes."""
    hf, wf = ref_shape
    hm, wm = mov_shape
    rx, ry = wm / wf, hm / hf
    if not params.no_resize:
        rx = ry = 1.0
    sx = params.sx_range or (rx * 0.97, rx * 1.03, rx * 0.01)
    sy = params.sy_range or (ry * 0.97, ry * 1.03, ry * 0.01)
    shift = params.shift_range if params.shift_range is not None else max(8.0, math.ceil(0.02 * max(hf, wf)))
    levels = params.pyr_levels
    if not levels:
        levels = 1 + max(0, int(math.floor(math.log2(max(1.0, min(hf, wf) / COARSE_MIN_DIM)))))
    levels = max(1, min(int(levels), 1 + int(math.log2(max(2, min(hf, wf, hm, wm) // 8)))))
    return {"sx_range": tuple(sx), "sy_range": tuple(sy), "shift_range": float(shift), "pyr_levels": levels}


def _resize_bilinear(g: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    ys = (np.arange(h) + 0.5) * g.shape[0] / h - 0.5
    xs = (np.arange(w) + 0.5) * g.shape[1] / w - 0.5
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    return _sample(g, xx.ravel(), yy.ravel())[0].reshape(h, w)


def make_box(
    p: AlignParams, d: dict[str, Any], ref_shape: tuple[int, int], mov_shape: tuple[int, int]
) -> Box:
    """The search box from the cookbook ranges (`d` from `derive`)."""
    rot, sxr, syr, shift = p.rot_range_deg, d["sx_range"], d["sy_range"], d["shift_range"]
    x0 = np.array(
        [math.radians((rot[0] + rot[1]) / 2), (sxr[0] + sxr[1]) / 2, (syr[0] + syr[1]) / 2, 0.0, 0.0]
    )
    lo = np.array([math.radians(min(rot[:2])), min(sxr[:2]), min(syr[:2]), -shift, -shift])
    hi = np.array([math.radians(max(rot[:2])), max(sxr[:2]), max(syr[:2]), shift, shift])
    hf, wf = ref_shape
    hm, wm = mov_shape
    return Box(x0, lo, hi, ref_shape, mov_shape, ((wf - 1) / 2, (hf - 1) / 2), ((wm - 1) / 2, (hm - 1) / 2))


# Refinement schedule per level, in level pixels of corner motion: (first step, last step, most sweeps).
TOP_REFINE = (1.0, 0.5, 6)
MID_REFINE = (0.5, 0.5, 2)
FINE_FAST = (0.5, 0.25, 4)
FINE_REFINE = (0.125, 0.0625, 6)


def search(
    box: Box,
    p: AlignParams,
    d: dict[str, Any],
    level: Callable[..., Any],
    batch: int = 1,
) -> tuple[np.ndarray, Any, int]:
    """Coarse-to-fine MI maximisation for `batch` registrations of one shape at once (the torch path's
    search: grids, then parabolic coordinate refinement; the CPU path uses `search_newton`).

    `level(lvl, fast=False)` gives the evaluator of pyramid level `lvl` (`mi_batch((R, 2, 3) level-0
    matrices) -> (R,)`, row r for crop r % batch); `fast` asks for a quarter of the samples.
    Every crop's steps depend on its own MI values only, so a result never depends on the batch it ran in.
    Returns ((B, 5) parameters, the finest evaluator, MI evaluations per crop).
    """
    levels = d["pyr_levels"]
    hf, wf = box.ref_shape
    half_diag = 0.5 * math.hypot(wf, hf)
    x = np.tile(box.x0, (batch, 1))
    evals = 0
    L = None
    for lvl in range(levels - 1, -1, -1):
        s = float(2**lvl)
        L = level(lvl)

        def f(v: np.ndarray, L: Any = L) -> np.ndarray:
            return np.asarray(L.mi_batch(box.matrices(v)), float)

        # one unit moves the reference corners by about one pixel of this level
        units = np.array([s / half_diag, 2 * s / wf, 2 * s / hf, s, s])
        if lvl == levels - 1:
            x, fx, n = _coarse_search(f, x, box, units, p)
            x, fx, m = _refine(f, x, fx, units, *TOP_REFINE, lo=box.lo, hi=box.hi)
        elif lvl > 0:
            fx, n = f(x), 1
            x, fx, m = _refine(f, x, fx, units, *MID_REFINE, lo=box.lo, hi=box.hi)
        else:
            # the larger steps at full resolution need no precision: a quarter of the samples for them
            Lq = level(lvl, fast=True)

            def fq(v: np.ndarray, L: Any = Lq) -> np.ndarray:
                return np.asarray(L.mi_batch(box.matrices(v)), float)

            fx, n = fq(x), 1
            x, fx, m = _refine(fq, x, fx, units, *FINE_FAST, lo=box.lo, hi=box.hi)
            evals += n + m
            fx, n = f(x), 1
            x, fx, m = _refine(f, x, fx, units, *FINE_REFINE, lo=box.lo, hi=box.hi)
        evals += n + m
    return x, L, evals


# rotation / scale grids at the top level only where they span more than ~3 level px (Newton covers less)
GRID_MIN_POINTS = 7


def search_newton(
    box: Box, p: AlignParams, d: dict[str, Any], level: Callable[..., Any]
) -> tuple[np.ndarray, int]:
    """The CPU search: the coarse grids of `search` at the top level, then Gauss-Newton MI ascent per level."""
    levels = d["pyr_levels"]
    hf, wf = box.ref_shape
    half_diag = 0.5 * math.hypot(wf, hf)
    x = box.x0[None].copy()
    evals, tau = 0, GN_TAU
    for lvl in range(levels - 1, -1, -1):
        s = float(2**lvl)
        L = level(lvl)
        units = np.array([s / half_diag, 2 * s / wf, 2 * s / hf, s, s])
        if lvl == levels - 1:

            def f(v: np.ndarray, L: Any = L) -> np.ndarray:
                return np.asarray(L.mi_batch(box.matrices(v)), float)

            x, _, n = _coarse_search(f, x, box, units, p, GRID_MIN_POINTS)
            evals += n
        sched = GN_FINE if lvl == 0 else GN_TOP if lvl == levels - 1 else GN_MID
        xv, _, n, tau = gauss_newton(L, box, x[0], units, sched, min(max(tau, 0.5), GN_TAU))
        x = xv[None]
        evals += n
    return x[0], evals


def register(
    reference: np.ndarray,
    moving: np.ndarray,
    params: AlignParams | dict[str, Any] | None = None,
    level_factory: Callable[..., Any] | None = None,
) -> tuple[Transform, float, float, int, int]:
    """Find the transform mapping reference pixels onto the moving image that maximises MI.

    Returns (transform, MI, NMI, pyramid levels, MI evaluations). `search_newton`: grid search at the top
    pyramid level (shift, then rotation and scale), then quasi-Newton MI ascent at every level to full res.
    `level_factory` swaps the MI evaluator (same signature as `_Level`).
    """
    p = params if isinstance(params, AlignParams) else AlignParams.from_dict(params)
    fixed = _normalise(to_gray(reference))
    mov = _normalise(to_gray(moving))
    d = derive(p, fixed.shape, mov.shape)
    resize = (1.0, 1.0)
    if not p.no_resize and mov.shape != fixed.shape:
        resize = (mov.shape[1] / fixed.shape[1], mov.shape[0] / fixed.shape[0])
        mov = _resize_bilinear(mov, fixed.shape)
    levels = d["pyr_levels"]
    fpyr, mpyr = _pyramid(fixed, levels), _pyramid(mov, levels)
    # a light blur at full resolution damps MI's interpolation artefact (a bias towards whole-pixel shifts)
    fpyr[0], mpyr[0] = _blur3(fpyr[0]), _blur3(mpyr[0])
    box = make_box(p, d, fixed.shape, mov.shape)
    margin = box.margin()
    factory = level_factory or _Level

    def level(lvl: int, fast: bool = False) -> Any:
        bins = p.bins if lvl == 0 else min(p.bins, COARSE_BINS)
        # levels above the finest only carry the search down: a quarter of the samples is plenty there
        n = p.samples if lvl == 0 and not fast else max(1, p.samples // COARSE_SAMPLE_DIV)
        return factory(fpyr[lvl], mpyr[lvl], float(2**lvl), bins, n, p.seed + lvl, margin=margin)

    x, evals = search_newton(box, p, d, level)
    x = np.clip(x, box.lo, box.hi)
    t = Transform(
        math.degrees(x[0]),
        x[1] * resize[0],
        x[2] * resize[1],
        x[3] * resize[0],
        x[4] * resize[1],
        box.cf,
        ((moving.shape[1] - 1) / 2, (moving.shape[0] - 1) / 2),
    )
    mi, nmi = final_mi(fixed, mov, box.matrices(x)[0], p, level_factory)
    return t, mi, nmi, levels, evals + 1


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
    L = (factory or _Level)(fixed, mov, 1.0, p.bins, n, p.seed, everywhere=True)
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


def _coarse_search(
    f: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    box: Box,
    units: np.ndarray,
    p: AlignParams,
    min_points: int = 4,
) -> tuple[np.ndarray, np.ndarray, int]:
    # Shift grid first, then a 1-D grid per rotation / scale where its range spans more than a couple of
    # level pixels (tight ranges are left to the refinement). Steps finer than ~half a level pixel buy nothing.
    lo, hi = box.lo, box.hi
    step = max(float(p.shift_step), units[3])
    txs = _grid((lo[3], hi[3], step), 0)
    tys = _grid((lo[4], hi[4], step), 0)
    b = x.shape[0]

    def pick(cands: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # cands (G, B, 5): all grid points of every crop in one evaluation; the first maximum wins
        vals = f(cands.reshape(-1, 5)).reshape(cands.shape[0], b)
        k = np.argmax(vals, 0)
        return cands[k, np.arange(b)], vals[k, np.arange(b)]

    tt = np.array([(tx, ty) for tx in txs for ty in tys])
    cands = np.repeat(x[None], len(tt), 0)
    cands[:, :, 3:5] = tt[:, None, :]
    x, best = pick(cands)
    n = len(tt)
    grids = (
        np.radians(_grid(p.rot_range_deg, math.degrees(units[0] * 0.5))),
        _grid((lo[1], hi[1], units[1] * 0.5), units[1] * 0.5),
        _grid((lo[2], hi[2], units[2] * 0.5), units[2] * 0.5),
    )
    for i, g in enumerate(grids):
        if g.size < min_points:
            continue
        cands = np.repeat(x[None], len(g) + 1, 0)
        cands[1:, :, i] = g[:, None]  # row 0: the current point, so a grid never makes a crop worse
        x, best = pick(cands)
        n += len(g)
    return x, best, n


def _refine(
    f: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    fx: np.ndarray,
    units: np.ndarray,
    h_start: float,
    h_min: float,
    max_sweeps: int,
    lo: np.ndarray,
    hi: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Coordinate ascent with a parabola through (-h, 0, +h) per parameter; h halves when steps get small.

    Vectorised over crops (rows of x): each row keeps its own step and stops on its own.
    """
    b = x.shape[0]
    h = np.full(b, h_start)
    active = h >= h_min
    n = 0
    for _ in range(max_sweeps):
        if not active.any():
            break
        moved = np.zeros(b)
        for i in range(x.shape[1]):
            d = np.zeros_like(x)
            d[:, i] = units[i] * h
            fpm = f(np.concatenate([x + d, x - d]))
            fp, fm = fpm[:b], fpm[b:]
            n += 2
            curv = fp - 2 * fx + fm
            with np.errstate(divide="ignore", invalid="ignore"):
                t = np.where(
                    curv < 0, np.clip((fm - fp) / (2 * np.where(curv < 0, curv, -1.0)), -2.0, 2.0), 0.0
                )
            use = (curv < 0) & (np.abs(t) > 1e-3) & (np.abs(np.abs(t) - 1) > 1e-3)
            ft = np.full(b, -np.inf)
            if use.any():
                ft = np.where(use, f(x + t[:, None] * d), -np.inf)
                n += 1
            cand_f = np.stack([fx, fp, fm, ft], 1)
            cand_t = np.stack([np.zeros(b), np.ones(b), -np.ones(b), t], 1)
            k = np.argmax(cand_f, 1)
            fb = cand_f[np.arange(b), k]
            tb = cand_t[np.arange(b), k]
            ok = active & (k > 0) & (fb > fx)
            x = np.where(ok[:, None], np.clip(x + tb[:, None] * d, lo, hi), x)
            fx = np.where(ok, fb, fx)
            moved = np.where(ok, np.maximum(moved, np.abs(tb)), moved)
        h = np.where(active & (moved < 0.5), h * 0.5, h)
        active = h >= h_min
    return x, fx, n


def warp(
    moving: np.ndarray, transform: Transform, out_shape: tuple[int, int], interp: str = "bilinear"
) -> np.ndarray:
    """Resample `moving` into the reference frame (edge pixels repeat outside it); keeps dtype and channels.

    Bilinear runs through Pillow's affine transform, one float32 plane per channel (exact bilinear, the
    same pixel-centre convention; the source padded by edge repetition as far as the transform reaches).
    """
    h, w = out_shape
    m = transform.matrix()
    src = np.asarray(moving)
    sh, sw = src.shape[:2]
    planes = [src] if src.ndim == 2 else [src[..., k] for k in range(src.shape[2])]
    if interp == "nearest" or sw == 1 or sh == 1:
        xs = np.arange(w, dtype=np.float64)
        ys = np.arange(h, dtype=np.float64)[:, None]
        xi = np.clip(np.rint(m[0, 0] * xs + (m[0, 1] * ys + m[0, 2])), 0, sw - 1).astype(np.intp)
        yi = np.clip(np.rint(m[1, 0] * xs + (m[1, 1] * ys + m[1, 2])), 0, sh - 1).astype(np.intp)
        out = [pl[yi, xi].astype(np.float32) for pl in planes]
    else:
        out = [_warp_plane(pl, m, (h, w)) for pl in planes]
    res = out[0] if src.ndim == 2 else np.stack(out, axis=-1)
    if np.issubdtype(src.dtype, np.integer):
        info = np.iinfo(src.dtype)
        res = np.clip(np.rint(res), info.min, info.max)
    return res.astype(src.dtype)


def _warp_plane(plane: np.ndarray, m: np.ndarray, out_shape: tuple[int, int], pad: bool = True) -> np.ndarray:
    from PIL import Image

    h, w = out_shape
    sh, sw = plane.shape
    corners = np.array([[0, 0, 1], [w - 1, 0, 1], [0, h - 1, 1], [w - 1, h - 1, 1]], float) @ m.T
    over = max(0.0, -corners.min(axis=0).min(), (corners - [sw - 1, sh - 1]).max())
    pad = int(math.ceil(over)) + 2 if over > 0 and pad else 0
    src = plane.astype(np.float32, copy=False)
    if pad:
        src = np.pad(src, pad, mode="edge")
    # Pillow maps output pixel centre (x + 0.5, y + 0.5) to input (a x' + b y' + c, ...) with centres at +0.5
    a, b, c = m[0]
    d, e, f = m[1]
    coeffs = (a, b, c - 0.5 * (a + b) + pad + 0.5, d, e, f - 0.5 * (d + e) + pad + 0.5)
    img = Image.fromarray(np.ascontiguousarray(src), mode="F")
    return np.asarray(img.transform((w, h), Image.Transform.AFFINE, coeffs, Image.Resampling.BILINEAR))


def align(
    reference: np.ndarray, moving: np.ndarray, params: AlignParams | dict[str, Any] | None = None
) -> AlignResult:
    """Register `moving` to `reference` and warp it into the reference frame (size, pixel grid)."""
    p = params if isinstance(params, AlignParams) else AlignParams.from_dict(params)
    t0 = time.perf_counter()
    t, mi, nmi, levels, evals = register(reference, moving, p)
    img = warp(moving, t, np.asarray(reference).shape[:2], p.interp)
    passed = p.min_mi is None or mi >= p.min_mi
    return AlignResult(img, t, mi, nmi, passed, time.perf_counter() - t0, levels, evals)


def _load(path: str) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB") if im.mode not in ("L", "I;16", "RGB") else im)


def main(argv: list[str]) -> int:
    """`align`: warp --moving onto --reference; writes the image and a JSON with the transform and MI."""
    ap = argparse.ArgumentParser(prog="dig_stages align")
    ap.add_argument("--spec", help="JSON spec: reference, moving, output, metadata, align_params")
    ap.add_argument("--reference")
    ap.add_argument("--moving")
    ap.add_argument("--output")
    ap.add_argument("--metadata", help="default: <output>.json")
    ap.add_argument(
        "--apply-to", nargs="*", default=[], help="more images (e.g. masks) to warp with the same transform"
    )
    ap.add_argument("--interp", choices=("bilinear", "nearest"))
    ap.add_argument("--min-mi", type=float)
    args = ap.parse_args(argv)
    spec: dict[str, Any] = json.loads(Path(args.spec).read_text()) if args.spec else {}
    for k in ("reference", "moving", "output", "metadata"):
        if getattr(args, k):
            spec[k] = getattr(args, k)
    ap_params = dict(spec.get("align_params") or {})
    if args.interp:
        ap_params["interp"] = args.interp
    if args.min_mi is not None:
        ap_params["min_mi"] = args.min_mi
    missing = [k for k in ("reference", "moving", "output") if not spec.get(k)]
    if missing:
        print(f"ERROR: align needs {', '.join(missing)} (spec key or --flag)", file=sys.stderr)
        return 1
    try:
        params = AlignParams.from_dict(ap_params)
    except ValueError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    from PIL import Image

    ref, mov = _load(spec["reference"]), _load(spec["moving"])
    res = align(ref, mov, params)
    meta = res.metadata() | {
        "reference": spec["reference"],
        "moving": spec["moving"],
        "interp": params.interp,
    }
    if params.ignored:
        meta["ignored_params"] = params.ignored
    out = Path(spec["output"])
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(res.image).save(out)
    for extra in args.apply_to:
        # masks/label maps: nearest, so no new label values appear at edges
        warped = warp(_load(extra), res.transform, ref.shape[:2], "nearest")
        Image.fromarray(warped).save(out.parent / f"{Path(extra).stem}_aligned{Path(extra).suffix}")
    Path(spec.get("metadata") or f"{out}.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(
        f"align: rot {res.transform.rot_deg:.4f} deg, scale ({res.transform.sx:.5f}, {res.transform.sy:.5f}), "
        f"shift ({res.transform.tx:.2f}, {res.transform.ty:.2f}) px, MI {res.mi:.4f}, {res.seconds:.2f} s"
    )
    if not res.passed:
        print(
            f"ERROR: MI {res.mi:.4f} below min_mi {params.min_mi}; the image does not match the reference",
            file=sys.stderr,
        )
        return 2
    return 0
