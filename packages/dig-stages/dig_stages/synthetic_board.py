"""Seeded synthetic PCB board USDs: the 0603_H100 scene structure, other layouts and malformed stages (tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pxr import Gf, Sdf, Usd, UsdGeom, UsdShade, Vt

from dig_stages._common import fail, info, load_options, run_main

# The paths the shipped board cookbooks name (cookbooks.md §3), so the planner reads the same config.
CAMERA_XFORM = "/World/camera_light"
CAMERA_PATH = "/World/camera_light/Camera"
RING_LIGHT_ROOT = "/World/camera_light/aoi_ring_light"
PCBA_ROOT = "/World/pcba_main_s_detail/PCBA/tn__60014242BASEA04_fM9E"
PASTEMASK = "PASTEMASK_TOP/Geometry/PASTEMASK_TOP__11450_bodies__0"
BOARD_TOP = 1.57  # mm, board thickness (the 0603_H100 demo instance sits at world z 1.57)

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


def _box(x0: float, x1: float, y0: float, y1: float, z0: float, z1: float) -> tuple[list, list]:
    pts = [(x, y, z) for z in (z0, z1) for y in (y0, y1) for x in (x0, x1)]
    faces = [(0, 2, 3, 1), (4, 5, 7, 6), (0, 1, 5, 4), (2, 6, 7, 3), (0, 4, 6, 2), (1, 3, 7, 5)]
    return pts, faces


def _quad(x0: float, x1: float, y0: float, y1: float, z: float) -> tuple[list, list]:
    return [(x0, y0, z), (x1, y0, z), (x1, y1, z), (x0, y1, z)], [(0, 1, 2, 3)]


def _mesh(
    stage: Usd.Stage, path: str, pieces: list[tuple[list, list]], color: tuple[float, float, float]
) -> None:
    points: list = []
    counts: list[int] = []
    indices: list[int] = []
    for pts, faces in pieces:
        base = len(points)
        points += pts
        for f in faces:
            counts.append(len(f))
            indices += [base + i for i in f]
    mesh = UsdGeom.Mesh.Define(stage, path)
    mesh.CreatePointsAttr(Vt.Vec3fArray([Gf.Vec3f(*p) for p in points]))
    mesh.CreateFaceVertexCountsAttr(counts)
    mesh.CreateFaceVertexIndicesAttr(indices)
    arr = np.asarray(points, dtype=float)
    mesh.CreateExtentAttr(Vt.Vec3fArray([Gf.Vec3f(*arr.min(0)), Gf.Vec3f(*arr.max(0))]))
    mesh.CreateDisplayColorAttr([Gf.Vec3f(*color)])


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
    stage = Usd.Stage.CreateNew(str(out))
    stage.SetMetadata("metersPerUnit", 0.001)
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.z)
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
    _mesh(
        stage,
        f"{PCBA_ROOT}/Board/board_body",
        [_box(0, size[0], 0, size[1], 0, BOARD_TOP)],
        (0.05, 0.30, 0.12),
    )
    paste: list[tuple[list, list]] = []
    made: dict[str, list[str]] = {k: [] for k in counts}
    for n, (slot, kind) in enumerate(zip(slots, kinds, strict=True)):
        type_prim, inst_tmpl, sub, parts = KINDS[str(kind)]
        cx = (slot % nx + 0.5) * pitch + rng.uniform(-0.2, 0.2) * pitch
        cy = (slot // nx + 0.5) * pitch + rng.uniform(-0.2, 0.2) * pitch
        rot = float(rng.choice([0.0, 90.0]))
        inst = f"{PCBA_ROOT}/{type_prim}/{inst_tmpl.format(k=n)}"
        xf = UsdGeom.Xform.Define(stage, inst)
        xf.AddTranslateOp().Set(Gf.Vec3d(round(cx, 4), round(cy, 4), BOARD_TOP))
        xf.AddRotateZOp().Set(rot)
        for name, boxes, color in parts:
            _mesh(stage, f"{inst}/{sub}/{name}", [_box(*b) for b in boxes], color)
        # paste-mask openings under the component's outer terminations, in world coordinates
        c, s = (1.0, 0.0) if rot == 0.0 else (0.0, 1.0)
        for x0, x1, y0, y1, _z0, _z1 in parts[0][1]:
            xs = [cx + c * x - s * y for x in (x0 - 0.05, x1 + 0.05) for y in (y0 - 0.05, y1 + 0.05)]
            ys = [cy + s * x + c * y for x in (x0 - 0.05, x1 + 0.05) for y in (y0 - 0.05, y1 + 0.05)]
            paste.append(_quad(min(xs), max(xs), min(ys), max(ys), BOARD_TOP + 0.005))
        made[str(kind)].append(inst)
    _mesh(stage, f"{PCBA_ROOT}/{PASTEMASK}", paste, (0.72, 0.72, 0.74))
    stage.GetRootLayer().Save()
    return {"path": str(out), "components": made}


# Layouts for `dig board new` tests: they differ in component type names, hierarchy depth, surfaces per
# component, evidence (geometry, materials, prim names) and camera placement. A part is
# (mesh name, boxes, colour, class the board should give it, material name or None).
Part = tuple[str, list[tuple[float, ...]], tuple[float, float, float], str, "str | None"]
_GEO_0805: list[Part] = [  # generic mesh names: classes only from geometry
    ("mesh_0", [(-1.3, -0.7, -0.6, 0.6, 0.0, 0.02)], (0.8, 0.55, 0.3), "pad", None),
    ("mesh_1", [(0.7, 1.3, -0.6, 0.6, 0.0, 0.02)], (0.8, 0.55, 0.3), "pad", None),
    ("mesh_2", [(-1.2, -0.95, -0.5, 0.5, 0.0, 0.35)], (0.78, 0.78, 0.8), "solder", None),
    ("mesh_3", [(0.95, 1.2, -0.5, 0.5, 0.0, 0.35)], (0.78, 0.78, 0.8), "solder", None),
    ("mesh_4", [(-1.0, 1.0, -0.6, 0.6, 0.05, 1.2)], (0.55, 0.4, 0.25), "capacitor", None),
]
_QFN: list[Part] = [  # material bindings
    (
        "Pads",
        [(-1.6, -1.2, -1.0, 1.0, 0.0, 0.02), (1.2, 1.6, -1.0, 1.0, 0.0, 0.02)],
        (0.8, 0.55, 0.3),
        "pad",
        "Copper",
    ),
    (
        "Joints",
        [(-1.55, -1.3, -0.9, 0.9, 0.0, 0.2), (1.3, 1.55, -0.9, 0.9, 0.0, 0.2)],
        (0.75, 0.75, 0.78),
        "solder",
        "Solder_SAC305",
    ),
    ("Package", [(-1.5, 1.5, -1.5, 1.5, 0.02, 0.9)], (0.08, 0.08, 0.09), "ic", "Mold_Epoxy"),
    ("Marking", [(-1.2, -0.9, -1.2, -0.9, 0.9, 0.91)], (0.4, 0.4, 0.4), "ic", "Mold_Epoxy"),
]
_R0402M: list[Part] = [
    (
        "Pads",
        [(-0.7, -0.4, -0.3, 0.3, 0.0, 0.02), (0.4, 0.7, -0.3, 0.3, 0.0, 0.02)],
        (0.8, 0.55, 0.3),
        "pad",
        "Copper",
    ),
    ("Body", [(-0.5, 0.5, -0.25, 0.25, 0.02, 0.35)], (0.1, 0.1, 0.1), "resistor", "Thick_Film"),
]
_CAP1206: list[Part] = [  # prim names say the class (except the raised terminations: geometry)
    ("pad_a", [(-2.0, -1.3, -1.0, 1.0, 0.0, 0.02)], (0.8, 0.55, 0.3), "pad", None),
    ("pad_b", [(1.3, 2.0, -1.0, 1.0, 0.0, 0.02)], (0.8, 0.55, 0.3), "pad", None),
    ("solder_joint_a", [(-1.9, -1.5, -0.9, 0.9, 0.0, 0.4)], (0.78, 0.78, 0.8), "solder", None),
    ("solder_joint_b", [(1.5, 1.9, -0.9, 0.9, 0.0, 0.4)], (0.78, 0.78, 0.8), "solder", None),
    ("ceramic_body", [(-1.3, 1.3, -0.8, 0.8, 0.05, 1.1)], (0.6, 0.45, 0.3), "capacitor", None),
    ("end_cap_a", [(-1.6, -1.3, -0.8, 0.8, 0.05, 1.1)], (0.85, 0.85, 0.82), "capacitor", None),
    ("end_cap_b", [(1.3, 1.6, -0.8, 0.8, 0.05, 1.1)], (0.85, 0.85, 0.82), "capacitor", None),
]
_SOT23: list[Part] = [
    (
        "leads",
        [(-1.2, -0.8, -1.3, -0.7, 0.0, 0.3), (0.8, 1.2, -1.3, -0.7, 0.0, 0.3)],
        (0.75, 0.75, 0.78),
        "solder",
        None,
    ),
    ("body", [(-1.45, 1.45, -0.65, 0.65, 0.1, 1.0)], (0.1, 0.1, 0.1), "ic", None),
]
LAYOUTS: dict[str, dict[str, Any]] = {
    "deep_generic": {  # 5-deep PCBA root, camera under a rig head with a ring light, geometry-only classes
        "pcba_root": "/Factory/Line1/Fixture/PCBA/Top",
        "camera": "/Factory/Rig/Head/AOI_Camera",
        "ring": "/Factory/Rig/Head/RingLight",
        "camera_at": (0.5, 0.5, 800.0),
        "aperture": 200.0,
        "size": (40.0, 24.0),
        "paste": "Stencil/PASTEMASK_layer",
        "types": {"C_0805": ("C_0805_{k}", "Geo/Parts", _GEO_0805, 6)},
    },
    "flat_materials": {  # PCBA root at the top, camera at the stage root, no ring light, material bindings
        "pcba_root": "/Board",
        "camera": "/Camera",
        "ring": None,
        "camera_at": (0.3, 0.7, 500.0),
        "aperture": 150.0,
        "size": (30.0, 20.0),
        "paste": None,
        "types": {"U_QFN16": ("U{k}", "", _QFN, 3), "R_0402_R": ("R{k}", "", _R0402M, 4)},
    },
    "named_parts": {  # 3-deep root, off-centre camera, prim names, two types (one left unchosen)
        "pcba_root": "/World/pcb/assembly",
        "camera": "/World/cam_rig/cam",
        "ring": "/World/cam_rig/ring_light_array",
        "camera_at": (0.1, 0.9, 300.0),
        "aperture": 240.0,
        "size": (36.0, 36.0),
        "paste": "stencil/pad_openings",
        "types": {
            "CAP_1206": ("C1206_inst_{k}", "model/lod0", _CAP1206, 5),
            "SOT23_Q": ("Q{k}", "model", _SOT23, 2),
        },
    },
}


def make_layout(out: str | Path, name: str, *, seed: int = 0) -> dict[str, Any]:
    """Write layout `name` of LAYOUTS; returns {"path", "layout", "classes": {type: {surface rel path: class}},
    "instances": {type: [paths]}}. Components sit on a seeded 4 mm grid, unrotated."""
    spec = LAYOUTS[name]
    rng = np.random.default_rng(seed)
    size = spec["size"]
    stage = Usd.Stage.CreateNew(str(out))
    stage.SetMetadata("metersPerUnit", 0.001)
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.z)
    root = spec["pcba_root"]
    for p in Sdf.Path(root).GetPrefixes():
        UsdGeom.Xform.Define(stage, p)
    stage.SetDefaultPrim(stage.GetPrimAtPath(Sdf.Path(root).GetPrefixes()[0]))
    cam_path = Sdf.Path(spec["camera"])
    for p in cam_path.GetPrefixes()[:-1]:
        UsdGeom.Xform.Define(stage, p)
    fx, fy, z = spec["camera_at"]
    cam = UsdGeom.Camera.Define(stage, cam_path)
    rig = (
        cam
        if cam_path.pathElementCount == 1
        else UsdGeom.Xform(stage.GetPrimAtPath(cam_path.GetParentPath()))
    )
    rig.AddTranslateOp().Set(Gf.Vec3d(size[0] * fx, size[1] * fy, z))
    cam.CreateProjectionAttr(UsdGeom.Tokens.orthographic)
    cam.CreateHorizontalApertureAttr(spec["aperture"])
    if spec["ring"]:
        UsdGeom.Xform.Define(stage, spec["ring"])
    _mesh(stage, f"{root}/Substrate/fr4", [_box(0, size[0], 0, size[1], 0, BOARD_TOP)], (0.05, 0.3, 0.12))
    materials: dict[str, UsdShade.Material] = {}
    pitch = 4.0
    nx, ny = int(size[0] // pitch), int(size[1] // pitch)
    total = sum(t[3] for t in spec["types"].values())
    slots = iter(rng.permutation(nx * ny)[:total])
    classes: dict[str, dict[str, str]] = {}
    instances: dict[str, list[str]] = {}
    paste: list[tuple[list, list]] = []
    for type_name, (tmpl, sub, parts, count) in spec["types"].items():
        UsdGeom.Xform.Define(stage, f"{root}/{type_name}")
        for k in range(count):
            slot = int(next(slots))
            cx, cy = (slot % nx + 0.5) * pitch, (slot // nx + 0.5) * pitch
            inst = f"{root}/{type_name}/{tmpl.format(k=k)}"
            UsdGeom.Xform.Define(stage, inst).AddTranslateOp().Set(Gf.Vec3d(cx, cy, BOARD_TOP))
            for mesh_name, boxes, color, cls, material in parts:
                rel = f"{sub}/{mesh_name}" if sub else mesh_name
                path = f"{inst}/{rel}"
                for p in Sdf.Path(path).GetPrefixes()[len(Sdf.Path(inst).GetPrefixes()) : -1]:
                    UsdGeom.Xform.Define(stage, p)
                _mesh(stage, path, [_box(*b) for b in boxes], color)
                if material:
                    if material not in materials:
                        materials[material] = UsdShade.Material.Define(stage, f"/Looks/{material}")
                    UsdShade.MaterialBindingAPI.Apply(stage.GetPrimAtPath(path)).Bind(materials[material])
                classes.setdefault(type_name, {})[rel] = cls
                if cls == "pad":
                    paste += [
                        _quad(cx + b[0], cx + b[1], cy + b[2], cy + b[3], BOARD_TOP + 0.005) for b in boxes
                    ]
            instances.setdefault(type_name, []).append(inst)
    if spec["paste"]:
        _mesh(stage, f"{root}/{spec['paste']}", paste, (0.72, 0.72, 0.74))
    stage.GetRootLayer().Save()
    return {"path": str(out), "layout": spec, "classes": classes, "instances": instances}


MALFORMED = ("not_usd", "no_camera", "no_instances")


def make_malformed(out: str | Path, kind: str) -> str:
    """A stage `dig board new` must refuse: a text file that is not USD, a board without a camera, or
    a camera and meshes but no placed component instance."""
    if kind == "not_usd":
        Path(out).write_text("this is a photo description, not a USD layer\n", encoding="utf-8")
        return str(out)
    if kind == "no_camera":
        make_layout(out, "deep_generic")
        stage = Usd.Stage.Open(str(out))
        stage.RemovePrim(LAYOUTS["deep_generic"]["camera"])
        stage.GetRootLayer().Save()
        return str(out)
    if kind == "no_instances":
        stage = Usd.Stage.CreateNew(str(out))
        UsdGeom.Xform.Define(stage, "/World")
        UsdGeom.Camera.Define(stage, "/World/Camera")
        _mesh(stage, "/World/Board/fr4", [_box(0, 10, 0, 10, 0, BOARD_TOP)], (0.05, 0.3, 0.12))
        stage.GetRootLayer().Save()
        return str(out)
    raise ValueError(f"malformed kind {kind!r}: one of {', '.join(MALFORMED)}")


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
