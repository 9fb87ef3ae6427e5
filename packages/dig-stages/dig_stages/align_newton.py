"""Quasi-Newton MI ascent for dig_stages.align (CPU): the exact gradient of the histogram MI estimator, a
Gauss-Newton curvature, BFGS steps; and the histogram helpers both modules share."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

# The level evaluator (`align_level._Level`) and search box (`align_search.Box`) come in as arguments: typed
# Any here, as this module must not import align_search (align_search imports it).
Box = _Level = Any


def smooth_joint(j: np.ndarray) -> np.ndarray:
    """[1, 2, 1] / 4 along both axes (a Parzen window): fewer empty bins, a less noisy MI estimate."""
    a = j * 2.0
    a[..., 1:, :] += j[..., :-1, :]
    a[..., :-1, :] += j[..., 1:, :]
    b = a * 2.0
    b[..., 1:] += a[..., :-1]
    b[..., :-1] += a[..., 1:]
    return b


def linear_joint(j0: np.ndarray, frac: np.ndarray, ins: np.ndarray | None, n: int) -> np.ndarray:
    """Flat joint histogram(s) with linear binning on the moving side: each sample puts 1 - frac into
    bin j0 and frac into j0 + 1 (callers keep j0 <= bins - 2, so j0 + 1 never leaves its row); `ins`
    weights samples by whether they fall inside the moving image (None: all inside)."""
    if ins is None:
        upper = np.bincount(j0, weights=frac, minlength=n)
        joint = np.bincount(j0, minlength=n) - upper
    else:
        upper = np.bincount(j0, weights=frac * ins, minlength=n)
        joint = np.bincount(j0, weights=ins, minlength=n) - upper
    joint[1:] += upper[:-1]
    return joint


def level_matrices(mats: np.ndarray, scale: float) -> np.ndarray:
    """Level-0 matrices (ref px -> moving px) -> the same map between pixels of a pyramid level."""
    c = (scale - 1) / 2
    out = mats.copy()
    out[:, :, 2] = (mats[:, :, 0] * c + mats[:, :, 1] * c + mats[:, :, 2] - c) / scale
    return out


def mi_many(j: np.ndarray) -> np.ndarray:
    """MI (nats) of K joint histograms (K, bins, bins), vectorised."""
    tot = j.sum(axis=(1, 2))
    p = j / np.maximum(tot, 1e-300)[:, None, None]

    def plogp(q: np.ndarray) -> np.ndarray:
        return q * np.log(np.where(q > 0, q, 1.0))

    return plogp(p).sum(axis=(1, 2)) - plogp(p.sum(axis=2)).sum(axis=1) - plogp(p.sum(axis=1)).sum(axis=1)


CURV_STRIDE = 4


def _affine_jacobian(x: np.ndarray) -> np.ndarray:
    """d (a00, a01, tx, a10, a11, ty) / d (rot, sx, sy, tx, ty) for A = R(rot) diag(sx, sy)."""
    c, s = math.cos(x[0]), math.sin(x[0])
    j = np.zeros((6, 5))
    j[[0, 1, 3, 4], 0] = (-s * x[1], -c * x[2], c * x[1], -s * x[2])
    j[0, 1], j[3, 1] = c, s
    j[1, 2], j[4, 2] = -s, c
    j[2, 3] = j[5, 4] = 1.0
    return j


def _level_matrix(box: Box, x: np.ndarray, scale: float) -> list[np.float32]:
    """`level_matrices(box.matrices(x), scale)` for one parameter row, flattened, in float32 scalars (the
    array versions' overhead is a good part of an evaluation's cost at crop sizes)."""
    rot, sx, sy, tx, ty = (float(v) for v in np.clip(x, box.lo, box.hi))
    c, s = math.cos(rot), math.sin(rot)
    a, b, d, e = c * sx, -s * sy, s * sx, c * sy
    cx, cy = box.cf
    ox = box.cm[0] + tx - (a * cx + b * cy)
    oy = box.cm[1] + ty - (d * cx + e * cy)
    k = (scale - 1) / 2
    ox = (a * k + b * k + ox - k) / scale
    oy = (d * k + e * k + oy - k) / scale
    return [np.float32(v) for v in (a, b, ox, d, e, oy)]


def _values_and_slopes(
    L: _Level, box: Box, x: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Bilinear moving values (bin units) at the samples for parameters x, their x/y slopes, inside mask."""
    h, w = L.shape
    m = _level_matrix(box, x, L.scale)
    qx = m[0] * L.xs + m[1] * L.ys + m[2]
    qy = m[3] * L.xs + m[4] * L.ys + m[5]
    ins = None
    if L.need_inside:
        ins = ((qx >= 0) & (qx <= w - 1) & (qy >= 0) & (qy <= h - 1)).astype(np.float32)
        np.clip(qx, 0, np.float32(w - 1.001), out=qx)
        np.clip(qy, 0, np.float32(h - 1.001), out=qy)
    xi, yi = qx.astype(np.intp), qy.astype(np.intp)
    qx -= xi
    qy -= yi
    idx = yi * w
    idx += xi
    f = L.mflat
    v00, v01 = f[idx], f[idx + 1]
    idx += w
    v10, v11 = f[idx], f[idx + 1]
    v01 -= v00
    v11 -= v10
    top = v00 + v01 * qx
    gy = v10 + v11 * qx
    gy -= top  # bottom row - top row
    val = top + gy * qy
    v11 -= v01
    v11 *= qy
    v11 += v01  # x slope
    return val, v11, gy, ins


def mi_newton(
    L: _Level, box: Box, x: np.ndarray, curvature: bool = True
) -> tuple[float, np.ndarray, np.ndarray | None]:
    """MI of the smoothed joint at level-0 parameters x (5,), its exact gradient and a Gauss-Newton curvature.

    The gradient differentiates the estimator itself (linear binning on the moving side, the [1, 2, 1]
    Parzen smoothing, the normalisation), so its zero is the maximum `mi_batch` sees. Returns (MI, gradient,
    curvature or None when not asked for; see `_curvature`).
    """
    val, gx, gy, ins = _values_and_slopes(L, box, x)
    j0 = np.minimum(val.astype(np.intp), L.bins - 2)
    val -= j0  # weight of bin j0 + 1
    j0 += L.fbin
    joint = linear_joint(j0, val, ins, L.nb)
    sj = smooth_joint(joint.reshape(L.bins, L.bins))
    tot = max(float(sj.sum()), 1e-300)
    pj = sj * (1.0 / tot)
    pm = pj.sum(axis=0)
    pf = pj.sum(axis=1)
    lg = np.zeros_like(pj)  # log p(m | f) where p > 0
    np.log(pj / np.where(pm > 0, pm, 1.0), out=lg, where=pj > 0)
    cond = float((pj * lg).sum())
    # MI = sum p log(p / (pf pm)) = sum p log(p / pm) + H(F)
    mi = cond - float(np.dot(pf[pf > 0], np.log(pf[pf > 0])))
    wm = smooth_joint(lg - cond).ravel() / tot
    gs = (wm[j0 + 1] - wm[j0]).astype(np.float32)
    if ins is not None:
        gs *= ins
    jac = _affine_jacobian(x) / L.scale
    # d MI / d (a00, a01, tx, a10, a11, ty) of q0 = c_m + A u + t, u = (ux, uy, 1): U-moments of gs * grad m
    grad = jac.T @ np.concatenate([np.einsum("n,kn->k", gs * gx, L.u3), np.einsum("n,kn->k", gs * gy, L.u3)])
    curv = _curvature(L, gx, gy, ins, pj, jac) / (tot / 16.0) if curvature else None
    return mi, grad, curv


def _curvature(
    L: _Level, gx: np.ndarray, gy: np.ndarray, ins: np.ndarray | None, pj: np.ndarray, jac: np.ndarray
) -> np.ndarray:
    """MI as the mean log-likelihood of the moving bin given the fixed bin: the sum over samples of
    g g^T / var(bin | fixed bin), g the derivative of the moving bin coordinate, centred per fixed bin (the
    histogram re-estimates the conditional mean as x moves). Right in shape, not in scale: the search
    learns the step length. From every CURV_STRIDE-th sample (it only shapes the steps)."""
    row = pj.sum(axis=1)
    jj = np.arange(L.bins, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(row > 0, pj @ jj / row, 0.0)
        var = np.where(row > 0, pj @ (jj * jj) / row - mean * mean, 1.0)
    wb = 1.0 / np.maximum(var, 0.5)
    k = CURV_STRIDE
    sx, sy, u3, fr = gx[::k], gy[::k], L.u3[:, ::k], L.frow[::k]
    g6 = np.concatenate([sx * u3, sy * u3])
    wv = wb.astype(np.float32)[fr]
    if ins is None:
        cnt = np.bincount(fr, minlength=L.bins).astype(np.float64)
    else:
        wv *= ins[::k]
        g6 *= ins[::k]
        cnt = np.bincount(fr, weights=ins[::k], minlength=L.bins)
    # sum_s w (g - mean_b)(g - mean_b)^T = sum_s w g g^T - sum_b w_b n_b mean_b mean_b^T
    sums = np.stack([np.bincount(fr, weights=gk, minlength=L.bins) for gk in g6])  # (6, bins)
    cm = np.where(cnt > 0, wb / np.maximum(cnt, 1e-9), 0.0)
    c6 = np.einsum("kn,ln->kl", g6 * wv, g6).astype(np.float64) - (sums * cm) @ sums.T
    return jac.T @ c6 @ jac * (float(L.xs.size) / max(float(cnt.sum()), 1.0))


# Gauss-Newton schedule per level: (most iterations, stop when no corner moves more than this many level px)
GN_TOP = (6, 0.25)
GN_MID = (5, 0.25)
GN_FINE = (10, 0.01)
GN_TAU = 3.0  # first step length, in units of the Gauss-Newton step
GN_MAX_STEP = 2.0


def _set_offsets(L: _Level, box: Box) -> None:
    c = (L.scale - 1) / 2
    L.u3 = np.stack(
        [
            L.xs * np.float32(L.scale) + np.float32(c - box.cf[0]),
            L.ys * np.float32(L.scale) + np.float32(c - box.cf[1]),
            np.ones_like(L.xs),
        ]
    ).astype(np.float32)


def gauss_newton(
    L: _Level, box: Box, x: np.ndarray, units: np.ndarray, schedule: tuple[int, float], tau: float = 3.0
) -> tuple[np.ndarray, float, int, float]:
    """Quasi-Newton ascent on MI from `mi_newton`'s curvature at the level's start.

    That curvature is right in shape, not in scale (the histogram estimator is blunter than the samples'
    Fisher information): the model starts as curvature / `tau` and BFGS updates from the gradients at the
    two ends of each step correct it. A step that lowers MI is shortened (the model stiffened) and retried.
    `schedule` = (most steps, stop when a step moves no corner by this many level px). Returns
    (parameters, MI, evaluations, the model's scale along the last step relative to the curvature).
    """
    iters, tol = schedule
    _set_offsets(L, box)
    fx, grad, curv = mi_newton(L, box, x)
    assert curv is not None
    curv = curv + 1e-12 * np.trace(curv) * np.eye(5)
    b = curv / tau
    n, scale = 1, tau
    for _ in range(iters):
        try:
            step = np.linalg.solve(b, grad)
        except np.linalg.LinAlgError:
            break
        size = float(np.max(np.abs(step / units)))
        if size > GN_MAX_STEP:  # beyond a couple of level px the local model means little
            step *= GN_MAX_STEP / size
            size = GN_MAX_STEP
        xn = np.clip(x + step, box.lo, box.hi)
        step = xn - x
        fn, gn, _ = mi_newton(L, box, xn, curvature=False)
        n += 1
        y = grad - gn  # = b @ step for a quadratic MI (b models minus the Hessian)
        sy = float(step @ y)
        if sy > 0:
            bs = b @ step
            b = b - np.outer(bs, bs) / float(step @ bs) + np.outer(y, y) / sy
            scale = float(step @ curv @ step) / float(step @ b @ step)
        if fn <= fx:
            b = b * 2.0
            if size < tol:
                break
            continue
        x, fx, grad = xn, fn, gn
        if size < tol:
            break
    return x, fx, n, scale
