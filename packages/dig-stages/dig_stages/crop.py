"""Per-cell ROI crop of a scan-grid render tree (usd2roi_crop.py semantics) for local runs and tests."""

from __future__ import annotations

import difflib
import fnmatch
import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from dig_stages._common import fail, info, load_options, run_main
from dig_stages.crop_components import _run_boxes, _runs, close_mask, cv2, label_components
from dig_stages.crop_labels import class_index_map, color_key, parse_color

__all__ = [  # the labelling and morphology live in crop_labels / crop_components; importable from here too
    "CROP_DEFAULTS",
    "GLOBAL_LABELS",
    "LABELS_NAME",
    "RGB_NAME",
    "SEG_NAME",
    "Roi",
    "cell_sort_key",
    "class_index_map",
    "close_mask",
    "color_key",
    "crop_cell",
    "crop_settings",
    "crop_tree",
    "cv2",
    "find_cells",
    "label_components",
    "load_config",
    "load_frame",
    "main",
    "parse_color",
]

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
    boxes, area, dominant, coverage = _components(mask, cls_img, len(classes), c["morph_kernel"], backend)
    idx = _kept(boxes, area, coverage, c, (w, h))
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
        rois += _bridges(rois, boxes[idx], c, classes, padded)
    return _cap(rois, c["max_emit"])


def _components(
    mask: np.ndarray, cls_img: np.ndarray, n_classes: int, radius: int, backend: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per component of the closed mask: (boxes (n, 4) x0 y0 x1 y1, area, dominant class index, coverage).

    The close only groups meshes into components; boxes and counts use the labelled pixels, so a
    close never stretches a box (e.g. onto the frame border, where OpenCV's border keeps it)."""
    n, comp, _ = label_components(close_mask(mask, radius, backend), backend)
    rs, ss, es = _runs(mask)
    boxes = _run_boxes(comp[rs, ss], rs, ss, es, n)[1:]
    counts = np.bincount(
        comp[mask].astype(np.int64) * n_classes + cls_img[mask], minlength=(n + 1) * n_classes
    ).reshape(n + 1, n_classes)[1:]
    area = counts.sum(axis=1)
    bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return boxes, area, counts.argmax(axis=1), area / np.maximum(bw * bh, 1)


def _kept(
    boxes: np.ndarray, area: np.ndarray, coverage: np.ndarray, c: dict[str, Any], size: tuple[int, int]
) -> np.ndarray:
    """Indices of the components the settings keep, in a backend-independent order (top, left, bottom,
    right, area)."""
    w, h = size
    keep = (area >= c["min_area"]) & (coverage >= c["min_coverage"])
    if c["max_area"] is not None:
        keep &= area <= c["max_area"]
    if c["edge_skip"]:
        keep &= (boxes[:, 0] > 0) & (boxes[:, 1] > 0) & (boxes[:, 2] < w) & (boxes[:, 3] < h)
    idx = np.nonzero(keep)[0]
    return idx[np.lexsort((area[idx], boxes[idx, 2], boxes[idx, 3], boxes[idx, 0], boxes[idx, 1]))]


def _bridges(
    rois: list[Roi],
    bx: np.ndarray,
    c: dict[str, Any],
    classes: list[str],
    padded: Callable[[np.ndarray], tuple[int, int, int, int]],
) -> list[Roi]:
    """Pairwise crops over two nearby ROIs of the same material (edge-to-edge gap <= bridge_dis px);
    `bx[k]` is the component box of the single crop `rois[k]`."""
    gx = np.maximum(0, np.maximum(bx[None, :, 0] - bx[:, None, 2], bx[:, None, 0] - bx[None, :, 2]))
    gy = np.maximum(0, np.maximum(bx[None, :, 1] - bx[:, None, 3], bx[:, None, 1] - bx[None, :, 3]))
    mats = np.array([r.material for r in rois])
    allowed = set(c["bridge_classes"] if c["bridge_classes"] is not None else classes)
    ok = np.array([r.cls in allowed for r in rois])  # r.cls is the component's dominant class
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
