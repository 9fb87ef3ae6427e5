"""Synthetic board layouts for `dig board new` tests, and malformed stages it must refuse."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pxr import Gf, Sdf, Usd, UsdGeom, UsdShade

from dig_stages.synthetic_mesh import BOARD_TOP, box, mesh, new_stage, quad

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


def _layout_scene(stage: Usd.Stage, spec: dict[str, Any]) -> None:
    """The layout's PCBA root (its top prim the default), camera rig, optional ring light and substrate."""
    size = spec["size"]
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
    mesh(stage, f"{root}/Substrate/fr4", [box(0, size[0], 0, size[1], 0, BOARD_TOP)], (0.05, 0.3, 0.12))


def _layout_component(
    stage: Usd.Stage,
    inst: str,
    sub: str,
    parts: list[Part],
    center: tuple[float, float],
    materials: dict[str, UsdShade.Material],
) -> tuple[dict[str, str], list[tuple[list, list]]]:
    """One unrotated instance at `center`: its meshes (material-bound where the part names one), and
    ({surface rel path: class}, the paste-mask openings of its pads). `materials` caches /Looks prims."""
    cx, cy = center
    UsdGeom.Xform.Define(stage, inst).AddTranslateOp().Set(Gf.Vec3d(cx, cy, BOARD_TOP))
    classes: dict[str, str] = {}
    paste: list[tuple[list, list]] = []
    for mesh_name, boxes, color, cls, material in parts:
        rel = f"{sub}/{mesh_name}" if sub else mesh_name
        path = f"{inst}/{rel}"
        for p in Sdf.Path(path).GetPrefixes()[len(Sdf.Path(inst).GetPrefixes()) : -1]:
            UsdGeom.Xform.Define(stage, p)
        mesh(stage, path, [box(*b) for b in boxes], color)
        if material:
            if material not in materials:
                materials[material] = UsdShade.Material.Define(stage, f"/Looks/{material}")
            UsdShade.MaterialBindingAPI.Apply(stage.GetPrimAtPath(path)).Bind(materials[material])
        classes[rel] = cls
        if cls == "pad":
            paste += [quad(cx + b[0], cx + b[1], cy + b[2], cy + b[3], BOARD_TOP + 0.005) for b in boxes]
    return classes, paste


def make_layout(out: str | Path, name: str, *, seed: int = 0) -> dict[str, Any]:
    """Write layout `name` of LAYOUTS; returns {"path", "layout", "classes": {type: {surface rel path: class}},
    "instances": {type: [paths]}}. Components sit on a seeded 4 mm grid, unrotated."""
    spec = LAYOUTS[name]
    rng = np.random.default_rng(seed)
    size = spec["size"]
    stage = new_stage(out)
    root = spec["pcba_root"]
    _layout_scene(stage, spec)
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
            center = ((slot % nx + 0.5) * pitch, (slot // nx + 0.5) * pitch)
            inst = f"{root}/{type_name}/{tmpl.format(k=k)}"
            rels, openings = _layout_component(stage, inst, sub, parts, center, materials)
            classes.setdefault(type_name, {}).update(rels)
            paste += openings
            instances.setdefault(type_name, []).append(inst)
    if spec["paste"]:
        mesh(stage, f"{root}/{spec['paste']}", paste, (0.72, 0.72, 0.74))
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
        mesh(stage, "/World/Board/fr4", [box(0, 10, 0, 10, 0, BOARD_TOP)], (0.05, 0.3, 0.12))
        stage.GetRootLayer().Save()
        return str(out)
    raise ValueError(f"malformed kind {kind!r}: one of {', '.join(MALFORMED)}")
