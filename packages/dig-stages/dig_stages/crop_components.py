"""Morphology and 8-connected components of a class mask: one OpenCV and one numpy path with identical results."""

from __future__ import annotations

from typing import Any

import numpy as np

try:  # OpenCV is optional: used for the close and the labelling when present, same results as numpy
    import cv2
except ImportError:  # pragma: no cover - exercised only where OpenCV is absent
    cv2 = None


def _shift_reduce(mask: np.ndarray, radius: int, op: Any) -> np.ndarray:
    """Square (2r+1)² max/min filter; out-of-frame neighbours are ignored (OpenCV's default border)."""
    out = mask
    for axis in (1, 0):
        src, out = out, out.copy()
        for s in range(1, radius + 1):
            lo = [slice(None)] * 2
            hi = [slice(None)] * 2
            lo[axis], hi[axis] = slice(s, None), slice(None, -s)
            op(out[tuple(lo)], src[tuple(hi)], out=out[tuple(lo)])
            op(out[tuple(hi)], src[tuple(lo)], out=out[tuple(hi)])
    return out


def close_mask(mask: np.ndarray, radius: int, backend: str = "auto") -> np.ndarray:
    """Morphological close with a (2r+1)² square: merges labelled meshes less than ~2r px apart."""
    if radius <= 0:
        return mask
    if _use_cv2(backend):
        kernel = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
        return cv2.morphologyEx(mask.view(np.uint8), cv2.MORPH_CLOSE, kernel).view(bool)
    return _shift_reduce(_shift_reduce(mask, radius, np.logical_or), radius, np.logical_and)


def label_components(mask: np.ndarray, backend: str = "auto") -> tuple[int, np.ndarray, np.ndarray]:
    """8-connected components: (n, int32 label image with 0 = background, boxes (n+1, 4) x0 y0 x1 y1).

    The numpy path numbers in raster order of each component's first pixel; OpenCV's numbering
    can differ, so callers order components by their boxes, never by label id.
    """
    if _use_cv2(backend):
        n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)
        boxes = np.stack(
            [stats[:, 0], stats[:, 1], stats[:, 0] + stats[:, 2], stats[:, 1] + stats[:, 3]], axis=1
        )
        return n - 1, labels, boxes.astype(np.int64)
    return _label_runs(mask)


def _label_runs(mask: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """Run-length labelling: horizontal runs, run pairs of adjacent rows that touch, union by min-label
    hooking with pointer jumping. Work is per run and per touching pair, all in array operations."""
    h, w = mask.shape
    rs, ss, es = _runs(mask)
    n_runs = len(rs)
    if n_runs == 0:
        return 0, np.zeros((h, w), np.int32), np.zeros((1, 4), np.int64)
    stride = w + 2
    start_key = rs * stride + ss
    end_key = rs * stride + es
    # runs of the next row touching run k (8-connectivity): end >= s_k and start <= e_k
    lo = np.searchsorted(end_key, (rs + 1) * stride + ss, side="left")
    hi = np.searchsorted(start_key, (rs + 1) * stride + es, side="right")
    cnt = np.maximum(hi - lo, 0)
    a = np.repeat(np.arange(n_runs), cnt)
    b = lo.repeat(cnt) + (np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt))
    parent = np.arange(n_runs)
    while a.size:
        pa, pb = parent[a], parent[b]
        diff = pa != pb
        if not diff.any():
            break
        pa, pb = pa[diff], pb[diff]
        np.minimum.at(parent, np.maximum(pa, pb), np.minimum(pa, pb))
        while True:  # pointer jumping until every run points at its root
            nxt = parent[parent]
            if np.array_equal(nxt, parent):
                break
            parent = nxt
    roots, comp = np.unique(parent, return_inverse=True)  # roots ascend = first-run (raster) order
    n = len(roots)
    run_label = comp.astype(np.int32) + 1
    lengths = es - ss
    flat = np.repeat(rs * w + ss - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
    labels = np.zeros(h * w, np.int32)
    labels[flat] = np.repeat(run_label, lengths)
    return n, labels.reshape(h, w), _run_boxes(run_label, rs, ss, es, n)


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Horizontal runs of a mask in raster order: (row, start, end-exclusive)."""
    padded = np.zeros((mask.shape[0], mask.shape[1] + 2), np.int8)
    padded[:, 1:-1] = mask
    d = np.diff(padded, axis=1)
    rs, ss = np.nonzero(d == 1)
    _, es = np.nonzero(d == -1)  # same raster order as the starts: run k ends at es[k]
    return rs, ss, es


def _run_boxes(run_label: np.ndarray, rs: np.ndarray, ss: np.ndarray, es: np.ndarray, n: int) -> np.ndarray:
    """(n+1, 4) x0 y0 x1 y1 per label of the runs (row 0 unused), reduced over runs, not pixels."""
    boxes = np.zeros((n + 1, 4), np.int64)
    boxes[1:, :2] = np.iinfo(np.int64).max
    np.minimum.at(boxes[:, 0], run_label, ss)
    np.minimum.at(boxes[:, 1], run_label, rs)
    np.maximum.at(boxes[:, 2], run_label, es)
    np.maximum.at(boxes[:, 3], run_label, rs + 1)
    return boxes


def _use_cv2(backend: str) -> bool:
    if backend not in ("auto", "cv2", "numpy"):
        raise ValueError(f"backend must be auto, cv2 or numpy, got {backend!r}")
    if backend == "cv2" and cv2 is None:
        raise RuntimeError("backend='cv2' asked for but OpenCV is not installed")
    return cv2 is not None and backend != "numpy"
