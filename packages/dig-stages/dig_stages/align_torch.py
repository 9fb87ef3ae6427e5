"""Optional torch (CUDA) evaluator for the MI registration of dig_stages.align; falls back to numpy without it."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from dig_stages import align

try:  # optional: pods without torch use the numpy path
    import torch
except ImportError:  # pragma: no cover - depends on the machine
    torch = None


def available() -> bool:
    """True when torch is importable and sees a CUDA device."""
    return torch is not None and torch.cuda.is_available()


class _TorchLevel:
    """Same contract as align._Level (fixed samples, MI of a 2x3 matrix), evaluated on the GPU."""

    def __init__(
        self, fixed: np.ndarray, moving: np.ndarray, scale: float, bins: int, samples: int, seed: int
    ):
        dev = torch.device("cuda")
        self.bins, self.scale, self.evals = bins, scale, 0
        self.moving = torch.from_numpy(np.ascontiguousarray(moving)).to(dev)
        h, w = fixed.shape
        n = h * w
        g = torch.Generator(device=dev)
        g.manual_seed(seed)
        if n <= samples:
            idx = torch.arange(n, device=dev)
        else:
            idx = torch.sort(torch.randint(0, n, (samples,), device=dev, generator=g)).values
        ys, xs = idx // w, idx % w
        self.x0 = xs.double() * scale + (scale - 1) / 2
        self.y0 = ys.double() * scale + (scale - 1) / 2
        fv = torch.from_numpy(np.ascontiguousarray(fixed)).to(dev).reshape(-1)[idx]
        self.fbin = torch.clamp((fv * bins).long(), max=bins - 1) * bins

    def joint(self, m: np.ndarray) -> np.ndarray:
        return self._joint(m).cpu().numpy()

    def _joint(self, m: np.ndarray) -> Any:
        s = self.scale
        qx = (m[0, 0] * self.x0 + m[0, 1] * self.y0 + m[0, 2] - (s - 1) / 2) / s
        qy = (m[1, 0] * self.x0 + m[1, 1] * self.y0 + m[1, 2] - (s - 1) / 2) / s
        h, w = self.moving.shape
        inside = ((qx >= 0) & (qx <= w - 1) & (qy >= 0) & (qy <= h - 1)).double()
        xc = qx.clamp(0, w - 1.000001)
        yc = qy.clamp(0, h - 1.000001)
        xi, yi = xc.long(), yc.long()
        fx, fy = (xc - xi).float(), (yc - yi).float()
        flat = self.moving.reshape(-1)
        i = yi * w + xi
        top = flat[i] + fx * (flat[i + 1] - flat[i])
        bot = flat[i + w] + fx * (flat[i + w + 1] - flat[i + w])
        v = top + fy * (bot - top)
        u = v.double() * (self.bins - 1)
        j0 = torch.clamp(u.long(), max=self.bins - 2)
        wt = u - j0
        nb = self.bins * self.bins
        k = self.fbin + j0
        joint = torch.bincount(k, weights=(1 - wt) * inside, minlength=nb)
        joint += torch.bincount(k + 1, weights=wt * inside, minlength=nb)
        self.evals += 1
        return joint.reshape(self.bins, self.bins)

    def mi(self, m: np.ndarray) -> float:
        p = self._joint(m)
        p = p / p.sum().clamp_min(1e-300)
        pf, pm = p.sum(1, keepdim=True), p.sum(0, keepdim=True)
        nz = p > 0
        return float((p[nz] * torch.log(p[nz] / (pf * pm)[nz])).sum())  # one host sync per evaluation


def warp(
    moving: np.ndarray, transform: align.Transform, out_shape: tuple[int, int], interp: str = "bilinear"
) -> np.ndarray:
    """GPU version of align.warp (same conventions: edge pixels repeat, dtype and channels kept)."""
    dev = torch.device("cuda")
    h, w = out_shape
    m = torch.tensor(transform.matrix(), dtype=torch.float64, device=dev)
    ys = torch.arange(h, device=dev, dtype=torch.float64)[:, None]
    xs = torch.arange(w, device=dev, dtype=torch.float64)[None, :]
    qx = m[0, 0] * xs + m[0, 1] * ys + m[0, 2]
    qy = m[1, 0] * xs + m[1, 1] * ys + m[1, 2]
    src = torch.from_numpy(np.ascontiguousarray(moving)).to(dev)
    sh, sw = src.shape[:2]
    chans = src.reshape(sh, sw, -1).float()
    flat = chans.reshape(sh * sw, -1)
    if interp == "nearest":
        xi = qx.round().clamp(0, sw - 1).long()
        yi = qy.round().clamp(0, sh - 1).long()
        out = flat[(yi * sw + xi).reshape(-1)]
    else:
        xc, yc = qx.clamp(0, sw - 1.000001), qy.clamp(0, sh - 1.000001)
        xi, yi = xc.long(), yc.long()
        fx = (xc - xi).float().reshape(-1, 1)
        fy = (yc - yi).float().reshape(-1, 1)
        i = (yi * sw + xi).reshape(-1)
        top = flat[i] + fx * (flat[i + 1] - flat[i])
        bot = flat[i + sw] + fx * (flat[i + sw + 1] - flat[i + sw])
        out = top + fy * (bot - top)
    out = out.reshape(h, w, -1)
    if np.issubdtype(moving.dtype, np.integer):
        info = np.iinfo(moving.dtype)
        out = out.round().clamp(info.min, info.max)
    res = out.cpu().numpy().astype(moving.dtype)
    return res[..., 0] if moving.ndim == 2 else res


def align_gpu(
    reference: np.ndarray, moving: np.ndarray, params: align.AlignParams | dict[str, Any] | None = None
) -> align.AlignResult:
    """align.align with GPU MI evaluations and warp when CUDA is there; the numpy path otherwise."""
    if not available():
        return align.align(reference, moving, params)
    p = params if isinstance(params, align.AlignParams) else align.AlignParams.from_dict(params)
    t0 = time.perf_counter()
    t, mi, nmi, levels, evals = align.register(reference, moving, p, level_factory=_TorchLevel)
    img = warp(np.asarray(moving), t, np.asarray(reference).shape[:2], p.interp)
    passed = p.min_mi is None or (mi >= p.min_mi and math.isfinite(mi))
    return align.AlignResult(img, t, mi, nmi, passed, time.perf_counter() - t0, levels, evals)
