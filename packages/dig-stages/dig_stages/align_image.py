"""Image preparation for dig_stages.align: grey levels, robust normalisation, blur, pyramids, sampling."""

from __future__ import annotations

import math

import numpy as np

NORM_SAMPLES = 1 << 14  # pixels of the percentile range of _normalise


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


def _percentiles(a: np.ndarray, qs: tuple[float, ...]) -> list[float]:
    """numpy's linear percentiles (fractions `qs`) from one partition around the order statistics they need."""
    pos = [q * (a.size - 1) for q in qs]
    idx = sorted({min(a.size - 1, int(math.floor(x)) + d) for x in pos for d in (0, 1)})
    part = np.partition(a, idx)
    out = []
    for x in pos:
        i = int(math.floor(x))
        j = min(a.size - 1, i + 1)
        lo, hi = float(part[i]), float(part[j])
        out.append(lo + (x - i) * (hi - lo))
    return out


def _normalise(g: np.ndarray) -> np.ndarray:
    # Robust range so a few hot pixels do not squeeze the histogram into a handful of bins.
    # (from an even subset of about NORM_SAMPLES pixels: a sort of the whole crop costs more than the search)
    k = max(1, math.ceil(math.sqrt(g.size / NORM_SAMPLES)))
    lo, hi = _percentiles(g[::k, ::k].ravel(), (0.001, 0.999))
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


def _resize_bilinear(g: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    ys = (np.arange(h) + 0.5) * g.shape[0] / h - 0.5
    xs = (np.arange(w) + 0.5) * g.shape[1] / w - 0.5
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    return _sample(g, xx.ravel(), yy.ravel())[0].reshape(h, w)
