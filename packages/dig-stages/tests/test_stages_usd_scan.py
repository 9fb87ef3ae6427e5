"""Synthetic board + scan-grid planner on the 0603_H100 / 1152819000 cookbook fixtures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pxr = pytest.importorskip("pxr")

from dig_stages.__main__ import main as dig_main  # noqa: E402
from dig_stages.synthetic_board import CAMERA_PATH, PCBA_ROOT, make_board  # noqa: E402
from dig_stages.usd_scan import glob_to_regex, mesh_classes, plan_scan_grid, select_cells  # noqa: E402
from pxr import Usd, UsdGeom  # noqa: E402

BOARD = "0603_H100"


@pytest.fixture(scope="module")
def grid(stages_board_usd, stages_cookbooks):
    target, image = stages_cookbooks(BOARD, "pcba_target"), stages_cookbooks(BOARD, "day0_image")
    return plan_scan_grid(stages_board_usd, target, image)


# ---------------------------------------------------------------------------------------------
# synthetic board


def test_board_is_seeded_and_deterministic(tmp_path: Path, stages_board_usd: Path):
    again = make_board(tmp_path / "a.usda", seed=0)
    assert (tmp_path / "a.usda").read_bytes() == stages_board_usd.read_bytes()
    make_board(tmp_path / "b.usda", seed=1)
    assert (tmp_path / "b.usda").read_bytes() != stages_board_usd.read_bytes()
    assert {k: len(v) for k, v in again["components"].items()} == {"0603": 24, "ic": 4, "r0402": 8}


def test_board_has_the_cookbook_prim_paths(stages_board_usd: Path, stages_cookbooks):
    stage = Usd.Stage.Open(str(stages_board_usd))
    target = stages_cookbooks(BOARD, "pcba_target")
    assert (target["camera_path"], target["pcba_root"]) == (CAMERA_PATH, PCBA_ROOT)
    cam = stage.GetPrimAtPath(target["camera_path"])
    assert cam.IsA(UsdGeom.Camera)
    assert UsdGeom.Camera(cam).GetProjectionAttr().Get() == UsdGeom.Tokens.orthographic
    for key in ("camera_xform_path", "ring_light_root", "pcba_root"):
        assert stage.GetPrimAtPath(target[key]).IsValid(), key
    assert UsdGeom.GetStageUpAxis(stage) == UsdGeom.Tokens.z


def test_board_rejects_more_components_than_slots(tmp_path: Path):
    with pytest.raises(ValueError, match="do not fit"):
        make_board(tmp_path / "x.usda", counts={"0603": 100})


def test_cli_make_synthetic_board(tmp_path: Path, capsys):
    assert (
        dig_main(["make-synthetic-board", str(tmp_path / "s.usda"), "--seed", "3", "--counts", '{"0603": 5}'])
        == 0
    )
    assert "{'0603': 5}" in capsys.readouterr().out
    assert (tmp_path / "s.usda").read_text().startswith("#usda 1.0")


# ---------------------------------------------------------------------------------------------
# semantics


@pytest.mark.parametrize(
    ("pattern", "path", "hit"),
    [
        ("**/PASTEMASK_TOP/Geometry/x", "/World/a/b/PASTEMASK_TOP/Geometry/x", True),
        ("**/_0603_H100/tn__0603_H100*/LibRef", "/W/_0603_H100/tn__0603_H100_72_/LibRef", True),
        ("**/_0603_H100/tn__0603_H100*/LibRef", "/W/_0603_H100/tn__0603_H100_72_/extra/LibRef", False),
        ("/W/surface_?", "/W/surface_1", True),
        ("/W/surface_?", "/W/surface_10", False),
        ("/W/a.b", "/W/aXb", False),  # dots are literal
    ],
)
def test_glob_to_regex(pattern, path, hit):
    assert bool(glob_to_regex(pattern).fullmatch(path)) is hit


def test_semantics_rules_label_meshes_last_match_wins_and_inherit(tmp_path: Path):
    stage = Usd.Stage.CreateInMemory()
    for p in ("/W/A/m1", "/W/A/m2", "/W/B/sub/m3"):
        UsdGeom.Mesh.Define(stage, p)
    rules = [
        {"match": "/W/A/*", "labels": {"class": "solder"}},
        {"match": "/W/A/m2", "labels": {"class": "capacitor"}},
        {"match": "/W/B", "labels": {"class": "ic"}},  # a rule on an Xform labels the meshes below it
    ]
    assert mesh_classes(stage, rules) == {"/W/A/m1": "solder", "/W/A/m2": "capacitor", "/W/B/sub/m3": "ic"}
    with pytest.raises(ValueError, match=r"semantics\[0\]: needs match and labels.class"):
        mesh_classes(stage, [{"match": "/W"}])


def test_0603_rules_on_the_board(grid):
    assert grid.class_counts == {"capacitor": 24, "pad": 25, "solder": 24}  # + one paste-mask pad component
    caps = [c for c in grid.components if c.cls == "capacitor"]
    assert all(c.path.startswith(f"{PCBA_ROOT}/_0603_H100/tn__0603_H100_") for c in caps)
    assert all(len(c.meshes) == 3 for c in caps)  # surfaces 2, 4, 6
    assert not any("_115_2819_000_1" in p for p in grid.mesh_classes)  # ICs: not in the 0603 rules


def test_1152819000_rules_label_the_ics(stages_board_usd, stages_cookbooks):
    g = plan_scan_grid(stages_board_usd, stages_cookbooks("1152819000", "pcba_target"),
                       stages_cookbooks("1152819000", "day0_image"))  # fmt: skip
    assert g.class_counts == {"ic": 4, "pad": 1, "solder": 4}


def test_component_bounds_come_from_the_placed_geometry(grid, stages_board_usd):
    stage = Usd.Stage.Open(str(stages_board_usd))
    for comp in (c for c in grid.components if c.cls == "capacitor"):
        t = (
            UsdGeom.Xformable(stage.GetPrimAtPath(comp.path))
            .ComputeLocalToWorldTransform(0)
            .ExtractTranslation()
        )
        x0, y0, z0, x1, y1, z1 = comp.bounds
        assert (x0 + x1) / 2 == pytest.approx(t[0], abs=1e-4) and (y0 + y1) / 2 == pytest.approx(
            t[1], abs=1e-4
        )
        assert sorted([x1 - x0, y1 - y0]) == pytest.approx([0.8, 1.6], abs=1e-5)  # body + terminations
        assert (z0, z1) == pytest.approx((1.57 + 0.05, 1.57 + 0.8), abs=1e-5)


# ---------------------------------------------------------------------------------------------
# grid


def test_grid_cells_names_and_windows(grid):
    assert len(grid.cells) == 100 and grid.cells[0].name == "x0_y0" and grid.cells[-1].name == "x9_y9"
    assert grid.horizontal_aperture == 200.0  # not in the cookbook: the driver's injected default
    assert grid.view_size == pytest.approx((20.0, 11.25))
    x0, y0, _, x1, y1, _ = grid.board_bounds
    assert (x0, y0, x1, y1) == pytest.approx((0.0, 0.0, 48.0, 30.0))
    c = grid.cell("x3_y7")
    assert c.center == pytest.approx((3.5 * 4.8, 7.5 * 3.0))
    # z_fixed -90: the image width runs along world Y, so the window is 11.25 wide in X and 20 in Y
    wx0, wy0, wx1, wy1 = c.window
    assert (wx1 - wx0, wy1 - wy0) == pytest.approx((11.25, 20.0))


def test_cells_list_whole_and_partial_components_per_class(grid):
    bounds = {(c.cls, c.path): c.bounds for c in grid.components}
    for cell in grid.cells:
        wx0, wy0, wx1, wy1 = cell.window
        for cls, paths in cell.components.items():
            for p in paths:
                x0, y0, _, x1, y1, _ = bounds[cls, p]
                assert wx0 <= x0 and wy0 <= y0 and x1 <= wx1 and y1 <= wy1
        for cls, paths in cell.partial.items():
            assert not set(paths) & set(cell.components.get(cls, []))
            for p in paths:
                x0, y0, _, x1, y1, _ = bounds[cls, p]
                assert x0 < wx0 or y0 < wy0 or x1 > wx1 or y1 > wy1
    assert sum(len(c.components.get("capacitor", [])) for c in grid.cells) > 100  # frames overlap
    assert grid.cell("x0_y0").partial["pad"] == [f"{PCBA_ROOT}/PASTEMASK_TOP/Geometry"]  # spans the board


def test_coverage(grid):
    assert grid.coverage["board_area"] == pytest.approx(1.0)
    assert grid.coverage["components_whole"]["capacitor"] == 1.0
    assert grid.coverage["components_whole"]["pad"] == pytest.approx(24 / 25)


def test_coverage_with_a_narrow_aperture_leaves_gaps(stages_board_usd, stages_cookbooks):
    image = {
        **stages_cookbooks(BOARD, "day0_image"),
        "horizontal_aperture": 20.0,
        "scan_grid": {"x_num": 2, "y_num": 2},
    }
    g = plan_scan_grid(stages_board_usd, stages_cookbooks(BOARD, "pcba_target"), image)
    assert g.view_size == pytest.approx((2.0, 1.125))
    assert g.coverage["board_area"] == pytest.approx(4 * 2.0 * 1.125 / (48 * 30), rel=0.05)


@pytest.mark.parametrize(
    ("target", "image", "message"),
    [
        ({"camera_path": "/World/nope"}, {}, "pcba_target.camera_path: prim '/World/nope' not found"),
        ({"camera_path": "/World/camera_light"}, {}, "is a Xform, expected Camera"),
        ({"pcba_root": "/World/x"}, {}, "pcba_target.pcba_root: prim '/World/x' not found"),
        ({}, {"scan_grid": {"x_num": 0, "y_num": 10}}, "scan_grid.x_num / y_num must be >= 1"),
    ],
)
def test_plan_errors_name_the_config_key(stages_board_usd, stages_cookbooks, target, image, message):
    with pytest.raises(ValueError, match=message):
        plan_scan_grid(stages_board_usd, {**stages_cookbooks(BOARD, "pcba_target"), **target},
                       {**stages_cookbooks(BOARD, "day0_image"), **image})  # fmt: skip


def test_select_cells(grid):
    assert len(select_cells(grid, -1)) == 100 and len(select_cells(grid, None)) == 100
    five = [c.name for c in select_cells(grid, 5, seed=0)]
    assert len(set(five)) == 5 and five == [c.name for c in select_cells(grid, 5, seed=0)]
    assert five != [c.name for c in select_cells(grid, 5, seed=1)]
    with pytest.raises(ValueError, match="max_image_count 0"):
        select_cells(grid, 0)


def test_cli_scan_grid_json(stages_board_usd, tmp_path, capsys):
    data = Path(__file__).parent / "data" / BOARD
    out = tmp_path / "grid.json"
    args = ["scan-grid", "--scene", str(stages_board_usd), "--pcba-target", str(data / "pcba_target.yaml"),
            "--image-config", str(data / "day0_image.yaml"), "--json", str(out)]  # fmt: skip
    assert dig_main(args) == 0
    assert "scan-grid: 100 cells" in capsys.readouterr().out
    doc = json.loads(out.read_text())
    assert doc["class_counts"] == {"capacitor": 24, "pad": 25, "solder": 24} and len(doc["cells"]) == 100
    assert dig_main(args[:1] + args[3:]) == 1  # pcba_target.scene is the __SCENE__ sentinel
    assert "ERROR: no scene: pass --scene" in capsys.readouterr().err
