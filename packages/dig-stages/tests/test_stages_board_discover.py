"""board_discover on synthetic stages: the prims and classes found are the ones the stage was built with."""

from __future__ import annotations

import pytest

pytest.importorskip("pxr")

from dig_stages.board_discover import BoardError, body_class, discover, instance_glob  # noqa: E402
from dig_stages.board_grid import grid_size  # noqa: E402
from dig_stages.synthetic_layouts import LAYOUTS, MALFORMED, make_layout, make_malformed  # noqa: E402


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_layout_found_as_built(layout, tmp_path):
    built = make_layout(tmp_path / "s.usda", layout)
    spec = built["layout"]
    scene = discover(built["path"])
    assert scene.camera.path == spec["camera"]
    assert scene.pcba_root.path == spec["pcba_root"]
    assert (scene.ring_light.path if scene.ring_light else None) == spec["ring"]
    assert scene.camera_aperture == spec["aperture"]
    assert {n: len(t.instances) for n, t in scene.types.items()} == {
        n: t[3] for n, t in spec["types"].items()
    }
    for name, t in scene.types.items():
        assert {s.rel: s.cls for s in t.surfaces} == built["classes"][name]
        assert all(i.rsplit("/", 1)[1].startswith(instance_glob(t)[:-1]) for i in t.instances)
    assert bool(scene.board_meshes) == bool(spec["paste"])


def test_surface_class_override_wins(tmp_path):
    built = make_layout(tmp_path / "s.usda", "deep_generic")
    scene = discover(built["path"], surface_classes=[("*mesh_2", "pad")])
    got = {s.rel: (s.cls, s.evidence) for s in scene.types["C_0805"].surfaces}
    assert got["Geo/Parts/mesh_2"] == ("pad", "--surface-class")
    assert got["Geo/Parts/mesh_3"][0] == "solder"


@pytest.mark.parametrize("kind", MALFORMED)
def test_malformed_stage_raises(kind, tmp_path):
    with pytest.raises(BoardError):
        discover(make_malformed(tmp_path / f"{kind}.usda", kind))


def test_unknown_component_suggests(tmp_path):
    built = make_layout(tmp_path / "s.usda", "named_parts")
    with pytest.raises(BoardError, match="did you mean CAP_1206"):
        discover(built["path"], components=["CAP_1026"])


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("_115_2819_000_1 tn__1152819000_1SC70_5", "ic"),
        ("_0603_H100", "capacitor"),
        ("R_0402_R", "resistor"),
        ("U_QFN16", "ic"),
        ("Sensor-X", "sensor_x"),
    ],
)
def test_body_class_from_package_name(name, cls):
    assert body_class(name.split()[0], [f"/r/t/{p}" for p in name.split()[1:]])[0] == cls


def test_grid_size_tiles_the_board():
    # a 40 x 24 board, 20 x 11.25 frames rotated -90 (11.25 along X, 20 along Y)
    assert grid_size((0, 0, 0, 40, 24, 1), (20, 11.25), -90) == (4, 2)
    assert grid_size((0, 0, 0, 20, 11.25, 1), (20, 11.25), 0) == (1, 1)
