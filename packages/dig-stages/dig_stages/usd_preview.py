"""Orthographic top-down preview of a board USD per scan-grid cell: RGB, colorized semantics, labels JSON."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pxr import Usd, UsdGeom

from dig_stages._common import fail, info, load_options, run_main
from dig_stages.crop import LABELS_NAME, RGB_NAME, SEG_NAME, color_key
from dig_stages.usd_scan import ScanGrid, load_cli_board, plan_scan_grid, select_cells

BACKGROUND = (0, 0, 0, 0)  # Kit's colours for "nothing rendered" and "geometry without a label"
UNLABELLED = (0, 0, 0, 255)
CLASS_COLORS: dict[str, tuple[int, int, int, int]] = {
    "pad": (140, 25, 255, 255),
    "solder": (25, 255, 140, 255),
    "capacitor": (255, 197, 25, 255),
    "ic": (255, 25, 82, 255),
}


def class_color(cls: str) -> tuple[int, int, int, int]:
    """Stable colorized-segmentation colour of a class (fixed for the cookbook classes, hashed otherwise)."""
    if cls in CLASS_COLORS:
        return CLASS_COLORS[cls]
    d = hashlib.sha256(cls.encode()).digest()
    return 32 + d[0] % 224, 32 + d[1] % 224, 32 + d[2] % 224, 255


@dataclass
class Faces:
    """Every mesh face of the board as an axis-aligned rectangle in the camera-rotated world frame,
    sorted bottom-up (painter's order for a top-down view)."""

    rect: np.ndarray  # (n, 4) u0 v0 u1 v1, world units, u along image width, v along image up
    cls: np.ndarray  # (n,) index into `classes`, -1 = unlabelled geometry
    color: np.ndarray  # (n, 3) uint8 display colour
    classes: list[str]


def collect_faces(stage: Usd.Stage, grid: ScanGrid) -> Faces:
    """World-space faces of every mesh (XformCache), projected once for the grid's camera rotation."""
    xf = UsdGeom.XformCache(Usd.TimeCode.Default())
    theta = math.radians(grid.rotation_z)
    rot = np.array([[math.cos(theta), math.sin(theta)], [-math.sin(theta), math.cos(theta)]])  # world->camera
    classes = sorted(set(grid.mesh_classes.values()))
    rects, zs, cls_idx, colors = [], [], [], []
    for prim in stage.Traverse():
        if (
            not prim.IsA(UsdGeom.Mesh)
            or UsdGeom.Imageable(prim).ComputeVisibility() == UsdGeom.Tokens.invisible
        ):
            continue
        mesh = UsdGeom.Mesh(prim)
        pts = np.asarray(mesh.GetPointsAttr().Get() or [], dtype=float)
        counts = np.asarray(mesh.GetFaceVertexCountsAttr().Get() or [], dtype=int)
        if not len(pts) or not len(counts):
            continue
        m = np.asarray(xf.GetLocalToWorldTransform(prim), dtype=float)  # row-vector convention
        world = np.c_[pts, np.ones(len(pts))] @ m
        uv = world[:, :2] @ rot.T
        idx = np.asarray(mesh.GetFaceVertexIndicesAttr().Get(), dtype=int)
        starts = np.r_[0, np.cumsum(counts)[:-1]]
        fu, fv, fz = uv[idx, 0], uv[idx, 1], world[idx, 2]
        rect = np.stack(
            [
                np.minimum.reduceat(fu, starts),
                np.minimum.reduceat(fv, starts),
                np.maximum.reduceat(fu, starts),
                np.maximum.reduceat(fv, starts),
            ],
            axis=1,
        )
        flat = (rect[:, 2] - rect[:, 0] > 1e-9) & (rect[:, 3] - rect[:, 1] > 1e-9)  # drop side faces
        rects.append(rect[flat])
        zs.append(np.maximum.reduceat(fz, starts)[flat])
        cls = grid.mesh_classes.get(str(prim.GetPath()))
        cls_idx.append(np.full(flat.sum(), classes.index(cls) if cls else -1))
        dc = mesh.GetDisplayColorAttr().Get()
        rgb = np.clip(np.asarray(dc[0] if dc else (0.5, 0.5, 0.5)) * 255, 0, 255).astype(np.uint8)
        colors.append(np.repeat(rgb[None], flat.sum(), axis=0))
    z = np.concatenate(zs) if zs else np.zeros(0)
    order = np.argsort(z, kind="stable")
    return Faces(
        rect=np.concatenate(rects)[order] if rects else np.zeros((0, 4)),
        cls=np.concatenate(cls_idx)[order].astype(np.int32) if cls_idx else np.zeros(0, np.int32),
        color=np.concatenate(colors)[order] if colors else np.zeros((0, 3), np.uint8),
        classes=classes,
    )


def render_cell(
    grid: ScanGrid, faces: Faces, cell_name: str, *, noise: float = 6.0, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, dict[str, dict[str, str]]]:
    """(rgb HxWx3, colorized segmentation HxWx4, labels JSON dict) of one cell, Kit writer formats."""
    w, h = grid.resolution
    view_w, view_h = grid.view_size
    cell = grid.cell(cell_name)
    theta = math.radians(grid.rotation_z)
    cu = math.cos(theta) * cell.center[0] + math.sin(theta) * cell.center[1]
    cv = -math.sin(theta) * cell.center[0] + math.cos(theta) * cell.center[1]
    # pixel (col, row) covers a face when its centre lies in the face rectangle
    px0 = np.ceil((faces.rect[:, 0] - cu) / view_w * w + w / 2 - 0.5)
    px1 = np.ceil((faces.rect[:, 2] - cu) / view_w * w + w / 2 - 0.5)
    py0 = np.ceil(h / 2 - (faces.rect[:, 3] - cv) / view_h * h - 0.5)
    py1 = np.ceil(h / 2 - (faces.rect[:, 1] - cv) / view_h * h - 0.5)
    box = np.stack([px0, py0, px1, py1], axis=1).clip([0, 0, 0, 0], [w, h, w, h]).astype(int)
    live = np.nonzero((box[:, 2] > box[:, 0]) & (box[:, 3] > box[:, 1]))[0]
    cls_img = np.full((h, w), -2, np.int32)  # -2 background, -1 unlabelled geometry, k class k
    rgb = np.zeros((h, w, 3), np.uint8)
    for k in live:  # painter's order: faces are sorted by height, later (higher) faces win
        x0, y0, x1, y1 = box[k]
        cls_img[y0:y1, x0:x1] = faces.cls[k]
        rgb[y0:y1, x0:x1] = faces.color[k]
    if noise:
        # sensor-like grain so crops are not flat colour; uniform int16 is ~10x cheaper than normal()
        grain = np.random.default_rng(seed).integers(-noise, noise + 1, rgb.shape, dtype=np.int16)
        rgb = np.clip(rgb + grain, 0, 255).astype(np.uint8)
    palette = np.array([BACKGROUND, UNLABELLED] + [class_color(c) for c in faces.classes], np.uint8)
    seg = palette[cls_img + 2]
    names = ["BACKGROUND", "UNLABELLED", *faces.classes]
    present = np.nonzero(np.bincount((cls_img + 2).ravel(), minlength=len(names)))[0]
    labels = {color_key(tuple(palette[k])): {"class": names[k]} for k in present}
    return rgb, seg, labels


@dataclass(frozen=True)
class PreviewOptions:
    """What a preview renders: frame resolution (default the image config's), the cells (default
    `max_image_count` of them: -1 every cell, N a seeded random N) and the Kit source dir name."""

    resolution: tuple[int, int] | None = None
    cells: list[str] | None = None
    max_image_count: int | None = -1
    source: str = "trigger_0000"


def render_preview(
    scene: str | Path,
    pcba_target: dict[str, Any],
    image_cfg: dict[str, Any],
    out_dir: str | Path,
    options: PreviewOptions = PreviewOptions(),
) -> dict[str, Any]:
    """Render the scan grid into `out_dir/<source>/` with the Kit writer names (rgb_<cell>.png,
    semantic_segmentation_<cell>.png, semantic_segmentation_labels_<cell>.json) + metadata.json."""
    stage = Usd.Stage.Open(str(scene))
    grid = plan_scan_grid(stage, pcba_target, image_cfg, resolution=options.resolution)
    seed = int(image_cfg.get("seed", 0) or 0)
    if options.cells:
        chosen = [grid.cell(c) for c in options.cells]
    else:
        chosen = select_cells(grid, options.max_image_count, seed)
    faces = collect_faces(stage, grid)
    dest = Path(out_dir) / options.source
    dest.mkdir(parents=True, exist_ok=True)
    for n, cell in enumerate(chosen):
        rgb, seg, labels = render_cell(grid, faces, cell.name, seed=seed + n)
        Image.fromarray(rgb).save(dest / RGB_NAME.format(cell=cell.name))
        Image.fromarray(seg).save(dest / SEG_NAME.format(cell=cell.name))
        (dest / LABELS_NAME.format(cell=cell.name)).write_text(json.dumps(labels, indent=2) + "\n")
    meta = {"preview": True, "cells": [c.name for c in chosen], "grid": grid.to_dict()}
    (dest / "metadata.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return {"grid": grid, "cells": [c.name for c in chosen], "dir": str(dest)}


_FIELDS = {
    "scene": ("path", None),
    "pcba_target": ("path", None),
    "image_config": ("path", None),
    "output": ("path", None),
    "resolution": ("json", None),
    "cells": ("str", ""),
    "max_image_count": ("int", -1),
}


def main(argv: list[str]) -> int:
    """`preview-render --scene S.usda --pcba-target P --image-config I --output OUT [--resolution '[W, H]']
    [--cells x0_y0,x1_y0] [--max-image-count N]`."""

    def body(o: dict[str, Any]) -> int:
        target, image_cfg, scene = load_cli_board(o)
        try:
            res = render_preview(
                scene,
                target,
                image_cfg,
                o["output"],
                PreviewOptions(
                    resolution=tuple(o["resolution"]) if o["resolution"] else None,
                    cells=[c for c in o["cells"].split(",") if c] or None,
                    max_image_count=o["max_image_count"],
                ),
            )
        except (ValueError, KeyError) as exc:
            fail(str(exc))
        info(f"preview-render: {len(res['cells'])} cells -> {res['dir']}")
        return 0

    return run_main(
        body,
        lambda: load_options(
            argv, "preview-render", _FIELDS, required=("pcba_target", "image_config", "output")
        ),
    )
