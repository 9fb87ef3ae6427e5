"""The scan grid a new board config gets, and its preview sheet: frames that tile the PCBA root.

Local tool code for `dig board new` (never injected into pods), next to board_discover.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw
from pxr import Usd

from dig_stages.usd_preview import collect_faces, render_cell
from dig_stages.usd_scan import plan_scan_grid


def grid_size(board: tuple[float, ...], frame: tuple[float, float], rotation_z: float) -> tuple[int, int]:
    """x_num, y_num of frames (`frame` = image width, height in world units) that tile the board's XY box."""
    c, s = abs(math.cos(math.radians(rotation_z))), abs(math.sin(math.radians(rotation_z)))
    wx, wy = c * frame[0] + s * frame[1], s * frame[0] + c * frame[1]
    return max(1, math.ceil((board[3] - board[0]) / wx - 1e-9)), max(
        1, math.ceil((board[4] - board[1]) / wy - 1e-9)
    )


def plan_grid(
    usd: str | Path, pcba_target: dict[str, Any], image_cfg: dict[str, Any]
) -> tuple[int, int, Any]:
    """The scan grid (dig_stages.usd_scan) whose frames, at the render's field of view, tile the PCBA root."""
    probe = plan_scan_grid(str(usd), pcba_target, {**image_cfg, "scan_grid": {"x_num": 1, "y_num": 1}})
    x_num, y_num = grid_size(probe.board_bounds, probe.view_size, probe.rotation_z)
    grid = plan_scan_grid(str(usd), pcba_target, {**image_cfg, "scan_grid": {"x_num": x_num, "y_num": y_num}})
    return x_num, y_num, grid


SEPARATOR = (255, 255, 255)
TILE_WIDTH = 192
GAP = 4


def render_grid_preview(
    usd: str | Path, pcba_target: dict[str, Any], image_cfg: dict[str, Any], out_png: str | Path
) -> dict[str, Any]:
    """One PNG of every scan-grid cell (dig_stages.usd_preview render, classes in their segmentation colours)
    as tiles x<i> left to right, y<j> top to bottom, separated by white lines; returns the layout."""
    w, h = (int(v) for v in image_cfg.get("resolution") or (1920, 1080))
    tile = (TILE_WIDTH, max(1, round(TILE_WIDTH * h / w)))
    stage = Usd.Stage.Open(str(usd))
    grid = plan_scan_grid(stage, pcba_target, image_cfg, resolution=tile)
    faces = collect_faces(stage, grid)
    x_num = max(c.i for c in grid.cells) + 1
    y_num = max(c.j for c in grid.cells) + 1
    sheet = Image.new(
        "RGB", (x_num * tile[0] + (x_num + 1) * GAP, y_num * tile[1] + (y_num + 1) * GAP), SEPARATOR
    )
    draw = ImageDraw.Draw(sheet)
    for cell in grid.cells:
        rgb, seg, _labels = render_cell(grid, faces, cell.name, noise=0)
        out = (rgb.astype(float) * 0.6).astype("uint8")  # unlabelled geometry: dimmed display colour
        labelled = (seg[..., 3] > 0) & (seg[..., :3].sum(axis=2) > 0)
        out[labelled] = seg[labelled][:, :3]
        out[seg[..., 3] == 0] = (40, 40, 40)  # background: nothing rendered
        x = GAP + cell.i * (tile[0] + GAP)
        y = GAP + (y_num - 1 - cell.j) * (tile[1] + GAP)
        sheet.paste(Image.fromarray(out), (x, y))
        draw.text((x + 3, y + 2), cell.name, fill=(230, 230, 230))
    Path(out_png).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out_png)
    return {
        "path": str(out_png),
        "x_num": x_num,
        "y_num": y_num,
        "tile": tile,
        "class_counts": grid.class_counts,
        "coverage": grid.coverage,
    }
