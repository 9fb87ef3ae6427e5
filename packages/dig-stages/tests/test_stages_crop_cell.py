"""crop_cell: one test per day0_crop.yaml parameter on small drawn frames, and numpy == OpenCV."""

from __future__ import annotations

import re

import numpy as np
import pytest
from dig_stages import crop
from dig_stages.crop import Roi, close_mask, crop_cell, crop_settings, label_components, parse_color

COLORS = {"capacitor": (255, 197, 25, 255), "ic": (255, 25, 82, 255), "solder": (25, 255, 140, 255)}
LABELS = {
    "(0, 0, 0, 0)": {"class": "BACKGROUND"},
    "(0, 0, 0, 255)": {"class": "UNLABELLED"},
    **{f"({r}, {g}, {b}, {a})": {"class": c} for c, (r, g, b, a) in COLORS.items()},
}
BASE = {"classes": ["capacitor"], "morph_kernel": 0, "min_area": 1, "offset": 0, "edge_skip": False,
        "min_coverage": 0.0, "class_dirs": {"capacitor": "passive_component", "ic": "IC"}}  # fmt: skip


def frame(rects: list[tuple[str, int, int, int, int]], size: tuple[int, int] = (100, 120)):
    """(rgb, seg, labels) with each (class, x0, y0, x1, y1) rectangle painted in its class colour."""
    h, w = size
    seg = np.zeros((h, w, 4), np.uint8)
    seg[..., 3] = 255  # unlabelled board
    for cls, x0, y0, x1, y1 in rects:
        seg[y0:y1, x0:x1] = COLORS[cls]
    rgb = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
    return rgb, seg, LABELS


def run(rects, size=(100, 120), **over) -> list[Roi]:
    return crop_cell(*frame(rects, size), {**BASE, **over})


def test_single_component_box_area_coverage_material():
    (roi,) = run([("capacitor", 30, 40, 50, 50)], offset=10)
    assert roi == Roi("passive_component", "capacitor", (20, 30, 60, 60), (30, 40, 50, 50), 200, 1.0, False)
    assert roi.slices == (slice(30, 60), slice(20, 60))


def test_accepts_whole_cookbook_or_crop_section():
    rgb, seg, labels = frame([("capacitor", 30, 40, 50, 50)])
    assert crop_cell(rgb, seg, labels, {"output": {"dir": "x"}, "crop": BASE}) == crop_cell(
        rgb, seg, labels, BASE
    )


@pytest.mark.parametrize(("min_area", "kept"), [(49, 1), (50, 1), (51, 0)])
def test_min_area_rejects_smaller_components(min_area, kept):
    assert len(run([("capacitor", 10, 10, 20, 15)], min_area=min_area)) == kept  # area 50


@pytest.mark.parametrize(("max_area", "kept"), [(None, 2), (200, 2), (199, 1), (50, 1), (49, 0)])
def test_max_area_upper_bound_and_null_means_none(max_area, kept):
    rois = run(
        [("capacitor", 10, 10, 30, 20), ("capacitor", 60, 60, 70, 65)], max_area=max_area
    )  # 200 and 50
    assert len(rois) == kept


def test_offset_pads_and_clips_at_image_edge():
    (roi,) = run([("capacitor", 3, 4, 13, 14)], offset=10, size=(30, 20))
    assert roi.component_box == (3, 4, 13, 14)
    assert roi.box == (0, 0, 20, 24)  # x1 clipped to width 20, y1 = 14 + 10 inside height 30


@pytest.mark.parametrize(
    "rect",
    [(0, 10, 10, 20), (10, 0, 20, 10), (110, 10, 120, 20), (10, 90, 20, 100)],
    ids=["l", "t", "r", "b"],
)
def test_edge_skip_drops_components_cut_by_the_frame(rect):
    rects = [("capacitor", *rect), ("capacitor", 50, 40, 60, 50)]
    assert [r.component_box for r in run(rects, edge_skip=True)] == [(50, 40, 60, 50)]
    assert len(run(rects, edge_skip=False)) == 2


def test_min_coverage_uses_component_pixels_over_its_bbox():
    # an L of two 2-px bars: 2*20 + 2*18 = 76 px over a 20x20 bbox -> coverage 0.19
    rects = [("capacitor", 10, 10, 30, 12), ("capacitor", 10, 12, 12, 30)]
    (roi,) = run(rects, min_coverage=0.0)
    assert roi.area == 76 and roi.coverage == pytest.approx(76 / 400)
    assert run(rects, min_coverage=0.19) and not run(rects, min_coverage=0.2)


FIVE = [("capacitor", 10 + 20 * k, 10 + 3 * k, 20 + 20 * k, 20 + 3 * k) for k in range(5)]


def test_max_emit_caps_in_raster_order_and_null_is_uncapped():
    assert len(run(FIVE, max_emit=None)) == 5
    capped = run(FIVE, max_emit=3)
    assert [r.component_box[1] for r in capped] == [10, 13, 16]  # the three top-most


def test_max_emit_caps_each_material_separately():
    rects = FIVE + [("ic", 10 + 20 * k, 60, 20 + 20 * k, 70) for k in range(4)]
    rois = run(rects, classes=["capacitor", "ic"], max_emit=2)
    assert [r.material for r in rois].count("passive_component") == 2
    assert [r.material for r in rois].count("IC") == 2


def test_max_emit_zero_is_rejected():
    with pytest.raises(ValueError, match="crop.max_emit: must be null or an integer >= 1"):
        run(FIVE, max_emit=0)


def test_bridge_adds_a_pair_crop_for_near_rois_of_one_material():
    rects = [("capacitor", 10, 10, 20, 20), ("capacitor", 25, 10, 35, 20), ("capacitor", 90, 70, 100, 80)]
    assert len(run(rects, bridge=False)) == 3
    rois = run(rects, bridge=True, bridge_dis=30, offset=2)
    assert [r.bridge for r in rois] == [False, False, False, True]
    assert rois[-1].component_box == (10, 10, 35, 20) and rois[-1].box == (8, 8, 37, 22)
    assert rois[-1].area == 200
    assert [r.bridge for r in run(rects, bridge=True, bridge_dis=4)] == [False] * 3  # gap is 5 px
    assert len(run(rects, bridge=True, bridge_classes=["ic"])) == 3  # capacitor may not pair


def test_bridge_counts_towards_max_emit_after_the_singles():
    rects = [("capacitor", 10, 10, 20, 20), ("capacitor", 25, 10, 35, 20)]
    assert [r.bridge for r in run(rects, bridge=True, max_emit=2)] == [False, False]


def test_class_dirs_maps_material_and_unmapped_class_keeps_its_name():
    rects = [("capacitor", 10, 10, 20, 20), ("ic", 50, 10, 70, 30)]
    rois = run(rects, classes=["capacitor", "ic"])
    assert [(r.cls, r.material) for r in rois] == [("capacitor", "passive_component"), ("ic", "IC")]
    rois = run(rects, classes=["capacitor", "ic"], class_dirs={})
    assert [r.material for r in rois] == ["capacitor", "ic"]


def test_classes_whitelist_ignores_other_labels():
    rects = [("capacitor", 20, 20, 30, 30), ("solder", 30, 20, 34, 30), ("ic", 60, 60, 70, 70)]
    (roi,) = run(rects)
    assert roi.component_box == (20, 20, 30, 30)
    assert run([("solder", 20, 20, 30, 30)]) == []


def test_dominant_class_of_a_merged_component_sets_its_material():
    rects = [("capacitor", 20, 20, 30, 30), ("ic", 30, 20, 50, 30)]  # touching: one component
    (roi,) = run(rects, classes=["capacitor", "ic"])
    assert (roi.cls, roi.material, roi.area) == ("ic", "IC", 300)


@pytest.mark.parametrize(("gap", "radius", "count"), [(2, 0, 2), (2, 1, 1), (3, 1, 2), (4, 2, 1), (5, 2, 2)])
def test_morph_kernel_closes_gaps_up_to_twice_its_radius(gap, radius, count):
    rects = [("capacitor", 20, 20, 30, 30), ("capacitor", 30 + gap, 20, 40 + gap, 30)]
    rois = run(rects, morph_kernel=radius)
    assert len(rois) == count
    if count == 1:  # area counts the labelled pixels, not the ones the close filled in
        assert rois[0].area == 200 and rois[0].component_box == (20, 20, 40 + gap, 30)


def test_close_never_stretches_a_box_onto_the_border():
    # 1 px above the bottom border: OpenCV's close border would extend the closed region to it
    (roi,) = run([("capacitor", 20, 80, 40, 99)], morph_kernel=2, edge_skip=True)
    assert roi.component_box == (20, 80, 40, 99)


def test_comma_joined_label_counts_for_each_of_its_classes():
    rgb, seg, _ = frame([("capacitor", 20, 20, 30, 30)])
    labels = {"(255, 197, 25, 255)": {"class": "solder,capacitor"}}
    assert len(crop_cell(rgb, seg, labels, BASE)) == 1


def test_numbering_order_is_raster_and_repeatable():
    rects = [("capacitor", 80, 10, 90, 20), ("capacitor", 10, 50, 20, 60), ("capacitor", 40, 10, 50, 20)]
    boxes = [r.component_box[:2] for r in run(rects)]
    assert boxes == [(40, 10), (80, 10), (10, 50)]
    assert run(rects) == run(list(reversed(rects)))


def test_shipped_0603_defaults_on_a_realistic_frame():
    cfg = {"classes": ["capacitor"], "morph_kernel": 1, "min_area": 50, "max_area": None, "offset": 10,
           "edge_skip": True, "min_coverage": 0.2, "max_emit": 10, "bridge": False,
           "class_dirs": {"capacitor": "passive_component"}}  # fmt: skip
    rects = [("capacitor", 20, 20, 36, 28), ("capacitor", 37, 20, 40, 28), ("capacitor", 0, 50, 16, 58),
             ("capacitor", 60, 60, 64, 64)]  # fmt: skip
    rois = crop_cell(*frame(rects), cfg)
    # the 1-px split body merges; the border one is skipped; the 16-px one is under min_area
    assert [(r.component_box, r.box) for r in rois] == [((20, 20, 40, 28), (10, 10, 50, 38))]


def test_frame_without_whitelisted_pixels_and_size_mismatch():
    rgb, seg, labels = frame([])
    assert crop_cell(rgb, seg, labels, BASE) == []
    with pytest.raises(ValueError, match="sizes differ"):
        crop_cell(rgb[:10], seg, labels, BASE)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"classes": ["capacitor"], "min_aera": 5}, "crop.min_aera: unknown key (did you mean 'min_area'?)"),
        ({"classes": []}, "crop.classes: must be a non-empty list"),
        ({"classes": ["capacitor"], "offset": -1}, "crop.offset: must be an integer >= 0"),
        ({"classes": ["capacitor"], "max_area": True}, "crop.max_area: must be null or an integer >= 1"),
        ({"classes": ["capacitor"], "min_coverage": 1.5}, "crop.min_coverage: must be a number in [0, 1]"),
    ],
)
def test_crop_settings_rejects_bad_values_naming_the_key(section, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        crop_settings({"crop": section})


def test_crop_settings_fills_defaults():
    out = crop_settings({"classes": "ic"})
    assert out["classes"] == ["ic"] and out["source"] == "trigger_0000" and out["max_emit"] is None


def test_parse_color_forms():
    assert parse_color("(140, 25, 255, 255)") == (140, 25, 255, 255)
    assert parse_color("(1, 2, 3)") == (1, 2, 3, 255)
    with pytest.raises(ValueError):
        parse_color("(300, 0, 0, 0)")


# ---------------------------------------------------------------------------------------------
# the numpy path and the OpenCV path give the same result

needs_cv2 = pytest.mark.skipif(crop.cv2 is None, reason="OpenCV not installed")


def _partition(labels: np.ndarray) -> set[frozenset[int]]:
    flat = labels.ravel()
    order = np.argsort(flat, kind="stable")
    groups = np.split(order, np.cumsum(np.bincount(flat))[:-1])
    return {frozenset(g.tolist()) for g in groups[1:] if len(g)}


@needs_cv2
@pytest.mark.parametrize("seed", range(6))
def test_close_and_label_agree_between_backends(seed):
    rng = np.random.default_rng(seed)
    mask = rng.random((37 + seed, 53)) < 0.15 + 0.1 * seed
    for radius in (0, 1, 2, 3):
        closed = close_mask(mask, radius, "numpy")
        assert np.array_equal(closed, close_mask(mask, radius, "cv2")), radius
        (n1, l1, b1), (n2, l2, b2) = label_components(closed, "numpy"), label_components(closed, "cv2")
        assert n1 == n2
        assert _partition(l1) == _partition(l2)
        assert sorted(map(tuple, b1[1:].tolist())) == sorted(map(tuple, b2[1:].tolist()))


def test_numpy_labels_are_raster_ordered_with_8_connectivity():
    mask = np.zeros((6, 8), bool)
    mask[0, 5] = mask[1, 4] = True  # diagonal neighbours: one component
    mask[3, 0:2] = mask[4, 6] = True
    n, labels, boxes = label_components(mask, "numpy")
    assert n == 3
    assert labels[0, 5] == labels[1, 4] == 1 and labels[3, 0] == 2 and labels[4, 6] == 3
    assert boxes[1:].tolist() == [[4, 0, 6, 2], [0, 3, 2, 4], [6, 4, 7, 5]]


@needs_cv2
@pytest.mark.parametrize("radius", [0, 1, 2])
def test_crop_cell_agrees_between_backends(radius):
    rng = np.random.default_rng(radius)
    rects = []
    for _ in range(60):
        x, y = rng.integers(0, 380, 2)
        cls = str(rng.choice(["capacitor", "ic", "solder"]))
        rects.append((cls, int(x), int(y), int(x + rng.integers(2, 25)), int(y + rng.integers(2, 25))))
    rgb, seg, labels = frame(rects, size=(400, 400))
    cfg = {**BASE, "classes": ["capacitor", "ic"], "morph_kernel": radius, "min_area": 20, "offset": 5,
           "edge_skip": True, "min_coverage": 0.2, "bridge": True, "bridge_dis": 10}  # fmt: skip
    numpy_rois = crop_cell(rgb, seg, labels, cfg, backend="numpy")
    assert len(numpy_rois) > 10
    assert numpy_rois == crop_cell(rgb, seg, labels, cfg, backend="cv2")


def test_unknown_backend_is_rejected():
    with pytest.raises(ValueError, match="backend must be auto, cv2 or numpy"):
        crop_cell(*frame(FIVE), BASE, backend="scipy")
