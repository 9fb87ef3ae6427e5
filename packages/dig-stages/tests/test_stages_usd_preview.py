"""Preview rasteriser: projection, painter's order, Kit writer formats and file names."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

pytest.importorskip("pxr")

from dig_stages.__main__ import main as dig_main  # noqa: E402
from dig_stages.crop import parse_color  # noqa: E402
from dig_stages.usd_preview import CLASS_COLORS, class_color, collect_faces, render_cell  # noqa: E402
from dig_stages.usd_scan import plan_scan_grid  # noqa: E402
from PIL import Image  # noqa: E402
from pxr import Usd  # noqa: E402

BOARD = "0603_H100"
RES = (480, 270)  # 24 px per mm with the 20 mm frame


@pytest.fixture(scope="module")
def scene(stages_board_usd, stages_cookbooks):
    stage = Usd.Stage.Open(str(stages_board_usd))
    grid = plan_scan_grid(
        stage, stages_cookbooks(BOARD, "pcba_target"), stages_cookbooks(BOARD, "day0_image"), resolution=RES
    )
    return grid, collect_faces(stage, grid)


def project(grid, cell, x, y):
    """World (x, y) -> pixel (col, row) for z_fixed -90: image right = world -Y, image up = world +X."""
    w, h = grid.resolution
    vw, vh = grid.view_size
    cx, cy = grid.cell(cell).center
    return (-(y - cy)) / vw * w + w / 2, h / 2 - (x - cx) / vh * h


def test_capacitors_land_where_the_planner_says(scene):
    grid, faces = scene
    cell = next(c for c in grid.cells if len(c.components.get("capacitor", [])) >= 2)
    rgb, seg, labels = render_cell(grid, faces, cell.name)
    assert rgb.shape == (270, 480, 3) and seg.shape == (270, 480, 4) and rgb.dtype == seg.dtype == np.uint8
    cap = np.all(seg == CLASS_COLORS["capacitor"], axis=2)
    bounds = {c.path: c.bounds for c in grid.components if c.cls == "capacitor"}
    for path in cell.components["capacitor"]:
        x0, y0, _, x1, y1, _ = bounds[path]
        c0, r0 = project(grid, cell.name, x1, y1)  # top-left pixel corner: max X (up), max Y (left)
        c1, r1 = project(grid, cell.name, x0, y0)
        lo_r, lo_c = int(r0) - 2, int(c0) - 2
        ys, xs = np.nonzero(cap[lo_r : int(r1) + 3, lo_c : int(c1) + 3])
        # painted pixels = those whose centre lies in the projected box, to the pixel
        first = lambda v: int(np.ceil(v - 0.5))  # noqa: E731
        assert (ys.min() + lo_r, ys.max() + lo_r + 1) == (first(r0), first(r1))
        assert (xs.min() + lo_c, xs.max() + lo_c + 1) == (first(c0), first(c1))


def test_higher_faces_paint_over_lower_ones(scene):
    grid, faces = scene
    z_sorted = faces.rect  # faces are in painter's order; the board body (unlabelled) comes first
    assert faces.cls[0] == -1 and len(z_sorted) == len(faces.cls) == len(faces.color)
    cell = next(c for c in grid.cells if c.components.get("capacitor"))
    _, seg, _ = render_cell(grid, faces, cell.name)
    # the ceramic body sits above the pads and the solder: its centre pixel is capacitor
    comp = next(
        c for c in grid.components if c.path == cell.components["capacitor"][0] and c.cls == "capacitor"
    )
    col, row = project(
        grid, cell.name, (comp.bounds[0] + comp.bounds[3]) / 2, (comp.bounds[1] + comp.bounds[4]) / 2
    )
    assert tuple(seg[int(row), int(col)]) == CLASS_COLORS["capacitor"]


def test_labels_json_is_the_kit_format_and_matches_the_image(scene):
    grid, faces = scene
    rgb, seg, labels = render_cell(grid, faces, "x0_y0")
    for key, value in labels.items():
        assert re.fullmatch(r"\(\d+, \d+, \d+, \d+\)", key) and list(value) == ["class"]
    colors = {tuple(c) for c in np.unique(seg.reshape(-1, 4), axis=0)}
    assert colors == {parse_color(k) for k in labels}
    assert {v["class"] for v in labels.values()} >= {"UNLABELLED", "capacitor", "pad"}
    # the corner cell looks past the board edge: background there
    assert labels["(0, 0, 0, 0)"] == {"class": "BACKGROUND"}


def test_render_is_seeded(scene):
    grid, faces = scene
    a = render_cell(grid, faces, "x4_y4", seed=3)
    b = render_cell(grid, faces, "x4_y4", seed=3)
    c = render_cell(grid, faces, "x4_y4", seed=4)
    assert np.array_equal(a[0], b[0]) and not np.array_equal(a[0], c[0]) and np.array_equal(a[1], c[1])
    flat = render_cell(grid, faces, "x4_y4", noise=0)[0]
    assert np.abs(a[0].astype(int) - flat).max() <= 6


def test_class_colors_are_stable_and_distinct():
    assert class_color("capacitor") == CLASS_COLORS["capacitor"]
    assert class_color("resistor") == class_color("resistor") != class_color("inductor")
    assert len({class_color(c) for c in ["pad", "solder", "capacitor", "ic", "resistor"]}) == 5


def test_cli_preview_render_writes_kit_names(stages_board_usd, tmp_path, capsys):
    from pathlib import Path

    data = Path(__file__).parent / "data" / BOARD
    args = ["preview-render", "--scene", str(stages_board_usd), "--pcba-target", str(data / "pcba_target.yaml"),
            "--image-config", str(data / "day0_image.yaml"), "--output", str(tmp_path),
            "--resolution", "[160, 90]", "--cells", "x1_y2,x0_y0"]  # fmt: skip
    assert dig_main(args) == 0
    assert "2 cells" in capsys.readouterr().out
    src = tmp_path / "trigger_0000"
    assert sorted(p.name for p in src.iterdir()) == [
        "metadata.json",
        "rgb_x0_y0.png",
        "rgb_x1_y2.png",
        "semantic_segmentation_labels_x0_y0.json",
        "semantic_segmentation_labels_x1_y2.json",
        "semantic_segmentation_x0_y0.png",
        "semantic_segmentation_x1_y2.png",
    ]
    with Image.open(src / "rgb_x1_y2.png") as rgb, Image.open(src / "semantic_segmentation_x1_y2.png") as seg:
        assert rgb.size == (160, 90) and seg.mode == "RGBA"
    assert json.loads((src / "metadata.json").read_text())["cells"] == ["x1_y2", "x0_y0"]
    assert dig_main(args[:-2] + ["--cells", "x99_y0"]) == 1
    assert "no scan-grid cell 'x99_y0'" in capsys.readouterr().err
