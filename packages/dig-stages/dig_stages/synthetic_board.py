"""Seeded synthetic PCB board USDs: the 0603_H100 scene structure (other layouts and malformed stages for
tests live in synthetic_layouts, re-exported here), and the `make-synthetic-board` CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pxr import Gf, Sdf, Usd, UsdGeom

from dig_stages._common import fail, info, load_options, run_main
from dig_stages.synthetic_layouts import LAYOUTS, MALFORMED, make_layout, make_malformed
from dig_stages.synthetic_mesh import BOARD_TOP, box, mesh, new_stage, quad

__all__ = [
    "BOARD_TOP",
    "CAMERA_PATH",
    "KINDS",
    "LAYOUTS",
    "MALFORMED",
    "PCBA_ROOT",
    "make_board",
    "make_layout",
    "make_malformed",
    "main",
]

# The paths the shipped board cookbooks name (cookbooks.md §3), so the planner reads the same config.
CAMERA_XFORM = "/World/camera_light"
CAMERA_PATH = "/World/camera_light/Camera"
RING_LIGHT_ROOT = "/World/camera_light/aoi_ring_light"
PCBA_ROOT = "/World/pcba_main_s_detail/PCBA/tn__60014242BASEA04_fM9E"
PASTEMASK = "PASTEMASK_TOP/Geometry/PASTEMASK_TOP__11450_bodies__0"

# (name, box x0 x1 y0 y1 z0 z1 in component-local mm, colour); names follow the semantics globs.
_0603_PARTS = [
    ("surface_8_MASTER_MESH", [(-1.05, -0.55, -0.45, 0.45, 0.0, 0.02), (0.55, 1.05, -0.45, 0.45, 0.0, 0.02)],
     (0.80, 0.55, 0.30)),  # copper pads
    ("surface_7_MASTER_MESH", [(-0.3, 0.3, -0.2, 0.2, 0.0, 0.05)], (0.70, 0.70, 0.72)),  # under-body solder
    ("surface_1_MASTER_MESH", [(-0.95, -0.75, -0.35, 0.35, 0.0, 0.3)], (0.78, 0.78, 0.80)),  # fillet
    ("surface_5_MASTER_MESH", [(0.75, 0.95, -0.35, 0.35, 0.0, 0.3)], (0.78, 0.78, 0.80)),  # fillet
    ("surface_4_MASTER_MESH", [(-0.8, -0.5, -0.4, 0.4, 0.05, 0.8)], (0.85, 0.85, 0.82)),  # termination
    ("surface_6_MASTER_MESH", [(0.5, 0.8, -0.4, 0.4, 0.05, 0.8)], (0.85, 0.85, 0.82)),  # termination
    ("surface_2_MASTER_MESH", [(-0.5, 0.5, -0.4, 0.4, 0.05, 0.8)], (0.55, 0.40, 0.25)),  # ceramic body
]  # fmt: skip
_IC_LEADS = [
    (x - 0.15, x + 0.15, y0, y1, 0.0, 0.3) for x in (-0.65, 0.0, 0.65) for y0, y1 in [(-1.05, -0.6)]
] + [(x - 0.15, x + 0.15, 0.6, 1.05, 0.0, 0.3) for x in (-0.65, 0.65)]
_IC_PARTS = [
    ("surface_1", _IC_LEADS, (0.75, 0.75, 0.78)),  # leads + solder
    ("surface_0", [(-1.0, 1.0, -0.625, 0.625, 0.1, 1.0)], (0.08, 0.08, 0.09)),  # mould body
    ("surface_2", [(-0.8, -0.55, -0.45, -0.2, 1.0, 1.01)], (0.35, 0.35, 0.35)),  # pin-1 mark
]
_R0402_PARTS = [
    (
        "surface_1",
        [(-0.5, -0.3, -0.25, 0.25, 0.0, 0.35), (0.3, 0.5, -0.25, 0.25, 0.0, 0.35)],
        (0.8, 0.8, 0.8),
    ),
    ("surface_0", [(-0.3, 0.3, -0.25, 0.25, 0.0, 0.35)], (0.12, 0.12, 0.12)),
]
# kind -> (type prim, instance name template, LibRef sub path, parts, pad boxes for the paste mask)
KINDS: dict[str, tuple[str, str, str, list[Any]]] = {
    "0603": (
        "_0603_H100",
        "tn__0603_H100_{k}_",
        "LibRef/_0603_H100/Geometry/Components/_0603_H100",
        _0603_PARTS,
    ),
    "ic": ("_115_2819_000_1", "tn__1152819000_1SC70_5_2_{k}_", "LibRef/tn__1152819000_1_zH8", _IC_PARTS),
    "r0402": ("_0402_R100", "tn__0402_R100_{k}_", "LibRef/_0402_R100/Geometry", _R0402_PARTS),
}


def _spark_scene(stage: Usd.Stage, size: tuple[float, float]) -> None:
    """/World, the orthographic camera above the board centre, the ring light, PCBA root and board body."""
    world = UsdGeom.Xform.Define(stage, "/World")
    stage.SetDefaultPrim(world.GetPrim())
    cam_x = UsdGeom.Xform.Define(stage, CAMERA_XFORM)
    cam_x.AddTranslateOp().Set(Gf.Vec3d(size[0] / 2, size[1] / 2, 5000.0))
    cam = UsdGeom.Camera.Define(stage, CAMERA_PATH)
    cam.CreateProjectionAttr(UsdGeom.Tokens.orthographic)
    cam.CreateHorizontalApertureAttr(200.0)
    cam.CreateVerticalApertureAttr(112.5)
    cam.CreateClippingRangeAttr(Gf.Vec2f(1.0, 10000.0))
    UsdGeom.Xform.Define(stage, RING_LIGHT_ROOT)
    for p in Sdf.Path(PCBA_ROOT).GetPrefixes()[1:]:
        UsdGeom.Xform.Define(stage, p)
    mesh(
        stage,
        f"{PCBA_ROOT}/Board/board_body",
        [box(0, size[0], 0, size[1], 0, BOARD_TOP)],
        (0.05, 0.30, 0.12),
    )


def _spark_component(
    stage: Usd.Stage, n: int, kind: str, center: tuple[float, float], rot: float
) -> tuple[str, list[tuple[list, list]]]:
    """Instance n of `kind` at `center` rotated by `rot` (0/90°): its path and its paste-mask openings."""
    type_prim, inst_tmpl, sub, parts = KINDS[kind]
    cx, cy = center
    inst = f"{PCBA_ROOT}/{type_prim}/{inst_tmpl.format(k=n)}"
    xf = UsdGeom.Xform.Define(stage, inst)
    xf.AddTranslateOp().Set(Gf.Vec3d(round(cx, 4), round(cy, 4), BOARD_TOP))
    xf.AddRotateZOp().Set(rot)
    for name, boxes, color in parts:
        mesh(stage, f"{inst}/{sub}/{name}", [box(*b) for b in boxes], color)
    # paste-mask openings under the component's outer terminations, in world coordinates
    paste = []
    c, s = (1.0, 0.0) if rot == 0.0 else (0.0, 1.0)
    for x0, x1, y0, y1, _z0, _z1 in parts[0][1]:
        xs = [cx + c * x - s * y for x in (x0 - 0.05, x1 + 0.05) for y in (y0 - 0.05, y1 + 0.05)]
        ys = [cy + s * x + c * y for x in (x0 - 0.05, x1 + 0.05) for y in (y0 - 0.05, y1 + 0.05)]
        paste.append(quad(min(xs), max(xs), min(ys), max(ys), BOARD_TOP + 0.005))
    return inst, paste


def make_board(
    out: str | Path,
    *,
    seed: int = 0,
    size: tuple[float, float] = (48.0, 30.0),
    counts: dict[str, int] | None = None,
    pitch: float = 6.0,
) -> dict[str, Any]:
    """Write a board USD: components on a jittered `pitch` mm grid (0° or 90°), seeded and deterministic.

    `counts` per kind (`0603` capacitors, `ic` SC70 ICs, `r0402` unlabelled resistors); default
    24/4/8 on a 48 x 30 mm board. Returns {"path", "components": {kind: [instance paths]}}.
    """
    counts = dict({"0603": 24, "ic": 4, "r0402": 8} if counts is None else counts)
    rng = np.random.default_rng(seed)
    nx, ny = int(size[0] // pitch), int(size[1] // pitch)
    total = sum(counts.values())
    if total > nx * ny:
        raise ValueError(
            f"{total} components do not fit {nx} x {ny} slots of {pitch} mm on a {size} mm board"
        )
    slots = rng.permutation(nx * ny)[:total]
    kinds = rng.permutation([k for k, n in counts.items() for _ in range(n)])
    stage = new_stage(out)
    _spark_scene(stage, size)
    paste: list[tuple[list, list]] = []
    made: dict[str, list[str]] = {k: [] for k in counts}
    for n, (slot, kind) in enumerate(zip(slots, kinds, strict=True)):
        cx = (slot % nx + 0.5) * pitch + rng.uniform(-0.2, 0.2) * pitch
        cy = (slot // nx + 0.5) * pitch + rng.uniform(-0.2, 0.2) * pitch
        rot = float(rng.choice([0.0, 90.0]))
        inst, openings = _spark_component(stage, n, str(kind), (cx, cy), rot)
        paste += openings
        made[str(kind)].append(inst)
    mesh(stage, f"{PCBA_ROOT}/{PASTEMASK}", paste, (0.72, 0.72, 0.74))
    stage.GetRootLayer().Save()
    return {"path": str(out), "components": made}


_FIELDS = {"output": ("path", None), "seed": ("int", 0), "counts": ("json", None), "layout": ("str", "")}


def main(argv: list[str]) -> int:
    """`make-synthetic-board OUT.usda [--seed N] [--counts '{"0603": 24, "ic": 4, "r0402": 8}'] [--layout NAME]`
    (--layout: one of LAYOUTS instead of the spark-board structure)."""
    argv = list(argv)
    if argv and not argv[0].startswith("-"):
        argv = ["--output", argv[0], *argv[1:]]

    def body(o: dict[str, Any]) -> int:
        if o["layout"]:
            if o["layout"] not in LAYOUTS:
                fail(f"--layout {o['layout']!r}: one of {', '.join(LAYOUTS)}")
            result = make_layout(o["output"], o["layout"], seed=o["seed"])
            summary = {k: len(v) for k, v in result["instances"].items()}
            info(f"make-synthetic-board: wrote {result['path']} {summary}")
            return 0
        result = make_board(o["output"], seed=o["seed"], counts=o["counts"])
        summary = {k: len(v) for k, v in result["components"].items()}
        info(f"make-synthetic-board: wrote {result['path']} {summary}")
        return 0

    return run_main(body, lambda: load_options(argv, "make-synthetic-board", _FIELDS, required=("output",)))
