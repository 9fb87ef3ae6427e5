"""Day-0 data path without Isaac Sim: synthetic USD -> scan grid -> preview render -> crop -> infer staging."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pxr")

from dig_stages.crop import crop_tree  # noqa: E402
from dig_stages.infer import stage_day0  # noqa: E402
from dig_stages.synthetic_board import make_board  # noqa: E402
from dig_stages.usd_preview import PreviewOptions, render_preview  # noqa: E402
from PIL import Image  # noqa: E402

BOARD = "0603_H100"
RES = (480, 270)
RENDER_PATCHES = 6  # max_image_count: six seeded-random cells of the shipped 10 x 10 grid
PAIRS = [["passive_component", "excess_solder"], ["passive_component", "missing"]]


def _size(path) -> tuple[int, int]:
    with Image.open(path) as im:
        return im.size


def files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() or p.is_symlink())


def inner_capacitors(grid, cell_name: str) -> list[str]:
    """Capacitors of a cell whose pixel box (pixel-centre rule) does not touch the frame border."""
    cell = grid.cell(cell_name)
    (w, h), (vw, vh), (cx, cy) = grid.resolution, grid.view_size, cell.center
    bounds = {c.path: c.bounds for c in grid.components if c.cls == "capacitor"}
    out = []
    for path in cell.components.get("capacitor", []) + cell.partial.get("capacitor", []):
        x0, y0, _, x1, y1, _ = bounds[path]
        # z_fixed -90: image right = world -Y, image up = world +X
        c0, c1 = (cy - y1) / vw * w + w / 2, (cy - y0) / vw * w + w / 2
        r0, r1 = h / 2 - (x1 - cx) / vh * h, h / 2 - (x0 - cx) / vh * h
        box = [int(np.ceil(v - 0.5)) for v in (c0, r0, c1, r1)]
        if box[0] > 0 and box[1] > 0 and box[2] < w and box[3] < h:
            out.append(path)
    return out


@pytest.mark.slow
def test_day0_synthetic_board_to_inference_stage(tmp_path: Path, stages_cookbooks):
    scene = tmp_path / "assets" / "board.usda"
    scene.parent.mkdir()
    make_board(scene, seed=0)
    target = {**stages_cookbooks(BOARD, "pcba_target"), "scene": str(scene)}
    image_cfg = stages_cookbooks(BOARD, "day0_image")
    crop_cfg = stages_cookbooks(BOARD, "day0_crop")
    max_emit = crop_cfg["crop"]["max_emit"]

    # stage 1 (render) + stage 2 (crop) of usd2roi-replicator, output dir = the stage dir
    out = tmp_path / "runs" / "demo" / "usd2roi-components"
    rendered = render_preview(
        scene, target, image_cfg, out, PreviewOptions(resolution=RES, max_image_count=RENDER_PATCHES)
    )
    grid, cells = rendered["grid"], rendered["cells"]
    assert len(cells) == RENDER_PATCHES
    summary = crop_tree(out, out, crop_cfg)

    # the crop finds exactly the capacitors the planner puts in each frame whose projected pixel box
    # stays off the frame border (edge_skip), capped by max_emit
    expected_per_cell = {c: min(len(inner_capacitors(grid, c)), max_emit) for c in cells}
    assert sum(expected_per_cell.values()) >= 10
    assert {c: n.get("passive_component", 0) for c, n in summary["per_cell"].items()} == expected_per_cell

    # storage_layout §5.1, file by file
    expected = ["crop/semantic_segmentation_labels.json", "trigger_0000/metadata.json"]
    for cell in cells:
        expected += [f"trigger_0000/{n}" for n in (f"rgb_{cell}.png", f"semantic_segmentation_{cell}.png",
                                                    f"semantic_segmentation_labels_{cell}.json")]  # fmt: skip
        for k in range(expected_per_cell[cell]):
            expected += [f"crop/passive_component/{cell}/normal_img/{k:04d}.png",
                         f"crop/passive_component/{cell}/cad_mask/{k:04d}_cad_mask.png"]  # fmt: skip
    assert files(out) == sorted(expected)
    labels = json.loads((out / "crop/semantic_segmentation_labels.json").read_text())
    assert {v["class"] for v in labels.values()} >= {"UNLABELLED", "capacitor", "pad", "solder"}
    for cad in (out / "crop").rglob("*_cad_mask.png"):
        normal = cad.parent.parent / "normal_img" / cad.name.replace("_cad_mask", "")
        assert _size(cad) == _size(normal)
        with Image.open(cad) as im:
            seg = np.asarray(im.convert("RGBA"))
        assert np.all(seg == (255, 197, 25, 255), axis=2).mean() > 0.2  # min_coverage holds in the crop

    # image-edit stand-in: it keeps stem, cell and resolution and writes .jpg (shipped cookbook)
    augment = tmp_path / "runs" / "demo" / "augment"
    for img in (out / "crop").glob("*/*/normal_img/*.png"):
        dst = augment / "crop" / img.parts[-4] / img.parts[-3] / (img.stem + ".jpg")
        dst.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(img) as im:
            im.save(dst)
    raw = tmp_path / "datasets" / "pcb" / "raw"
    for _, defect in PAIRS:
        (raw / "PCB" / "passive_component" / "mask" / defect).mkdir(parents=True)
        Image.new("L", (16, 16), 255).save(raw / "PCB" / "passive_component" / "mask" / defect / "m0.png")

    opts = {"clean_in": str(augment), "mask_in": str(out), "submask_base_in": str(raw),
            "tmp_dir": str(tmp_path / "tmp"), "spatial_dependency": "cad", "roi_prompt": None}  # fmt: skip
    stage, spec, clean_dir = stage_day0(opts, [tuple(p) for p in PAIRS])
    assert clean_dir is None and stage == tmp_path / "tmp" / "inference_stage"

    crops = sorted(
        (img.parts[-3], img.stem) for img in (out / "crop").glob("passive_component/*/normal_img/*.png")
    )
    want = ["defect_spec.jsonl", "semantic_segmentation_labels.json"]
    want += [f"passive_component/mask/{d}/m0.png" for _, d in PAIRS]
    for cell, stem in crops:
        want += [
            f"passive_component/clean_image/{cell}__{stem}.jpg",
            f"passive_component/cad_mask/{cell}__{stem}.png",
        ]
    assert files(stage) == sorted(want)
    for cell, stem in crops:  # composite names keep clean and cad mask 1:1 and point at the right files
        clean = stage / "passive_component" / "clean_image" / f"{cell}__{stem}.jpg"
        cad = stage / "passive_component" / "cad_mask" / f"{cell}__{stem}.png"
        assert clean.resolve() == (augment / "crop" / "passive_component" / cell / f"{stem}.jpg").resolve()
        assert (
            cad.resolve()
            == (out / "crop" / "passive_component" / cell / "cad_mask" / f"{stem}_cad_mask.png").resolve()
        )
        assert _size(clean) == _size(cad)
    assert json.loads((stage / "semantic_segmentation_labels.json").read_text()) == labels
    lines = [json.loads(line) for line in spec.read_text().splitlines()]
    assert [(x["defect_type"], x["spatial_dependency"]) for x in lines] == [
        ("passive_component+excess_solder", "cad"),
        ("passive_component+missing", "cad"),
    ]
