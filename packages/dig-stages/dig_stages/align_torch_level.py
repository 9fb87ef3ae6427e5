"""The torch level of dig_stages.align_torch: B same-shaped crops' samples, MI and image preparation on the GPU.

torch itself is imported by `load_torch` (align_torch.available), never at import time: pods without it run
the numpy path.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np

from dig_stages.align_level import LevelSampling, inset, mutual_information
from dig_stages.align_newton import level_matrices

torch: Any = None  # imported by the first load_torch() call: optional, and a second or more of start-up
_IMPORT = threading.Lock()
_tried = False

FIX = 1 << 20  # fixed-point unit of the bin weights: integer histograms sum exactly, in any order
ENT = float(1 << 40)  # fixed-point unit of the entropy terms, summed as integers for the same reason


def load_torch() -> Any:
    """The torch module, imported on the first call (None when it is not installed)."""
    global torch, _tried
    with _IMPORT:
        if not _tried:
            _tried = True
            try:
                import torch as _torch
            except ImportError:  # pragma: no cover - depends on the machine
                _torch = None
            torch = _torch
    return torch


def _entropy_terms(j: Any) -> Any:
    """sum p log p of the joint (R, n, n) minus those of its two marginals, per row, in one pass.

    p log p is summed as fixed-point integers: the sum is exact, so no reduction order (which depends on the
    batch's shape on a GPU) can change a crop's value. Marginals come from exact integer sums of `j`.
    """
    r, n = j.shape[0], j.shape[1]
    tot = j.sum(dim=(1, 2)).clamp_min(1).double()[:, None]
    parts = torch.cat([j.reshape(r, -1), j.sum(2), j.sum(1)], 1).double() / tot
    v = torch.round(torch.special.xlogy(parts, parts) * ENT).long()
    v[:, n * n :] *= -1  # minus the marginal terms
    return v.sum(dim=1).double() / ENT


def _sample_index(fixed: Any, scale: float, s: LevelSampling) -> tuple[Any, Any, bool]:
    """(x, y) reference pixels (B, N) of each crop's samples, and whether they need the inside test."""
    dev = fixed.device
    b, h, w = fixed.shape
    mx, my, need_inside = inset((h, w), scale, s)
    samples = s.samples
    iw, ih = w - 2 * mx, h - 2 * my
    n = iw * ih
    if n <= samples or s.everywhere:
        step = max(1.0, math.sqrt(n / samples))
        gx = torch.unique((torch.arange(0, iw, step, device=dev, dtype=torch.float64)).long())
        gy = torch.unique((torch.arange(0, ih, step, device=dev, dtype=torch.float64)).long())
        idx = (gy[:, None] * iw + gx[None, :]).reshape(1, -1).expand(b, -1)
    else:
        # as align._Level: half the samples on the strongest reference gradients, half on an even grid
        inner = fixed[:, my : my + ih, mx : mx + iw]
        gm = torch.zeros_like(inner)
        # central differences: a pixel's selection never depends on its own value, so sensor noise cannot
        # bias the selected values (forward differences shifted an 8192 px board by ~0.09 px per axis)
        gm[:, :, 1:-1] += (inner[:, :, 2:] - inner[:, :, :-2]).abs()
        gm[:, 1:-1, :] += (inner[:, 2:, :] - inner[:, :-2, :]).abs()
        k = samples // 2
        top = torch.topk(gm.reshape(b, -1), k, dim=1, sorted=False).indices
        gstep = max(1, int(math.sqrt(n / max(1, samples - k))))
        grid = (
            torch.arange(0, ih, gstep, device=dev)[:, None] * iw + torch.arange(0, iw, gstep, device=dev)
        ).reshape(1, -1)
        idx = torch.sort(torch.cat([top, grid.expand(b, -1)], 1), dim=1).values
    return idx % iw + mx, idx // iw + my, need_inside


class _TorchLevel:
    """One pyramid level of B crops: per-crop samples (pre-binned) and moving images, on the GPU.

    `mi_batch` takes R = k * B level-0 matrices; row r belongs to crop r % B (the layout of align.search).
    """

    def __init__(self, fixed: Any, moving: Any, scale: float, sampling: LevelSampling, smooth: bool = True):
        bins = sampling.bins
        self.scale, self.bins, self.smooth, self.evals, self.calls = scale, bins, smooth, 0, 0
        dev = fixed.device
        b, _, w = fixed.shape
        self.b = b
        self.shape = moving.shape[1:]
        xs, ys, self.need_inside = _sample_index(fixed, scale, sampling)
        self.xs, self.ys = xs.float(), ys.float()  # (B, N)
        fv = torch.gather(fixed.reshape(b, -1), 1, ys * w + xs)
        self.fbin = torch.clamp((fv * bins).long(), max=bins - 1) * bins
        hm, wm = self.shape
        flat = (moving * (bins - 1)).reshape(b, -1)
        self.mflat = torch.cat([flat, flat.new_zeros(b, wm + 2)], 1).reshape(-1)  # padded per crop
        self.stride = hm * wm + wm + 2
        self.offsets = (torch.arange(b, device=dev) * self.stride)[None, :, None]

    def joints(self, lm: np.ndarray) -> Any:
        """Integer joint histograms (R, bins, bins) for R level-pixel matrices."""
        dev = self.xs.device
        r = lm.shape[0]
        g = r // self.b  # rows are (g, crop): broadcast the per-crop tensors instead of gathering them
        m = torch.from_numpy(lm.astype(np.float32)).to(dev).reshape(g, self.b, 2, 3)
        xs, ys = self.xs[None], self.ys[None]
        qx = m[..., 0, 0, None] * xs + m[..., 0, 1, None] * ys + m[..., 0, 2, None]
        qy = m[..., 1, 0, None] * xs + m[..., 1, 1, None] * ys + m[..., 1, 2, None]
        h, w = self.shape
        ins = None
        if self.need_inside:
            ins = ((qx >= 0) & (qx <= w - 1) & (qy >= 0) & (qy <= h - 1)).long()
            qx, qy = qx.clamp(0, w - 1.001), qy.clamp(0, h - 1.001)
        xi, yi = qx.long(), qy.long()
        fx, fy = qx - xi, qy - yi
        i = yi * w + xi + self.offsets
        f = self.mflat
        top = f[i] + fx * (f[i + 1] - f[i])
        bot = f[i + w] + fx * (f[i + w + 1] - f[i + w])
        u = top + fy * (bot - top)
        j0 = torch.clamp(u.long(), max=self.bins - 2)
        wt = torch.round((u - j0) * FIX).long()
        one = torch.full_like(wt, FIX)
        if ins is not None:
            wt, one = wt * ins, one * ins
        nb = self.bins * self.bins
        k = (j0 + self.fbin[None] + (torch.arange(r, device=dev) * nb).reshape(g, self.b, 1)).reshape(-1)
        upper = torch.zeros(r * nb, dtype=torch.long, device=dev).scatter_add_(0, k, wt.reshape(-1))
        joint = torch.zeros(r * nb, dtype=torch.long, device=dev).scatter_add_(0, k, one.reshape(-1))
        joint -= upper
        joint[1:] += upper[:-1]
        self.evals += r
        return joint.reshape(r, self.bins, self.bins)

    def mi_joints(self, j: Any) -> Any:
        if self.smooth:  # align.smooth_joint, in integers
            a = j * 2
            a[:, 1:] += j[:, :-1]
            a[:, :-1] += j[:, 1:]
            s = a * 2
            s[:, :, 1:] += a[:, :, :-1]
            s[:, :, :-1] += a[:, :, 1:]
            j = s
        return _entropy_terms(j)

    def mi_batch(self, mats: np.ndarray) -> np.ndarray:
        self.calls += 1
        return self.mi_joints(self.joints(level_matrices(mats, self.scale))).cpu().numpy()

    def mi_nmi(self, mats: np.ndarray) -> list[tuple[float, float]]:
        """(MI, NMI) per row, unsmoothed: the gate's value."""
        j = self.joints(level_matrices(mats, self.scale)).cpu().numpy()
        return [mutual_information(x.astype(np.float64)) for x in j]


def _gray(x: Any) -> Any:
    if x.ndim == 4:
        if x.shape[3] >= 3:
            x = x[..., :3].float()
            return x[..., 0] * 0.299 + x[..., 1] * 0.587 + x[..., 2] * 0.114
        x = x[..., 0]
    return x.float()


def _normalise(g: Any) -> Any:
    b, h, w = g.shape
    # align._normalise's percentiles (numpy's linear method) from a per-crop sort
    sub = torch.sort(g[:, :: max(1, h // 256), :: max(1, w // 256)].reshape(b, -1).double(), dim=1).values
    n = sub.shape[1]

    def pct(q: float) -> Any:
        pos = q * (n - 1)
        i = int(math.floor(pos))
        j = min(i + 1, n - 1)
        return sub[:, i] + (pos - i) * (sub[:, j] - sub[:, i])

    lo, hi = pct(0.001).float(), pct(0.999).float()
    hi = torch.where(hi <= lo, lo + 1.0, hi)
    return ((g - lo[:, None, None]) / (hi - lo)[:, None, None]).clamp(0.0, 1.0)


def _down2(g: Any) -> Any:
    h, w = g.shape[1] // 2 * 2, g.shape[2] // 2 * 2
    g = g[:, :h, :w]
    return 0.25 * (g[:, 0::2, 0::2] + g[:, 1::2, 0::2] + g[:, 0::2, 1::2] + g[:, 1::2, 1::2])


def _blur3(g: Any) -> Any:
    p = torch.cat([g[:, :1], g, g[:, -1:]], 1)
    a = 0.25 * p[:, :-2] + 0.5 * p[:, 1:-1] + 0.25 * p[:, 2:]
    p = torch.cat([a[:, :, :1], a, a[:, :, -1:]], 2)
    return 0.25 * p[:, :, :-2] + 0.5 * p[:, :, 1:-1] + 0.25 * p[:, :, 2:]
