"""Per-cell ROI crop of a scan-grid render tree (usd2roi_crop.py semantics) for local runs and tests."""

from __future__ import annotations

import difflib
import fnmatch
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from dig_stages._common import fail, info, load_options, run_main

try:  # OpenCV is optional: used for the close and the labelling when present, same results as numpy
    import cv2
except ImportError:  # pragma: no cover - exercised only where OpenCV is absent
    cv2 = None

# Kit writer names inside the render source dir (frames renamed to the grid cell by
# rename_to_grid_index); the preview rasteriser writes the same names.
RGB_NAME = "rgb_{cell}.png"
SEG_NAME = "semantic_segmentation_{cell}.png"
LABELS_NAME = "semantic_segmentation_labels_{cell}.json"
GLOBAL_LABELS = "semantic_segmentation_labels.json"

# Every key of the `crop:` section (day0_crop.yaml + the Day-1 bridge extras), with the value used
# when the cookbook leaves it out. `classes` has no default: an empty whitelist emits nothing.
CROP_DEFAULTS: dict[str, Any] = {
    "source": "trigger_0000",
    "pattern": "x*_y*",
    "classes": None,
    "morph_kernel": 1,
    "min_area": 50,
    "max_area": None,
    "offset": 10,
    "edge_skip": True,
    "min_coverage": 0.2,
    "max_emit": None,
    "bridge": False,
    "bridge_dis": 30,
    "bridge_classes": None,
    "class_dirs": {},
}

_CELL_RE = re.compile(r"^x(\d+)_y(\d+)$")
_COLOR_RE = re.compile(r"-?\d+")


@dataclass(frozen=True)
class Roi:
    """One emitted crop: `box` is the padded window (x0, y0, x1, y1, end-exclusive) cut from the frame."""

    material: str
    cls: str
    box: tuple[int, int, int, int]
    component_box: tuple[int, int, int, int]
    area: int
    coverage: float
    bridge: bool = False

    @property
    def slices(self) -> tuple[slice, slice]:
        x0, y0, x1, y1 = self.box
        return slice(y0, y1), slice(x0, x1)


def crop_settings(cfg: dict[str, Any]) -> dict[str, Any]:
    """The `crop:` section of a crop cookbook (or the section itself), checked and with defaults filled."""
    section = cfg.get("crop", cfg) if isinstance(cfg, dict) else None
    if not isinstance(section, dict):
        raise ValueError(f"crop config must be a mapping with a 'crop' section, got {type(cfg).__name__}")
    unknown = sorted(set(section) - set(CROP_DEFAULTS))
    if unknown:
        close = difflib.get_close_matches(unknown[0], CROP_DEFAULTS, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ValueError(f"crop.{unknown[0]}: unknown key{hint}; known keys: {', '.join(CROP_DEFAULTS)}")
    out = {**CROP_DEFAULTS, **section}
    classes = out["classes"]
    if isinstance(classes, str):
        classes = [classes]
    if not classes or not all(isinstance(c, str) and c for c in classes):
        raise ValueError(f"crop.classes: must be a non-empty list of class names, got {out['classes']!r}")
    out["classes"] = list(dict.fromkeys(classes))
    for key in ("morph_kernel", "min_area", "offset", "bridge_dis"):
        if isinstance(out[key], bool) or not isinstance(out[key], int) or out[key] < 0:
            raise ValueError(f"crop.{key}: must be an integer >= 0, got {out[key]!r}")
    for key in ("max_area", "max_emit"):
        value = out[key]
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            # max_emit 0 would emit "0 ROI pairs" (failure mode A12): null means uncapped
            raise ValueError(f"crop.{key}: must be null or an integer >= 1, got {value!r}")
    cov = out["min_coverage"]
    if isinstance(cov, bool) or not isinstance(cov, (int, float)) or not 0 <= cov <= 1:
        raise ValueError(f"crop.min_coverage: must be a number in [0, 1], got {cov!r}")
    if not isinstance(out["class_dirs"], dict):
        raise ValueError(f"crop.class_dirs: must map class -> material dir, got {out['class_dirs']!r}")
    if out["bridge_classes"] is not None and not isinstance(out["bridge_classes"], list):
        raise ValueError(f"crop.bridge_classes: must be null or a list, got {out['bridge_classes']!r}")
    return out


# ---------------------------------------------------------------------------------------------
# labels JSON (Kit colorized semantic segmentation: "(R, G, B, A)" -> {"class": "<name>"})


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


# ---------------------------------------------------------------------------------------------
# morphology + connected components: one OpenCV and one numpy path with identical results


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


# ---------------------------------------------------------------------------------------------
# the crop itself


def crop_cell(
    rgb: np.ndarray, seg: np.ndarray, labels: dict[str, Any], cfg: dict[str, Any], *, backend: str = "auto"
) -> list[Roi]:
    """ROIs of one scan-grid frame, in emission order (NNNN order per material).

    Components: whitelisted-class pixels, closed with radius `morph_kernel`, 8-connected.
    `area` = whitelisted pixels in the component (min_area/max_area); its bbox is theirs;
    `coverage` = area / bbox area (min_coverage); `edge_skip` drops components whose bbox touches the frame border
    (they are cut by the frame); the emitted box is the bbox padded by `offset` and clipped to the
    frame. Order: raster order of the component bbox (top, then left), bridge crops after the
    singles; `max_emit` then caps each material.
    """
    c = crop_settings(cfg)
    classes = c["classes"]
    h, w = seg.shape[:2]
    if rgb.shape[:2] != (h, w):
        raise ValueError(f"rgb {rgb.shape[:2]} and segmentation {(h, w)} sizes differ")
    cls_img = class_index_map(seg, labels, classes)
    mask = cls_img >= 0
    if not mask.any():
        return []
    # the close only groups meshes into components; boxes and counts use the labelled pixels, so a
    # close never stretches a box (e.g. onto the frame border, where OpenCV's border keeps it)
    n, comp, _ = label_components(close_mask(mask, c["morph_kernel"], backend), backend)
    rs, ss, es = _runs(mask)
    boxes = _run_boxes(comp[rs, ss], rs, ss, es, n)[1:]
    counts = np.bincount(
        comp[mask].astype(np.int64) * len(classes) + cls_img[mask], minlength=(n + 1) * len(classes)
    ).reshape(n + 1, len(classes))[1:]
    area = counts.sum(axis=1)
    dominant = counts.argmax(axis=1)
    bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    coverage = area / np.maximum(bw * bh, 1)
    keep = (area >= c["min_area"]) & (coverage >= c["min_coverage"])
    if c["max_area"] is not None:
        keep &= area <= c["max_area"]
    if c["edge_skip"]:
        keep &= (boxes[:, 0] > 0) & (boxes[:, 1] > 0) & (boxes[:, 2] < w) & (boxes[:, 3] < h)
    idx = np.nonzero(keep)[0]
    # backend-independent order: top, left, bottom, right, area
    idx = idx[np.lexsort((area[idx], boxes[idx, 2], boxes[idx, 3], boxes[idx, 0], boxes[idx, 1]))]
    off = c["offset"]

    def padded(box: np.ndarray) -> tuple[int, int, int, int]:
        return (max(int(box[0]) - off, 0), max(int(box[1]) - off, 0),
                min(int(box[2]) + off, w), min(int(box[3]) + off, h))  # fmt: skip

    material_of = [str(c["class_dirs"].get(cls, cls)) for cls in classes]
    rois = [
        Roi(
            material=material_of[dominant[k]],
            cls=classes[dominant[k]],
            box=padded(boxes[k]),
            component_box=tuple(int(v) for v in boxes[k]),
            area=int(area[k]),
            coverage=float(coverage[k]),
        )
        for k in idx
    ]
    if c["bridge"] and len(idx) > 1:
        rois += _bridges(rois, idx, boxes, dominant, c, padded, classes)
    return _cap(rois, c["max_emit"])


def _bridges(
    rois: list[Roi],
    idx: np.ndarray,
    boxes: np.ndarray,
    dominant: np.ndarray,
    c: dict[str, Any],
    padded: Any,
    classes: list[str],
) -> list[Roi]:
    """Pairwise crops over two nearby ROIs of the same material (edge-to-edge gap <= bridge_dis px)."""
    bx = boxes[idx]
    gx = np.maximum(0, np.maximum(bx[None, :, 0] - bx[:, None, 2], bx[:, None, 0] - bx[None, :, 2]))
    gy = np.maximum(0, np.maximum(bx[None, :, 1] - bx[:, None, 3], bx[:, None, 1] - bx[None, :, 3]))
    mats = np.array([r.material for r in rois])
    allowed = set(c["bridge_classes"] if c["bridge_classes"] is not None else classes)
    ok = np.array([classes[d] in allowed for d in dominant[idx]])
    near = (
        (np.hypot(gx, gy) <= c["bridge_dis"]) & (mats[:, None] == mats[None, :]) & ok[:, None] & ok[None, :]
    )
    out = []
    for i, j in zip(*np.nonzero(np.triu(near, k=1)), strict=True):
        union = np.concatenate([np.minimum(bx[i, :2], bx[j, :2]), np.maximum(bx[i, 2:], bx[j, 2:])])
        out.append(
            Roi(
                material=rois[i].material,
                cls=rois[i].cls,
                box=padded(union),
                component_box=tuple(int(v) for v in union),
                area=rois[i].area + rois[j].area,
                coverage=(rois[i].area + rois[j].area)
                / max(int((union[2] - union[0]) * (union[3] - union[1])), 1),
                bridge=True,
            )
        )
    return out


def _cap(rois: list[Roi], max_emit: int | None) -> list[Roi]:
    if max_emit is None:
        return rois
    seen: dict[str, int] = {}
    out = []
    for r in rois:
        seen[r.material] = seen.get(r.material, 0) + 1
        if seen[r.material] <= max_emit:
            out.append(r)
    return out


# ---------------------------------------------------------------------------------------------
# the render tree -> crop tree


def cell_sort_key(cell: str) -> tuple[int, int, str]:
    m = _CELL_RE.match(cell)
    return (int(m.group(1)), int(m.group(2)), cell) if m else (1 << 30, 0, cell)


def find_cells(source: Path, pattern: str = "x*_y*") -> list[str]:
    """Cell names of the `rgb_<cell>.png` frames in `source` that match `pattern`, in grid order."""
    cells = [p.name[len("rgb_") : -len(".png")] for p in source.glob("rgb_*.png")]
    return sorted((c for c in cells if fnmatch.fnmatchcase(c, pattern)), key=cell_sort_key)


def load_frame(source: Path, cell: str) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(rgb, colorized segmentation RGBA, labels dict) of one cell of a render source dir."""
    paths = [source / t.format(cell=cell) for t in (RGB_NAME, SEG_NAME, LABELS_NAME)]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"cell {cell}: missing {', '.join(missing)} in {source}")
    with Image.open(paths[0]) as im:
        rgb = np.asarray(im.convert("RGB"))
    with Image.open(paths[1]) as im:
        seg = np.asarray(im.convert("RGBA"))
    return rgb, seg, json.loads(paths[2].read_text(encoding="utf-8"))


def crop_tree(
    render_dir: str | Path,
    out_dir: str | Path,
    cfg: dict[str, Any],
    *,
    backend: str = "auto",
    overwrite: bool = False,
) -> dict[str, Any]:
    """Crop every matching cell of `render_dir/<crop.source>` into `out_dir/crop/` (storage_layout §5.1).

    Writes `crop/<MAT>/<cell>/normal_img/<NNNN>.png`, `crop/<MAT>/<cell>/cad_mask/<NNNN>_cad_mask.png`
    (NNNN restarts per material/cell) and one `crop/semantic_segmentation_labels.json` (union of the
    frames' labels). Returns a summary: cells, per-material ROI counts, per-cell counts.
    """
    c = crop_settings(cfg)
    source = Path(render_dir) / c["source"]
    if not source.is_dir():
        raise FileNotFoundError(f"render source {source} not found (crop.source={c['source']!r})")
    cells = find_cells(source, c["pattern"])
    if not cells:
        raise FileNotFoundError(f"no rgb_<cell>.png frames matching {c['pattern']!r} in {source}")
    crop_root = Path(out_dir) / "crop"
    if crop_root.exists() and any(crop_root.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{crop_root} is not empty; remove it or pass overwrite=True")
        shutil.rmtree(crop_root)
    crop_root.mkdir(parents=True, exist_ok=True)
    all_labels: dict[str, Any] = {}
    per_material: dict[str, int] = {}
    per_cell: dict[str, dict[str, int]] = {}
    for cell in cells:
        rgb, seg, labels = load_frame(source, cell)
        for key, value in labels.items():
            known = all_labels.setdefault(key, value)
            if known != value:
                raise ValueError(f"cell {cell}: colour {key} is {value} here but {known} in an earlier frame")
        counters: dict[str, int] = {}
        for roi in crop_cell(rgb, seg, labels, c, backend=backend):
            k = counters.get(roi.material, 0)
            counters[roi.material] = k + 1
            cell_dir = crop_root / roi.material / cell
            (cell_dir / "normal_img").mkdir(parents=True, exist_ok=True)
            (cell_dir / "cad_mask").mkdir(parents=True, exist_ok=True)
            Image.fromarray(rgb[roi.slices]).save(cell_dir / "normal_img" / f"{k:04d}.png")
            Image.fromarray(seg[roi.slices]).save(cell_dir / "cad_mask" / f"{k:04d}_cad_mask.png")
        for mat, k in counters.items():
            per_material[mat] = per_material.get(mat, 0) + k
        per_cell[cell] = counters
    (crop_root / GLOBAL_LABELS).write_text(json.dumps(all_labels, indent=2, sort_keys=True) + "\n")
    return {"cells": len(cells), "rois": sum(per_material.values()), "per_material": per_material,
            "per_cell": per_cell}  # fmt: skip


def load_config(path: str | Path) -> dict[str, Any]:
    """A cookbook file: JSON, or YAML when PyYAML is importable (local runs only)."""
    text = Path(path).read_text(encoding="utf-8")
    if str(path).endswith(".json"):
        return json.loads(text)
    import yaml  # local-only dependency: the crop step is never injected into a pod

    return yaml.safe_load(text)


_FIELDS = {
    "config": ("path", None),
    "render_dir": ("path", None),
    "output_dir": ("path", None),
    "max_emit": ("str", ""),
    "backend": ("str", "auto"),
    "overwrite": ("bool", False),
}


def main(argv: list[str]) -> int:
    """`crop --config day0_crop.yaml --render-dir OUT [--output-dir DIR] [--max-emit N|null]`."""

    def body(o: dict[str, Any]) -> int:
        cfg = load_config(o["config"])
        section = dict(cfg.get("crop", {}))
        if o["max_emit"] not in ("", None):  # crop_max_emit semantics: blank keep, null uncapped, int
            section["max_emit"] = None if o["max_emit"] == "null" else int(o["max_emit"])
        out_dir = o["output_dir"] or (cfg.get("output") or {}).get("dir")
        if not out_dir or out_dir == "__OUTPUT__":
            out_dir = o["render_dir"]
        try:
            summary = crop_tree(
                o["render_dir"], out_dir, section, backend=o["backend"], overwrite=o["overwrite"]
            )
        except (ValueError, FileNotFoundError, FileExistsError) as exc:
            fail(str(exc))
        if summary["rois"] == 0:
            fail(f"0 ROI pairs emitted under {out_dir}/crop (no region matched crop.classes)")
        info(
            f"crop: {summary['rois']} ROIs from {summary['cells']} cells -> {out_dir}/crop {summary['per_material']}"
        )
        return 0

    return run_main(body, lambda: load_options(argv, "crop", _FIELDS, required=("config", "render_dir")))
