"""Seeded synthetic PCB-like images and known-transform test cases for the registration bench and tests."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

DISTORTIONS = ("gamma", "folded", "inverted")


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur through the FFT (numpy only; wraps at the borders, harmless for texture)."""
    h, w = img.shape
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    g = np.exp(-2 * (math.pi * sigma) ** 2 * (fx**2 + fy**2))
    return np.fft.irfft2(np.fft.rfft2(img) * g, s=(h, w)).astype(np.float32)


def board(size: int = 2048, seed: int = 0, n_parts: int | None = None) -> np.ndarray:
    """A textured board (float32 in [0, 1]) with component bodies, pad-like bright spots and traces."""
    rng = np.random.default_rng(seed)
    n_parts = n_parts if n_parts is not None else max(20, int(300 * (size / 2048) ** 2))
    # board substrate: low-frequency mottling + fine weave
    img = 0.32 + 0.06 * _blur(rng.standard_normal((size, size)).astype(np.float32), size / 64) * (size / 64)
    img += 0.03 * _blur(rng.standard_normal((size, size)).astype(np.float32), 1.5)
    k = size / 2048
    # traces: thin bright-ish lines
    for _ in range(int(120 * k * k) + 4):
        y, x = rng.integers(0, size, 2)
        ln, wd = int(rng.integers(40, 400) * k) + 2, max(1, int(rng.integers(2, 6) * k))
        if rng.random() < 0.5:
            img[y : y + wd, x : x + ln] = 0.45
        else:
            img[y : y + ln, x : x + wd] = 0.45
    for _ in range(n_parts):
        w, h = (rng.integers(8, 120, 2) * k).astype(int) + 3
        y, x = rng.integers(0, size - 4, 2)
        body = float(rng.choice([0.08, 0.15, 0.6, 0.75])) + 0.05 * float(rng.random())
        img[y : y + h, x : x + w] = body
        # pads at both ends of the body along its long axis: the bright specular spots of solder
        pw = max(2, int(min(w, h) * 0.35))
        pad = 0.9 + 0.1 * float(rng.random())
        if w >= h:
            img[y : y + h, max(0, x - pw) : x] = pad
            img[y : y + h, x + w : x + w + pw] = pad
        else:
            img[max(0, y - pw) : y, x : x + w] = pad
            img[y + h : y + h + pw, x : x + w] = pad
    for _ in range(int(600 * k * k)):  # loose pads / vias
        y, x = rng.integers(0, size - 8, 2)
        r = max(1, int(rng.integers(2, 7) * k))
        img[y : y + r, x : x + r] = 0.85
    img = _blur(img, 1.2 * max(k, 0.5))
    return np.clip(img, 0, 1).astype(np.float32)


def affine_of(rot_deg: float, sx: float, sy: float, tx: float, ty: float, size: int) -> np.ndarray:
    """2x3 matrix reference px -> moving px, centred (same convention as dig_stages.align.Transform)."""
    a = math.radians(rot_deg)
    lin = np.array([[math.cos(a) * sx, -math.sin(a) * sy], [math.sin(a) * sx, math.cos(a) * sy]])
    c = np.array([(size - 1) / 2, (size - 1) / 2])
    off = c + np.array([tx, ty]) - lin @ c
    return np.hstack([lin, off[:, None]])


def _bilinear(img: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    h, w = img.shape
    x = np.clip(x, 0, w - 1.000001)
    y = np.clip(y, 0, h - 1.000001)
    xi, yi = x.astype(np.intp), y.astype(np.intp)
    fx, fy = x - xi, y - yi
    f = img
    top = f[yi, xi] * (1 - fx) + f[yi, xi + 1] * fx
    bot = f[yi + 1, xi] * (1 - fx) + f[yi + 1, xi + 1] * fx
    return (top * (1 - fy) + bot * fy).astype(np.float32)


def distort(v: np.ndarray, kind: str) -> np.ndarray:
    """Intensity distortions: gamma; gamma then a fold (non-monotonic); gamma then inversion."""
    g = np.power(np.clip(v, 0, 1), 0.6)
    if kind == "gamma":
        return g
    if kind == "folded":
        return np.where(g < 0.7, g, 1.4 - g)
    if kind == "inverted":
        return 1.0 - g
    raise ValueError(kind)


# Transforms off every search grid (rotation in degrees, scale x/y, shift px at 2048 px).
CASES = (
    (0.537, 1.0137, 1.0137, 13.3, -7.1),
    (-0.713, 0.9871, 0.9923, -9.6, 11.45),
    (0.281, 1.0062, 0.9944, 4.27, 17.8),
    (-0.166, 1.0219, 1.0083, -15.9, -3.35),
)


@dataclass
class Case:
    reference: np.ndarray  # float32 [0, 1]
    moving: np.ndarray  # float32 [0, 1], the reference seen through `matrix` and an intensity distortion
    matrix: np.ndarray  # true 2x3 reference -> moving
    params: tuple[float, float, float, float, float]
    distortion: str


def make_case(
    size: int = 2048, seed: int = 0, case: int = 0, distortion: str = "gamma", noise: float = 0.02
) -> Case:
    """Reference = board; moving(q) = distort(board(T^-1 q)) + noise, with T from CASES scaled to `size`."""
    rng = np.random.default_rng(seed + 1000)
    margin = max(16, size // 16)
    big = board(size + 2 * margin, seed)
    ref = big[margin : margin + size, margin : margin + size]
    rot, sx, sy, tx, ty = CASES[case % len(CASES)]
    k = size / 2048
    params = (rot, sx, sy, tx * k, ty * k)
    m = affine_of(*params, size)
    inv = np.linalg.inv(np.vstack([m, [0, 0, 1]]))[:2]
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    px = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2] + margin
    py = inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2] + margin
    mov = _bilinear(big, px, py)
    mov = distort(mov, distortion) + noise * rng.standard_normal(mov.shape).astype(np.float32)
    ref = ref + noise * rng.standard_normal(ref.shape).astype(np.float32)
    return Case(np.clip(ref, 0, 1), np.clip(mov, 0, 1).astype(np.float32), m, params, distortion)


def corner_error(true_m: np.ndarray, est_m: np.ndarray, size: int) -> float:
    """Mean distance (px) between where the true and estimated transforms put the reference corners."""
    c = np.array([[0, 0, 1], [size - 1, 0, 1], [0, size - 1, 1], [size - 1, size - 1, 1]], float)
    return float(np.mean(np.linalg.norm(c @ true_m.T - c @ est_m.T, axis=1)))
