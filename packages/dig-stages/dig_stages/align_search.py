"""The search of dig_stages.align: the parameter box, the coarse grids, and the two coarse-to-fine searches
(parabolic coordinate refinement, batched, for the torch path; Gauss-Newton MI ascent for the CPU)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from dig_stages.align_newton import GN_FINE, GN_MID, GN_TAU, GN_TOP, gauss_newton
from dig_stages.align_types import AlignParams, corners

COARSE_MIN_DIM = 48  # the auto pyramid stops before the top level would be smaller than this


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

    def around(self, x: np.ndarray, units: np.ndarray, radius: float) -> Box:
        """The box of the transforms within `radius` units of `x` per parameter (inside this box)."""
        lo = np.maximum(self.lo, x - radius * units)
        hi = np.minimum(self.hi, x + radius * units)
        return Box(x.copy(), lo, hi, self.ref_shape, self.mov_shape, self.cf, self.cm)

    def params(self, m: np.ndarray) -> np.ndarray:
        """The parameter row nearest a 2x3 matrix (the inverse of `matrices` for a similarity with x/y scale;
        for a general affine its rotation-and-scale part, the shear left out)."""
        a = m[:, :2]
        rot = math.atan2(a[1, 0] - a[0, 1], a[0, 0] + a[1, 1])
        c, s = math.cos(rot), math.sin(rot)
        t = m @ np.array([self.cf[0], self.cf[1], 1.0]) - np.array(self.cm)
        return np.array([rot, c * a[0, 0] + s * a[1, 0], c * a[1, 1] - s * a[0, 1], t[0], t[1]])

    def margin(self) -> float:
        """Level-0 reference px from each border inside which every transform of the box stays on the moving image."""
        hm, wm = self.mov_shape
        verts = np.array(np.meshgrid(*zip(self.lo, self.hi, strict=True), indexing="ij")).reshape(5, -1).T
        m = self.matrices(verts)
        q = np.einsum("bij,cj->bci", m, corners(self.ref_shape))
        over = max(
            float(np.max(-q[..., 0])),
            float(np.max(q[..., 0] - (wm - 1))),
            float(np.max(-q[..., 1])),
            float(np.max(q[..., 1] - (hm - 1))),
            0.0,
        )
        return over / max(1e-6, float(min(self.lo[1], self.lo[2]))) * 1.02 + 1.0


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


@dataclass(frozen=True)
class RefineSchedule:
    """Steps of `_refine` in level pixels of corner motion: the first step, the last step, the most sweeps."""

    h_start: float
    h_min: float
    max_sweeps: int


# Refinement schedule per level
TOP_REFINE = RefineSchedule(1.0, 0.5, 6)
MID_REFINE = RefineSchedule(0.5, 0.5, 2)
FINE_FAST = RefineSchedule(0.5, 0.25, 4)
FINE_REFINE = RefineSchedule(0.125, 0.0625, 6)


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
            x, fx, m = _refine(f, x, fx, units, TOP_REFINE, box)
        elif lvl > 0:
            fx, n = f(x), 1
            x, fx, m = _refine(f, x, fx, units, MID_REFINE, box)
        else:
            # the larger steps at full resolution need no precision: a quarter of the samples for them
            Lq = level(lvl, fast=True)

            def fq(v: np.ndarray, L: Any = Lq) -> np.ndarray:
                return np.asarray(L.mi_batch(box.matrices(v)), float)

            fx, n = fq(x), 1
            x, fx, m = _refine(fq, x, fx, units, FINE_FAST, box)
            evals += n + m
            fx, n = f(x), 1
            x, fx, m = _refine(f, x, fx, units, FINE_REFINE, box)
        evals += n + m
    return x, L, evals


# rotation / scale grids at the top level only where they span more than ~3 level px (Newton covers less)
GRID_MIN_POINTS = 7


def search_newton(
    box: Box, p: AlignParams, d: dict[str, Any], level: Callable[..., Any]
) -> tuple[np.ndarray, int, float, Any]:
    """The CPU search: the coarse grids of `search` at the top level, then Gauss-Newton MI ascent per level.
    Returns (parameters, MI evaluations, the last level's step scale for a continuation, the finest level's
    evaluator)."""
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
        tau = min(max(tau, 0.5), GN_TAU)
        if lvl == 0 and levels > 1:
            xv, n, tau, L = _finest(box, x[0], units, tau, level)
        else:
            xv, _, n, tau = gauss_newton(L, box, x[0], units, sched, tau)
            if lvl == 0:  # one level: its grid start was too far off for the inner box; refine there now
                xv, m, tau, L = _finest(box, xv, units, tau, level)
                n += m
        x = xv[None]
        evals += n
    return x[0], evals, tau, L


# The finest level starts within about a pixel of the optimum: its samples reach to the border of the
# region that every transform within FINE_RADIUS px (per parameter) of that start keeps on the moving image,
# not only of the region the whole search box keeps there (the corners carry rotation and scale).
FINE_RADIUS = 1.0


def _finest(
    box: Box, x: np.ndarray, units: np.ndarray, tau: float, level: Callable[..., Any]
) -> tuple[np.ndarray, int, float, Any]:
    """The finest level's ascent inside the box around its start; once more in the whole box if it ends on
    the inner box's edge (the start was further off than FINE_RADIUS).
    Returns (parameters, evaluations, tau, the evaluator of the last ascent)."""
    near = box.around(x, units, FINE_RADIUS)
    L = level(0, box=near)
    xv, _, n, tau_n = gauss_newton(L, near, x, units, GN_FINE, tau)
    edge = ((xv <= near.lo) & (near.lo > box.lo)) | ((xv >= near.hi) & (near.hi < box.hi))
    if not edge.any():
        return xv, n, tau_n, L
    L = level(0, box=box)
    xw, _, m, tau_w = gauss_newton(L, box, xv, units, GN_FINE, tau)
    return xw, n + m, tau_w, L


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
    sched: RefineSchedule,
    box: Box,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Coordinate ascent with a parabola through (-h, 0, +h) per parameter; h halves when steps get small.

    Vectorised over crops (rows of x): each row keeps its own step and stops on its own.
    """
    b = x.shape[0]
    h_min, lo, hi = sched.h_min, box.lo, box.hi
    h = np.full(b, sched.h_start)
    active = h >= h_min
    n = 0
    for _ in range(sched.max_sweeps):
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
