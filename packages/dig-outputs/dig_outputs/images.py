"""Image handling for the preview: readable thumbnails, visible label maps, and defect-mask outlines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

THUMB_WIDTH = 640  # endpoint_and_sizing.md §5: thumbnail very large frames, e.g. 640 px wide
OUTLINE_RGB = (255, 0, 255)  # magenta: stands out on green PCBs, grey metal and glass alike

# Distinct colours for small label ids (semantic maps store 0..N, which look black as greyscale).
_PALETTE = np.array(
    [
        (0, 0, 0),
        (230, 25, 75),
        (60, 180, 75),
        (255, 225, 25),
        (0, 130, 200),
        (245, 130, 48),
        (145, 30, 180),
        (70, 240, 240),
        (240, 50, 230),
        (210, 245, 60),
        (250, 190, 212),
        (0, 128, 128),
        (220, 190, 255),
        (170, 110, 40),
        (255, 250, 200),
        (128, 0, 0),
        (170, 255, 195),
        (128, 128, 0),
        (255, 215, 180),
        (0, 0, 128),
        (128, 128, 128),
        (255, 255, 255),
    ],
    dtype=np.uint8,
)


def _to_8bit(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    hi = float(arr.max()) if arr.size else 0.0
    if hi <= 0:
        return np.zeros(arr.shape, np.uint8)
    return np.clip(arr.astype(np.float64) * (255.0 / hi), 0, 255).astype(np.uint8)


def load_rgb(path: Path) -> Image.Image:
    """Any PNG/JPEG the stages write, as 8-bit RGB (16-bit and paletted frames included)."""
    with Image.open(path) as im:
        im.load()
        if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
            return Image.fromarray(_to_8bit(np.asarray(im))).convert("RGB")
        if im.mode == "RGBA":
            return im.convert("RGB")
        return im.convert("RGB") if im.mode != "RGB" else im.copy()


def load_mask_view(path: Path) -> Image.Image:
    """A mask made visible: binary/grey masks stay grey, small label ids get distinct colours."""
    with Image.open(path) as im:
        im.load()
        if im.mode in ("RGB", "RGBA"):
            return im.convert("RGB")
        arr = np.asarray(im if im.mode != "P" else im.convert("L"))
    if arr.ndim == 3:
        arr = arr[..., 0]
    values = np.unique(arr)
    if values.size <= len(_PALETTE) and values.max(initial=0) < len(_PALETTE) and values.max(initial=0) > 0:
        return Image.fromarray(_PALETTE[arr.astype(np.intp)], "RGB")
    return Image.fromarray(_to_8bit(arr)).convert("RGB")


def thumbnail(img: Image.Image, max_width: int = THUMB_WIDTH) -> Image.Image:
    """Downscale frames wider than `max_width` (aspect kept); smaller frames are left as they are."""
    if img.width <= max_width:
        return img
    height = max(1, round(img.height * max_width / img.width))
    return img.resize((max_width, height), Image.Resampling.LANCZOS)


def mask_bool(path: Path, size: tuple[int, int]) -> np.ndarray:
    """The defect mask as booleans at `size` (w, h); nearest-neighbour so edges stay crisp."""
    with Image.open(path) as im:
        im.load()
        arr = np.asarray(im.convert("L") if im.mode not in ("L", "I;16", "I") else im)
    if arr.ndim == 3:
        arr = arr[..., 0]
    # 0/255 masks saved lossy carry noise near 0; label masks use 1..N. Threshold accordingly.
    thr = 127 if arr.max(initial=0) > 127 else 0
    m = Image.fromarray(((arr > thr) * 255).astype(np.uint8), "L").resize(size, Image.Resampling.NEAREST)
    return np.asarray(m) > 0


def outline(img: Image.Image, mask: np.ndarray, rgb: tuple[int, int, int] = OUTLINE_RGB) -> Image.Image:
    """`img` with the boundary of `mask` drawn on it, ~1 % of the width thick (visible when shown small)."""
    if mask.shape != (img.height, img.width):
        raise ValueError(f"mask shape {mask.shape} does not match image {img.width}x{img.height}")
    # Pad with False so a defect touching the frame border still gets a closed outline.
    p = np.pad(mask, 1, constant_values=False)
    inner = p[1:-1, 1:-1] & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    edge = mask & ~inner
    for _ in range(max(0, round(img.width / 100) - 1)):
        q = np.pad(edge, 1, constant_values=False)
        edge = q[1:-1, 1:-1] | q[:-2, 1:-1] | q[2:, 1:-1] | q[1:-1, :-2] | q[1:-1, 2:]
    arr = np.array(img.convert("RGB"))
    arr[edge] = rgb
    return Image.fromarray(arr, "RGB")


def save(img: Image.Image, dest_stem: Path, *, lossless: bool) -> Path:
    """Write `img` as PNG (masks, outlines: exact pixels) or JPEG (photos: small page); the path."""
    dest_stem.parent.mkdir(parents=True, exist_ok=True)
    if lossless:
        path = dest_stem.with_suffix(".png")
        img.save(path, optimize=True)
    else:
        path = dest_stem.with_suffix(".jpg")
        img.convert("RGB").save(path, quality=90)
    return path
