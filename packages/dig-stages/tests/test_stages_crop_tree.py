"""crop_tree and the `crop` CLI: render tree in, storage_layout §5.1 crop tree out, file by file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from dig_stages.__main__ import main as dig_main
from dig_stages.crop import crop_tree
from PIL import Image

CAP = (255, 197, 25, 255)
LABELS = {"(0, 0, 0, 255)": {"class": "UNLABELLED"}, "(255, 197, 25, 255)": {"class": "capacitor"}}
CFG = {"classes": ["capacitor"], "morph_kernel": 1, "min_area": 50, "offset": 4, "edge_skip": True,
       "min_coverage": 0.2, "max_emit": 10, "class_dirs": {"capacitor": "passive_component"}}  # fmt: skip


def write_frame(src: Path, cell: str, rects, size=(60, 80), labels=LABELS) -> tuple[np.ndarray, np.ndarray]:
    h, w = size
    seg = np.zeros((h, w, 4), np.uint8)
    seg[..., 3] = 255
    for x0, y0, x1, y1 in rects:
        seg[y0:y1, x0:x1] = CAP
    rgb = np.random.default_rng(len(rects)).integers(0, 255, (h, w, 3), dtype=np.uint8)
    src.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(src / f"rgb_{cell}.png")
    Image.fromarray(seg).save(src / f"semantic_segmentation_{cell}.png")
    (src / f"semantic_segmentation_labels_{cell}.json").write_text(json.dumps(labels))
    return rgb, seg


@pytest.fixture
def render(tmp_path: Path) -> Path:
    src = tmp_path / "render" / "trigger_0000"
    write_frame(src, "x0_y0", [(10, 10, 30, 20), (40, 30, 60, 40)])
    write_frame(src, "x1_y0", [(20, 20, 40, 30)])
    write_frame(src, "x0_y1", [(0, 20, 20, 30)])  # only an edge component: no cell dir
    write_frame(src, "0000", [(10, 10, 30, 20)])  # not a grid cell: pattern x*_y* skips it
    return tmp_path / "render"


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_crop_tree_writes_the_storage_layout(render: Path, tmp_path: Path):
    out = tmp_path / "out"
    summary = crop_tree(render, out, CFG)
    assert tree(out) == [
        "crop/passive_component/x0_y0/cad_mask/0000_cad_mask.png",
        "crop/passive_component/x0_y0/cad_mask/0001_cad_mask.png",
        "crop/passive_component/x0_y0/normal_img/0000.png",
        "crop/passive_component/x0_y0/normal_img/0001.png",
        "crop/passive_component/x1_y0/cad_mask/0000_cad_mask.png",  # numbering restarts per cell
        "crop/passive_component/x1_y0/normal_img/0000.png",
        "crop/semantic_segmentation_labels.json",
    ]
    assert summary == {"cells": 3, "rois": 3, "per_material": {"passive_component": 3},
                       "per_cell": {"x0_y0": {"passive_component": 2}, "x0_y1": {}, "x1_y0": {"passive_component": 1}}}  # fmt: skip


def test_crop_images_are_the_frame_windows(render: Path, tmp_path: Path):
    crop_tree(render, tmp_path / "out", CFG)
    src = render / "trigger_0000"
    rgb = np.asarray(Image.open(src / "rgb_x0_y0.png"))
    seg = np.asarray(Image.open(src / "semantic_segmentation_x0_y0.png"))
    cell = tmp_path / "out/crop/passive_component/x0_y0"
    normal = Image.open(cell / "normal_img/0001.png")
    cad = Image.open(cell / "cad_mask/0001_cad_mask.png")
    assert (normal.mode, cad.mode) == ("RGB", "RGBA")
    # component (40, 30, 60, 40) padded by 4 and clipped to the 80 x 60 frame
    assert np.array_equal(np.asarray(normal), rgb[26:44, 36:64])
    assert np.array_equal(np.asarray(cad), seg[26:44, 36:64])


def test_global_labels_json_is_the_union_of_the_frames(tmp_path: Path):
    src = tmp_path / "r" / "trigger_0000"
    write_frame(src, "x0_y0", [(10, 10, 30, 20)], labels=LABELS)
    write_frame(src, "x0_y1", [(10, 10, 30, 20)], labels={**LABELS, "(9, 9, 9, 255)": {"class": "pad"}})
    crop_tree(tmp_path / "r", tmp_path / "r", CFG)
    labels = json.loads((tmp_path / "r/crop/semantic_segmentation_labels.json").read_text())
    assert labels == {**LABELS, "(9, 9, 9, 255)": {"class": "pad"}}


def test_conflicting_colour_across_frames_is_an_error(tmp_path: Path):
    src = tmp_path / "r" / "trigger_0000"
    write_frame(src, "x0_y0", [(10, 10, 30, 20)])
    write_frame(src, "x0_y1", [(10, 10, 30, 20)], labels={"(255, 197, 25, 255)": {"class": "ic"}})
    with pytest.raises(ValueError, match=r"cell x0_y1: colour \(255, 197, 25, 255\)"):
        crop_tree(tmp_path / "r", tmp_path / "r", CFG)


def test_max_emit_caps_each_cell(render: Path, tmp_path: Path):
    summary = crop_tree(render, tmp_path / "out", {**CFG, "max_emit": 1})
    assert summary["per_cell"] == {
        "x0_y0": {"passive_component": 1},
        "x0_y1": {},
        "x1_y0": {"passive_component": 1},
    }


def test_existing_crop_tree_needs_overwrite(render: Path, tmp_path: Path):
    crop_tree(render, tmp_path / "out", CFG)
    stale = tmp_path / "out/crop/passive_component/x9_y9/normal_img/0000.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"")
    with pytest.raises(FileExistsError, match="not empty"):
        crop_tree(render, tmp_path / "out", CFG)
    crop_tree(render, tmp_path / "out", CFG, overwrite=True)
    assert not stale.exists()


def test_missing_source_cells_and_partner_files(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="crop.source='trigger_0000'"):
        crop_tree(tmp_path, tmp_path, CFG)
    src = tmp_path / "trigger_0000"
    src.mkdir()
    with pytest.raises(FileNotFoundError, match="no rgb_<cell>.png frames matching 'x\\*_y\\*'"):
        crop_tree(tmp_path, tmp_path, CFG)
    write_frame(src, "x0_y0", [(10, 10, 30, 20)])
    (src / "semantic_segmentation_labels_x0_y0.json").unlink()
    with pytest.raises(
        FileNotFoundError, match="cell x0_y0: missing semantic_segmentation_labels_x0_y0.json"
    ):
        crop_tree(tmp_path, tmp_path, CFG)


def test_cells_are_processed_in_grid_order_not_name_order(tmp_path: Path):
    src = tmp_path / "trigger_0000"
    for cell in ("x10_y0", "x2_y0", "x2_y10", "x2_y9"):
        write_frame(src, cell, [(10, 10, 30, 20)])
    summary = crop_tree(tmp_path, tmp_path, CFG)
    assert list(summary["per_cell"]) == ["x2_y0", "x2_y9", "x2_y10", "x10_y0"]


def test_cli_reads_the_cookbook_and_applies_crop_max_emit(render: Path, tmp_path: Path, capsys):
    cookbook = tmp_path / "day0_crop.yaml"
    cookbook.write_text(yaml.safe_dump({"output": {"dir": "__OUTPUT__"}, "crop": {**CFG, "max_emit": 1}}))
    assert dig_main(["crop", "--config", str(cookbook), "--render-dir", str(render)]) == 0
    assert "2 ROIs from 3 cells" in capsys.readouterr().out
    args = [
        "crop",
        "--config",
        str(cookbook),
        "--render-dir",
        str(render),
        "--max-emit",
        "null",
        "--overwrite",
        "true",
    ]
    assert dig_main(args) == 0
    assert "3 ROIs from 3 cells" in capsys.readouterr().out
    assert (
        len(list((render / "crop").rglob("normal_img/*.png"))) == 3
    )  # output.dir sentinel -> the render dir


def test_cli_zero_rois_is_an_error(render: Path, tmp_path: Path, capsys):
    cookbook = tmp_path / "day0_crop.json"
    cookbook.write_text(json.dumps({"crop": {**CFG, "classes": ["ic"]}}))
    assert (
        dig_main(
            ["crop", "--config", str(cookbook), "--render-dir", str(render), "--output-dir", str(tmp_path)]
        )
        == 1
    )
    assert capsys.readouterr().err.startswith("ERROR: 0 ROI pairs emitted under")
