"""Crop benchmark: ROIs/s of dig_stages.crop.crop_cell vs a per-component loop on a 100-cell 1024² scan grid.

Run: .venv/bin/python bench/crop.py [--cells 100] [--runs 5] [--res 1024]
Frames come from the preview rasteriser over a dense seeded synthetic board (~30 components per frame).
Both implementations get the same frames and must return the same ROIs; the time covers the crop
only (frames are rendered once, before timing).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from dig_stages import crop
from dig_stages.crop import Roi, class_index_map, close_mask, crop_cell, crop_settings, label_components

CFG = {"classes": ["capacitor", "ic"], "morph_kernel": 1, "min_area": 50, "max_area": None, "offset": 10,
       "edge_skip": True, "min_coverage": 0.2, "max_emit": None, "bridge": False,
       "class_dirs": {"capacitor": "passive_component", "ic": "IC"}}  # fmt: skip


def naive_crop(rgb: np.ndarray, seg: np.ndarray, labels: dict, cfg: dict, backend: str) -> list[Roi]:
    """The straightforward way: label once, then one full-frame mask per component."""
    c = crop_settings(cfg)
    classes = c["classes"]
    h, w = seg.shape[:2]
    cls_img = class_index_map(seg, labels, classes)
    mask = cls_img >= 0
    n, comp, _ = label_components(close_mask(mask, c["morph_kernel"], backend), backend)
    off = c["offset"]
    found = []
    for k in range(1, n + 1):
        m = (comp == k) & mask
        ys, xs = np.where(m)
        x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
        area = int(m.sum())
        coverage = area / ((x1 - x0) * (y1 - y0))
        if area < c["min_area"] or coverage < c["min_coverage"]:
            continue
        if c["max_area"] is not None and area > c["max_area"]:
            continue
        if c["edge_skip"] and (x0 == 0 or y0 == 0 or x1 == w or y1 == h):
            continue
        dom = classes[int(np.bincount(cls_img[m], minlength=len(classes)).argmax())]
        box = (max(x0 - off, 0), max(y0 - off, 0), min(x1 + off, w), min(y1 + off, h))
        found.append(Roi(str(c["class_dirs"].get(dom, dom)), dom, box, (x0, y0, x1, y1), area, coverage))
    found.sort(
        key=lambda r: (r.component_box[1], r.component_box[0], r.component_box[3], r.component_box[2], r.area)
    )
    return found


def frames(n_cells: int, res: int) -> list[tuple[np.ndarray, np.ndarray, dict]]:
    from dig_stages.synthetic_board import make_board
    from dig_stages.usd_preview import collect_faces, render_cell
    from dig_stages.usd_scan import plan_scan_grid
    from pxr import Usd

    side = int(round(n_cells**0.5))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dense_board.usda"
        make_board(path, seed=0, size=(100.0, 100.0), pitch=3.5, counts={"0603": 500, "ic": 60, "r0402": 150})
        stage = Usd.Stage.Open(str(path))
        target = {"camera_path": "/World/camera_light/Camera",
                  "pcba_root": "/World/pcba_main_s_detail/PCBA/tn__60014242BASEA04_fM9E"}  # fmt: skip
        semantics = [
            {"match": "**/_0603_H100/tn__0603_H100*/LibRef/_0603_H100/Geometry/Components/_0603_H100/"
                      f"surface_{s}_MASTER_MESH", "labels": {"class": cls}}
            for s, cls in [(1, "solder"), (2, "capacitor"), (4, "capacitor"), (6, "capacitor"), (8, "pad")]
        ] + [
            {"match": "**/tn__60014242BASEA04_fM9E/_115_2819_000_1/tn__1152819000_1SC70*/LibRef/"
                      f"tn__1152819000_1_zH8/surface_{s}", "labels": {"class": cls}}
            for s, cls in [(0, "ic"), (1, "solder"), (2, "ic")]
        ]  # fmt: skip
        image = {"scan_grid": {"x_num": side, "y_num": side}, "resolution": [res, res], "semantics": semantics,
                 "camera_rotation": {"z_fixed": -90}}  # fmt: skip
        grid = plan_scan_grid(stage, target, image)
        faces = collect_faces(stage, grid)
        return [render_cell(grid, faces, cell.name, seed=k) for k, cell in enumerate(grid.cells[:n_cells])]


def timed(fn, data) -> tuple[float, int, list]:
    t0 = time.perf_counter()
    out = [fn(*f) for f in data]
    return time.perf_counter() - t0, sum(len(r) for r in out), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=100)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--res", type=int, default=1024)
    args = ap.parse_args()
    t0 = time.perf_counter()
    data = frames(args.cells, args.res)
    comps = np.mean([label_components(class_index_map(s, lab, CFG["classes"]) >= 0)[0] for _, s, lab in data])
    print(f"{len(data)} frames {args.res}x{args.res} rendered in {time.perf_counter() - t0:.1f} s; "
          f"{comps:.1f} capacitor/IC components per frame")  # fmt: skip
    backends = ["numpy"] + (["cv2"] if crop.cv2 is not None else [])
    for backend in backends:
        fast, slow = [], []
        for _ in range(args.runs):
            t_fast, n_fast, out_fast = timed(
                lambda r, s, lab, b=backend: crop_cell(r, s, lab, CFG, backend=b), data
            )
            t_slow, n_slow, out_slow = timed(lambda r, s, lab, b=backend: naive_crop(r, s, lab, CFG, b), data)
            assert out_fast == out_slow, "crop_cell and the per-component loop disagree"
            fast.append(n_fast / t_fast)
            slow.append(n_slow / t_slow)
        f, s = statistics.median(fast), statistics.median(slow)
        print(f"backend={backend:5s} ROIs/frame={n_fast / len(data):.1f}  crop_cell {f:9.0f} ROIs/s  "
              f"per-component loop {s:8.0f} ROIs/s  ratio {f / s:5.1f}x  (median of {args.runs} runs)")  # fmt: skip


if __name__ == "__main__":
    main()
