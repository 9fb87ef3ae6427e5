"""Scan-grid planner: board bounds, per-class component bounds and the cells the Day-0 render covers."""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pxr import Usd, UsdGeom

from dig_stages._common import fail, info, load_options, run_main
from dig_stages.crop import cell_sort_key, load_config

DEFAULT_APERTURE = 200.0  # what the Day-0 driver injects when no horizontal_aperture is configured
COMPONENT_DEPTH = 2  # <pcba_root>/<type>/<instance>: the instance prim is the component


@dataclass
class Component:
    """Labelled meshes of one component instance and one class, with their world bounds."""

    path: str
    cls: str
    bounds: tuple[float, float, float, float, float, float]  # xmin ymin zmin xmax ymax zmax
    meshes: list[str] = field(default_factory=list)


@dataclass
class Cell:
    """One camera position: `window` is the world XY box (xmin, ymin, xmax, ymax) the frame covers."""

    name: str
    i: int
    j: int
    center: tuple[float, float]
    window: tuple[float, float, float, float]
    components: dict[str, list[str]] = field(default_factory=dict)  # class -> instances whole in the frame
    partial: dict[str, list[str]] = field(default_factory=dict)  # class -> instances cut by the frame border


@dataclass
class ScanGrid:
    scene: str
    camera_path: str
    pcba_root: str
    resolution: tuple[int, int]
    horizontal_aperture: float
    rotation_z: float
    board_bounds: tuple[float, float, float, float, float, float]
    mesh_classes: dict[str, str]
    components: list[Component]
    cells: list[Cell]
    class_counts: dict[str, int]
    coverage: dict[str, Any]

    @property
    def view_size(self) -> tuple[float, float]:
        """World size of one frame along the image's (width, height): aperture is in tenths of a unit."""
        width = self.horizontal_aperture / 10.0
        return width, width * self.resolution[1] / self.resolution[0]

    def cell(self, name: str) -> Cell:
        for c in self.cells:
            if c.name == name:
                return c
        raise KeyError(f"no scan-grid cell {name!r}; cells are x0_y0 .. {self.cells[-1].name}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("mesh_classes")
        return d


def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """Semantics glob of cookbooks.md §4.1: `**` any chars incl. `/`, `*` within a segment, `?` one char."""
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


def mesh_classes(
    stage: Usd.Stage, rules: list[dict[str, Any]], semantic_type: str = "class"
) -> dict[str, str]:
    """Mesh prim path -> class by the ordered `semantics` rules.

    Rules apply in order and a later match overwrites (each rule re-labels what it matches); a mesh no
    rule matches inherits the label of its nearest matched ancestor (a rule on an Xform labels its
    meshes, as Replicator semantics do).
    """
    compiled = []
    for n, rule in enumerate(rules or []):
        try:
            compiled.append((glob_to_regex(str(rule["match"])), str(rule["labels"][semantic_type])))
        except (KeyError, TypeError):
            raise ValueError(
                f"semantics[{n}]: needs match and labels.{semantic_type}, got {rule!r}"
            ) from None

    def label(path: str) -> str | None:
        hit = None
        for rx, cls in compiled:
            if rx.fullmatch(path):
                hit = cls
        return hit

    out: dict[str, str] = {}
    cache: dict[str, str | None] = {}
    for prim in stage.Traverse():
        path = str(prim.GetPath())
        own = label(path)
        if own is None:
            parent = str(prim.GetPath().GetParentPath())
            own = cache.get(parent)
        cache[path] = own
        if own is not None and prim.IsA(UsdGeom.Mesh):
            out[path] = own
    return out


def _component_of(path: str, pcba_root: str, depth: int) -> str:
    if path.startswith(pcba_root + "/"):
        parts = path[len(pcba_root) + 1 :].split("/")
        if len(parts) > depth:
            return pcba_root + "/" + "/".join(parts[:depth])
    return path.rsplit("/", 1)[0]


def _range(box: Any) -> tuple[float, ...]:
    lo, hi = box.GetMin(), box.GetMax()
    return (lo[0], lo[1], lo[2], hi[0], hi[1], hi[2])


def components_by_class(
    stage: Usd.Stage, classes: dict[str, str], pcba_root: str, depth: int = COMPONENT_DEPTH
) -> list[Component]:
    """Union of the world bounds (BBoxCache) of each (component instance, class) group of labelled meshes."""
    cache = UsdGeom.BBoxCache(Usd.TimeCode.Default(), [UsdGeom.Tokens.default_, UsdGeom.Tokens.render])
    groups: dict[tuple[str, str], Component] = {}
    for path, cls in classes.items():
        rng = cache.ComputeWorldBound(stage.GetPrimAtPath(path)).ComputeAlignedRange()
        if rng.IsEmpty():
            continue
        b = _range(rng)
        key = (_component_of(path, pcba_root, depth), cls)
        comp = groups.get(key)
        if comp is None:
            groups[key] = Component(key[0], cls, b, [path])
        else:
            comp.bounds = tuple(min(a, c) for a, c in zip(comp.bounds[:3], b[:3], strict=True)) + tuple(
                max(a, c) for a, c in zip(comp.bounds[3:], b[3:], strict=True)
            )
            comp.meshes.append(path)
    return sorted(groups.values(), key=lambda c: (c.cls, c.path))


def _require_prim(stage: Usd.Stage, path: str, what: str, kind: type | None = None) -> Usd.Prim:
    prim = stage.GetPrimAtPath(path) if path else None
    if prim is None or not prim.IsValid():
        raise ValueError(f"{what}: prim {path!r} not found in {stage.GetRootLayer().identifier}")
    if kind is not None and not prim.IsA(kind):
        raise ValueError(f"{what}: prim {path!r} is a {prim.GetTypeName()}, expected {kind.__name__}")
    return prim


def _open_stage(scene: str | Path | Usd.Stage) -> Usd.Stage:
    stage = scene if isinstance(scene, Usd.Stage) else Usd.Stage.Open(str(scene))
    if stage is None:
        raise ValueError(f"cannot open scene {scene!r}")
    return stage


def _grid_size(image_cfg: dict[str, Any]) -> tuple[int, int]:
    grid = image_cfg.get("scan_grid") or {}
    x_num, y_num = int(grid.get("x_num", 0)), int(grid.get("y_num", 0))
    if x_num < 1 or y_num < 1:
        raise ValueError(f"scan_grid.x_num / y_num must be >= 1, got {x_num} / {y_num}")
    return x_num, y_num


def _frame(
    pcba_target: dict[str, Any], image_cfg: dict[str, Any], resolution: tuple[int, int] | None
) -> tuple[tuple[int, ...], float, float]:
    """(resolution, horizontal aperture, rotation about Z) of the frames, with their defaults."""
    res = tuple(int(v) for v in (resolution or image_cfg.get("resolution") or (1920, 1080)))
    aperture = image_cfg.get("horizontal_aperture", pcba_target.get("horizontal_aperture"))
    aperture = float(DEFAULT_APERTURE if aperture is None else aperture)
    rot = float((image_cfg.get("camera_rotation") or {}).get("z_fixed", 0.0))
    return res, aperture, rot


def _half_extent(res: tuple[int, ...], aperture: float, rot: float) -> tuple[float, float]:
    """Half the world X / Y extent of the axis-aligned box around one frame rotated by `rot` degrees."""
    width = aperture / 10.0
    height = width * res[1] / res[0]
    c, s = abs(math.cos(math.radians(rot))), abs(math.sin(math.radians(rot)))
    return (c * width + s * height) / 2, (s * width + c * height) / 2


def _lay_cells(
    board: tuple[float, ...], size: tuple[int, int], half: tuple[float, float], comps: list[Component]
) -> list[Cell]:
    """The x_num × y_num cells centred on equal slices of the board, with the components each holds."""
    x_num, y_num = size
    hx, hy = half
    cb = np.array([cp.bounds for cp in comps]).reshape(-1, 6)
    cells = []
    for i in range(x_num):
        for j in range(y_num):
            cx = board[0] + (i + 0.5) * (board[3] - board[0]) / x_num
            cy = board[1] + (j + 0.5) * (board[4] - board[1]) / y_num
            win = (cx - hx, cy - hy, cx + hx, cy + hy)
            inside = (cb[:, 0] >= win[0]) & (cb[:, 1] >= win[1]) & (cb[:, 3] <= win[2]) & (cb[:, 4] <= win[3])
            touch = (cb[:, 3] > win[0]) & (cb[:, 4] > win[1]) & (cb[:, 0] < win[2]) & (cb[:, 1] < win[3])
            cells.append(
                Cell(
                    name=f"x{i}_y{j}",
                    i=i,
                    j=j,
                    center=(cx, cy),
                    window=win,
                    components=_by_class(comps, inside),
                    partial=_by_class(comps, touch & ~inside),
                )
            )
    return cells


def plan_scan_grid(
    scene: str | Path | Usd.Stage,
    pcba_target: dict[str, Any],
    image_cfg: dict[str, Any],
    *,
    resolution: tuple[int, int] | None = None,
) -> ScanGrid:
    """Lay the `scan_grid.x_num × y_num` cells over the pcba_root bounds (day0_image + pcba_target fields).

    Cell x<i>_y<j> is centred at the i-th / j-th of x_num / y_num equal slices of the board's world X / Y
    extent (inferred upstream placement); the frame is `horizontal_aperture / 10` world units wide and
    `width · H / W` high, rotated by `camera_rotation.z_fixed` about Z.
    """
    stage = _open_stage(scene)
    camera_path = str(pcba_target.get("camera_path", ""))
    pcba_root = str(pcba_target.get("pcba_root", ""))
    _require_prim(stage, camera_path, "pcba_target.camera_path", UsdGeom.Camera)
    root = _require_prim(stage, pcba_root, "pcba_target.pcba_root")
    size = _grid_size(image_cfg)
    res, aperture, rot = _frame(pcba_target, image_cfg, resolution)
    classes = mesh_classes(stage, image_cfg.get("semantics") or [])
    comps = components_by_class(stage, classes, pcba_root)
    cache = UsdGeom.BBoxCache(Usd.TimeCode.Default(), [UsdGeom.Tokens.default_, UsdGeom.Tokens.render])
    board = _range(cache.ComputeWorldBound(root).ComputeAlignedRange())
    class_counts: dict[str, int] = {}
    for cp in comps:
        class_counts[cp.cls] = class_counts.get(cp.cls, 0) + 1
    result = ScanGrid(
        scene=str(stage.GetRootLayer().identifier),
        camera_path=camera_path,
        pcba_root=pcba_root,
        resolution=res,
        horizontal_aperture=aperture,
        rotation_z=rot,
        board_bounds=board,
        mesh_classes=classes,
        components=comps,
        cells=_lay_cells(board, size, _half_extent(res, aperture, rot), comps),
        class_counts=class_counts,
        coverage={},
    )
    result.coverage = coverage(result)
    return result


def _by_class(comps: list[Component], pick: np.ndarray) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k in np.nonzero(pick)[0]:
        out.setdefault(comps[k].cls, []).append(comps[k].path)
    return out


def coverage(grid: ScanGrid, samples: int = 400) -> dict[str, Any]:
    """Fraction of the board's XY area inside at least one frame (sampled on a samples² lattice), and
    per class the fraction of components that some frame holds whole."""
    x0, y0, _, x1, y1, _ = grid.board_bounds
    xs = x0 + (np.arange(samples) + 0.5) * (x1 - x0) / samples
    ys = y0 + (np.arange(samples) + 0.5) * (y1 - y0) / samples
    hit = np.zeros((samples, samples), bool)
    for cell in grid.cells:
        wx0, wy0, wx1, wy1 = cell.window
        hit[
            np.searchsorted(ys, wy0) : np.searchsorted(ys, wy1),
            np.searchsorted(xs, wx0) : np.searchsorted(xs, wx1),
        ] = True
    per_class: dict[str, float] = {}
    for cls in sorted(grid.class_counts):
        whole = {p for cell in grid.cells for p in cell.components.get(cls, [])}
        per_class[cls] = len(whole) / grid.class_counts[cls]
    return {"board_area": float(hit.mean()), "components_whole": per_class}


def select_cells(grid: ScanGrid, max_image_count: int | None = -1, seed: int = 0) -> list[Cell]:
    """The cells a render with `max_image_count` covers: -1/None every cell, N a seeded random N (grid order)."""
    if max_image_count is None or int(max_image_count) < 0 or int(max_image_count) >= len(grid.cells):
        return list(grid.cells)
    if int(max_image_count) == 0:
        raise ValueError("max_image_count 0 renders nothing; use -1 for every cell or N >= 1")
    pick = np.random.default_rng(seed).choice(len(grid.cells), int(max_image_count), replace=False)
    return sorted((grid.cells[k] for k in pick), key=lambda c: cell_sort_key(c.name))


def load_board(pcba_target: str | Path, image_config: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    return load_config(pcba_target), load_config(image_config)


def load_cli_board(o: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], str]:
    """The two board cookbooks of a CLI call and the scene: --scene, else a real pcba_target.scene."""
    target, image_cfg = load_board(o["pcba_target"], o["image_config"])
    scene = o["scene"] or target.get("scene")
    if not scene or scene == "__SCENE__":
        fail("no scene: pass --scene (pcba_target.scene is the __SCENE__ sentinel)")
    return target, image_cfg, str(scene)


_FIELDS = {
    "scene": ("path", None),
    "pcba_target": ("path", None),
    "image_config": ("path", None),
    "json": ("path", None),
}


def main(argv: list[str]) -> int:
    """`scan-grid --pcba-target pcba_target.yaml --image-config day0_image.yaml [--scene S.usd] [--json OUT]`."""

    def body(o: dict[str, Any]) -> int:
        target, image_cfg, scene = load_cli_board(o)
        try:
            grid = plan_scan_grid(scene, target, image_cfg)
        except ValueError as exc:
            fail(str(exc))
        cov = grid.coverage
        info(
            f"scan-grid: {len(grid.cells)} cells, aperture {grid.horizontal_aperture}, frame "
            f"{grid.view_size[0]:.3g} x {grid.view_size[1]:.3g}, classes {grid.class_counts}, "
            f"board area covered {cov['board_area']:.1%}, components whole {cov['components_whole']}"
        )
        if o["json"]:
            Path(o["json"]).write_text(json.dumps(grid.to_dict(), indent=2) + "\n", encoding="utf-8")
        return 0

    return run_main(
        body, lambda: load_options(argv, "scan-grid", _FIELDS, required=("pcba_target", "image_config"))
    )
