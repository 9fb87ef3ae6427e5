"""Labels JSON of a Kit colorized semantic segmentation ("(R, G, B, A)" -> {"class": "<name>"}) and the
per-pixel class map the crop is cut from."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

_COLOR_RE = re.compile(r"-?\d+")


def parse_color(key: str) -> tuple[int, int, int, int]:
    """RGBA tuple of a labels-JSON key such as "(140, 25, 255, 255)" (alpha 255 when absent)."""
    values = [int(v) for v in _COLOR_RE.findall(key)]
    if len(values) == 3:
        values.append(255)
    if len(values) != 4 or not all(0 <= v <= 255 for v in values):
        raise ValueError(f"labels JSON key {key!r} is not an (R, G, B, A) colour")
    return values[0], values[1], values[2], values[3]


def color_key(rgba: tuple[int, int, int, int]) -> str:
    """Labels-JSON key of an RGBA colour, in the Kit writer's spelling."""
    return "(" + ", ".join(str(int(v)) for v in rgba) + ")"


def _pack(rgba: np.ndarray) -> np.ndarray:
    """(..., 4) uint8 -> (...) uint32 so one comparison matches a whole colour."""
    return np.ascontiguousarray(rgba, dtype=np.uint8).view("<u4")[..., 0]


def _as_rgba(seg: np.ndarray) -> np.ndarray:
    if seg.ndim != 3 or seg.shape[2] not in (3, 4):
        raise ValueError(f"semantic segmentation must be a colorized RGB(A) image, got shape {seg.shape}")
    if seg.shape[2] == 3:
        seg = np.concatenate([seg, np.full(seg.shape[:2] + (1,), 255, np.uint8)], axis=2)
    return seg.astype(np.uint8, copy=False)


def class_index_map(seg: np.ndarray, labels: dict[str, Any], classes: list[str]) -> np.ndarray:
    """int8 image: index into `classes` of each pixel's class, -1 elsewhere.

    A label may hold several comma-joined classes (a prim with two labels); the first whitelisted
    one wins, in whitelist order.
    """
    packed = _pack(_as_rgba(seg))
    out = np.full(packed.shape, -1, np.int8)
    for key, value in labels.items():
        names = str(value.get("class", "") if isinstance(value, dict) else value).split(",")
        hits = [classes.index(n.strip()) for n in names if n.strip() in classes]
        if hits:
            out[packed == _pack(np.array(parse_color(key), np.uint8))] = min(hits)
    return out
