"""Read a PCBA USD scene the way a board config names it: camera, PCBA root, component types, surface classes.

Local tool code for `dig board new` (never injected into pods). Every finding carries the rule
that produced it and its evidence, so the report can say what was found and what was guessed.
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pxr import Usd, UsdGeom, UsdShade

from dig_stages.board_grid import grid_size, plan_grid, render_grid_preview

__all__ = [
    "PAD",
    "SOLDER",
    "BoardError",
    "ComponentType",
    "Scene",
    "Surface",
    "body_class",
    "discover",
    "grid_size",
    "instance_glob",
    "open_stage",
    "plan_grid",
    "render_grid_preview",
]

PAD, SOLDER = "pad", "solder"
# Keywords in material names and prim names (lower case), in the order they are tried.
KEYWORDS: list[tuple[str, str]] = [
    (r"solder|sac305|tin|fillet|paste(?!mask)", SOLDER),
    (r"pastemask|copper|(^|[^a-z])pads?([^a-z]|$)|enig|hasl", PAD),
    (r"ceramic|mlcc|capacitor", "capacitor"),
    (r"resistor|thick_?film", "resistor"),
    (r"mou?ld|epoxy|(^|[^a-z])ic([^a-z]|$)", "ic"),
]
# Package names in component type / instance names -> body class.
IC_PACKAGE = re.compile(r"sc70|sot|soic|sop|qfn|qfp|bga|dfn|tssop|msop|(^|_)u\d|(^|_)ic(_|$)", re.I)
CHIP_SIZE = re.compile(r"(^|_)(01005|0201|0402|0603|0805|1206|1210|2010|2512)(?:_?([a-z]))?", re.I)
THIN = 0.1  # a surface at most 10% of the component's height thick is flat
RAISED = 0.6  # a surface reaching 60% of the component's height belongs to the body


class BoardError(ValueError):
    """A stage or an option that a board cannot be made from; the message names what is wrong."""


@dataclass
class Found:
    """One located prim: its path and the rule that picked it."""

    path: str
    rule: str


@dataclass
class Surface:
    """A mesh of a component type (path relative to the instance) and its class with the evidence."""

    rel: str
    cls: str
    evidence: str
    strong: bool
    bounds: tuple[float, ...] = ()


@dataclass
class ComponentType:
    name: str  # the type prim's name (defect_image.component_types)
    path: str
    instances: list[str]
    surfaces: list[Surface] = field(default_factory=list)

    @property
    def body_classes(self) -> list[str]:
        return sorted({s.cls for s in self.surfaces} - {PAD, SOLDER})


@dataclass
class Scene:
    path: str
    camera: Found
    camera_xform: Found
    ring_light: Found | None
    pcba_root: Found
    camera_aperture: float | None
    types: dict[str, ComponentType]
    board_meshes: dict[str, Surface]  # board-level meshes outside instances that carry a class (paste mask)


def open_stage(path: str | Path):
    """The stage at `path`, or a BoardError saying why it is not a USD scene."""
    p = Path(path)
    if not p.is_file():
        raise BoardError(f"--usd {path}: no such file")
    try:
        stage = Usd.Stage.Open(str(p))
    except Exception as exc:  # usd-core raises Tf.ErrorException with a multi-line text
        text = str(exc).strip().splitlines()[-1].strip() if str(exc).strip() else type(exc).__name__
        first = text.rsplit(" : ", 1)[-1].strip("'\" ")
        raise BoardError(f"--usd {path}: not a USD file usd-core can open ({first[:200]})") from None
    if stage is None:
        raise BoardError(f"--usd {path}: not a USD file usd-core can open")
    return stage


def _is_placed(prim) -> bool:
    """An Xformable with authored transform ops: a prim the scene places somewhere (an instance)."""
    if not prim.IsA(UsdGeom.Xformable) or prim.IsA(UsdGeom.Mesh):
        return False
    return bool(UsdGeom.Xformable(prim).GetOrderedXformOps()) or prim.IsInstance()


def _find_camera(stage) -> tuple[Found, Found, Found | None, float | None]:
    cams = [p for p in stage.Traverse() if p.IsA(UsdGeom.Camera)]
    if not cams:
        raise BoardError(
            "the stage has no camera (UsdGeom.Camera prim): the scan moves the board camera; "
            "add the AOI camera to the scene"
        )
    rule = "the only UsdGeom.Camera"
    if len(cams) > 1:
        named = [c for c in cams if re.search(r"aoi|camera", c.GetName(), re.I)] or cams
        cams = sorted(named, key=lambda c: len(str(c.GetPath())))
        rule = f"first of {len(named)} cameras named like an AOI camera (shortest path)"
    cam = cams[0]
    parent = cam.GetParent()
    if parent.IsPseudoRoot() or parent.GetPath().pathElementCount == 1 and not _is_placed(parent):
        xform = Found(
            str(cam.GetPath()), "the camera itself (its parent is the stage root or an unplaced root)"
        )
    else:
        xform = Found(str(parent.GetPath()), "the camera's parent Xform (moves camera and lights together)")
    ring = None
    rig = stage.GetPrimAtPath(xform.path)
    for prim in [*rig.GetChildren(), *stage.Traverse()]:
        if prim.GetPath() != cam.GetPath() and re.search(r"ring", prim.GetName(), re.I):
            where = (
                "child of the camera Xform" if prim.GetParent().GetPath() == rig.GetPath() else "first prim"
            )
            ring = Found(str(prim.GetPath()), f"{where} named *ring*")
            break
    aperture = UsdGeom.Camera(cam).GetHorizontalApertureAttr().Get()
    return Found(str(cam.GetPath()), rule), xform, ring, (float(aperture) if aperture is not None else None)


def _meshes_under(prim) -> list:
    return [p for p in Usd.PrimRange(prim) if p.IsA(UsdGeom.Mesh)]


def _find_instances(stage) -> tuple[Found, dict[str, list[str]]]:
    """Instances: placed prims holding meshes (outermost below their type prim), grouped by grandparent."""
    placed = [p for p in stage.Traverse() if _is_placed(p) and not p.IsA(UsdGeom.Camera) and _meshes_under(p)]
    by_root: dict[str, list] = {}
    for p in placed:
        parent = p.GetParent()
        if parent.IsPseudoRoot() or parent.GetParent().IsPseudoRoot():
            continue
        by_root.setdefault(str(parent.GetParent().GetPath()), []).append(p)
    if not by_root:
        raise BoardError(
            "no prim holds component instances: expected <pcba_root>/<type>/<instance> where each "
            "instance is a placed Xform (translate/rotate ops) holding the component's meshes"
        )
    root = max(by_root, key=lambda r: (len(by_root[r]), r.count("/")))
    # an instance nested inside another candidate (a placed sub-part) is part of that instance
    inst = [
        p
        for p in by_root[root]
        if not any(str(p.GetPath()).startswith(str(q.GetPath()) + "/") for q in by_root[root] if q != p)
    ]
    types: dict[str, list[str]] = {}
    for p in sorted(inst, key=lambda q: str(q.GetPath())):
        types.setdefault(str(p.GetParent().GetPath()), []).append(str(p.GetPath()))
    others = len(by_root) - 1
    rule = (
        f"common grandparent of the {len(inst)} placed Xforms holding meshes (<root>/<type>/<instance>)"
        + (f"; {others} other candidate root(s) held fewer" if others else "")
    )
    return Found(root, rule), types


def _keyword(text: str) -> str | None:
    low = text.lower()
    for rx, cls in KEYWORDS:
        if re.search(rx, low):
            return cls
    return None


def _material(prim) -> str | None:
    mat, _rel = UsdShade.MaterialBindingAPI(prim).ComputeBoundMaterial()
    return mat.GetPrim().GetName() if mat else None


def body_class(type_name: str, instances: list[str]) -> tuple[str, str]:
    """Body class of a component type from its package name, with the reason."""
    text = " ".join([type_name, *(i.rsplit("/", 1)[1] for i in instances[:1])])
    if IC_PACKAGE.search(text):
        return "ic", f"IC package name in {text!r}"
    m = CHIP_SIZE.search(text)
    if m:
        if (m.group(3) or "").lower() == "r":
            return "resistor", f"chip size {m.group(2)} with R in {text!r}"
        return "capacitor", f"chip size {m.group(2)} in {text!r} (chip passive, read as capacitor)"
    clean = re.sub(r"[^a-z0-9]+", "_", type_name.lower()).strip("_") or "component"
    return clean, f"no package name known in {text!r}: class named after the type"


Box = tuple[float, float, float, float, float, float]  # x0, y0, z0, x1, y1, z1


@dataclass
class _Shape:
    """One instance's geometry: board level, height, the raised body's xy box, and the body's class."""

    z0: float
    height: float
    body: tuple[float, float, float, float] | None
    body_cls: str
    body_why: str


def _classify(stage: Any, ctype: ComponentType, cache: Any, overrides: list[tuple[str, str]]) -> None:
    inst = stage.GetPrimAtPath(ctype.instances[0])
    meshes = _meshes_under(inst)
    boxes: dict[str, Box] = {}
    for m in meshes:
        r = cache.ComputeWorldBound(m).ComputeAlignedRange()
        if not r.IsEmpty():
            lo, hi = r.GetMin(), r.GetMax()
            boxes[str(m.GetPath())] = (lo[0], lo[1], lo[2], hi[0], hi[1], hi[2])
    if not boxes:
        raise BoardError(
            f"component type {ctype.name}: instance {ctype.instances[0]} has no mesh with bounds"
        )
    shape = _shape(ctype, boxes)
    prefix = ctype.instances[0] + "/"
    for m in meshes:
        path = str(m.GetPath())
        rel = path[len(prefix) :]
        b = boxes.get(path)
        s = _named_surface(m, rel, ctype.name, overrides) or _geometry_surface(rel, b, shape)
        s.bounds = b or ()
        ctype.surfaces.append(s)
    ctype.surfaces.sort(key=lambda s: s.rel)


def _shape(ctype: ComponentType, boxes: dict[str, Box]) -> _Shape:
    z0 = min(b[2] for b in boxes.values())
    height = max(b[5] for b in boxes.values()) - z0 or 1.0
    raised = [b for b in boxes.values() if b[5] - z0 >= RAISED * height]
    body = (
        (
            min(b[0] for b in raised),
            min(b[1] for b in raised),
            max(b[3] for b in raised),
            max(b[4] for b in raised),
        )
        if raised
        else None
    )
    body_cls, body_why = body_class(ctype.name, ctype.instances)
    return _Shape(z0, height, body, body_cls, body_why)


def _named_surface(mesh: Any, rel: str, type_name: str, overrides: list[tuple[str, str]]) -> Surface | None:
    """A class from --surface-class, the mesh's material or its prim name (strong evidence), else None."""
    path = str(mesh.GetPath())
    forced = next(
        (
            c
            for pat, c in overrides
            if any(fnmatch.fnmatchcase(t, pat) for t in (rel, f"{type_name}/{rel}", mesh.GetName(), path))
        ),
        None,
    )
    mat = _material(mesh)
    by_mat = _keyword(mat) if mat else None
    by_name = _keyword(rel)
    if forced:
        return Surface(rel, forced, "--surface-class", True)
    if by_mat:
        return Surface(rel, by_mat, f"material {mat!r}", True)
    if by_name:
        return Surface(rel, by_name, f"prim name {rel!r}", True)
    return None


def _geometry_surface(rel: str, b: Box | None, shape: _Shape) -> Surface:
    """A class guessed from where the mesh sits: raised (body), thin and flat (pad or solder), else solder."""
    if b is None:
        return Surface(rel, SOLDER, "no bounds (empty mesh): guessed solder", False)
    height, body = shape.height, shape.body
    dz, top, base = b[5] - b[2], b[5] - shape.z0, b[2] - shape.z0
    size = f"z {base:.3g}..{top:.3g} of height {height:.3g}"
    if top >= RAISED * height:
        return Surface(rel, shape.body_cls, f"geometry: raised ({size}); body class: {shape.body_why}", False)
    if dz <= THIN * height and base <= THIN * height:
        under = (
            body is not None and b[0] >= body[0] and b[1] >= body[1] and b[3] <= body[2] and b[4] <= body[3]
        )
        return Surface(
            rel,
            SOLDER if under else PAD,
            f"geometry: thin flat at board level ({size})"
            + (", under the body" if under else ", outside the body"),
            False,
        )
    return Surface(rel, SOLDER, f"geometry: low, not flat ({size}): fillet or lead", False)


def _board_meshes(stage: Any, root: str, types: dict[str, ComponentType]) -> dict[str, Surface]:
    """Meshes under the PCBA root outside every instance whose material or name says pad (paste mask)."""
    inst_prefixes = tuple(i + "/" for t in types.values() for i in t.instances)
    board_meshes: dict[str, Surface] = {}
    for m in _meshes_under(stage.GetPrimAtPath(root)):
        path = str(m.GetPath())
        if path.startswith(inst_prefixes):
            continue
        rel = path[len(root) + 1 :]
        mat = _material(m)
        cls = (_keyword(mat) if mat else None) or _keyword(rel)
        if cls == PAD:
            board_meshes[rel] = Surface(
                rel,
                PAD,
                f"{'material ' + repr(mat) if mat else 'prim name'}: paste mask / pads at board level",
                True,
            )
    return board_meshes


def discover(
    usd: str | Path,
    *,
    components: list[str] | None = None,
    surface_classes: list[tuple[str, str]] | None = None,
) -> Scene:
    """Analyse the scene; `components` (type prim names) restrict which types get surfaces and classes."""
    stage = open_stage(usd)
    camera, xform, ring, aperture = _find_camera(stage)
    root, by_type = _find_instances(stage)
    types = {p.rsplit("/", 1)[1]: ComponentType(p.rsplit("/", 1)[1], p, inst) for p, inst in by_type.items()}
    chosen = components or list(types)
    missing = [c for c in chosen if c not in types]
    if missing:
        from difflib import get_close_matches

        hint = get_close_matches(missing[0], list(types), 1)
        raise BoardError(
            f"--component {missing[0]}: not a component type of the stage"
            + (f" (did you mean {hint[0]}?)" if hint else "")
            + f"; types under {root.path}: {', '.join(sorted(types))}"
        )
    cache = UsdGeom.BBoxCache(Usd.TimeCode.Default(), [UsdGeom.Tokens.default_, UsdGeom.Tokens.render])
    for name in chosen:
        _classify(stage, types[name], cache, list(surface_classes or []))
    board_meshes = _board_meshes(stage, root.path, types)
    return Scene(str(usd), camera, xform, ring, root, aperture, {n: types[n] for n in types}, board_meshes)


def instance_glob(ctype: ComponentType) -> str:
    """Glob of the type's instance names: their common prefix, then `*`."""
    names = [i.rsplit("/", 1)[1] for i in ctype.instances]
    return os.path.commonprefix(names).rstrip("0123456789") + "*"
