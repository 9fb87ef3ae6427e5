"""The warp of dig_stages.align: resample the moving image into the reference frame under a transform."""

from __future__ import annotations

import math

import numpy as np

from dig_stages.align_types import Transform, corners


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
    ends = corners(out_shape) @ m.T
    over = max(0.0, -ends.min(axis=0).min(), (ends - [sw - 1, sh - 1]).max())
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
