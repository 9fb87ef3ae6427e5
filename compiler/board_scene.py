"""`dig board new`'s analysis: from the scene's prims to the board's own config, with a report and checks."""

from __future__ import annotations

import argparse
import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compiler.board_file import board_file

SAFE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class UsageError(Exception):
    """Bad command line: exit 2."""


@dataclass
class Board:
    text: str
    profiles: list[str]
    report: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    pcba_target: dict[str, Any] = field(default_factory=dict)
    day0_image: dict[str, Any] = field(default_factory=dict)
    crop_classes: list[str] = field(default_factory=list)


def _pairs(values: list[str], flag: str) -> list[tuple[str, str]]:
    out = []
    for v in values:
        key, sep, val = v.partition("=")
        if not sep or not key or not val:
            raise UsageError(
                f"{flag} {v!r}: write {flag} {'PATTERN=CLASS' if 'surface' in flag else 'CLASS=MATERIAL'}"
            )
        if flag != "--surface-class" and not SAFE_NAME.match(val):
            raise UsageError(f"{flag} {v!r}: {val!r} is not a folder name (letters, digits, _ and -)")
        if flag == "--surface-class" and not SAFE_NAME.match(val):
            raise UsageError(f"{flag} {v!r}: class {val!r} must be letters, digits, _ and -")
        out.append((key, val))
    return out


def _materials(usecase: dict[str, Any]) -> list[str]:
    return list(dict.fromkeys(str(m) for m, _ in usecase["anomaly_types"]))


def _guess_material(cls: str, materials: list[str]) -> str:
    for m in materials:
        if m.lower() == cls.lower():
            return m
    return next((m for m in materials if m.lower() != "ic"), materials[0])


def _day1_taxonomy(materials: list[str], usecase: dict[str, Any]) -> list[list[str]]:
    """Pairs of the use case's Day 1 default whose material the board crops, else the first trained pair of it."""
    out = []
    for m in materials:
        pairs = [list(p) for p in usecase["day1_anomaly_types"] if p[0] == m] or [
            list(p) for p in usecase["anomaly_types"] if p[0] == m
        ][:1]
        out += pairs or [[m, "missing"]]
    return out


def _describe_scene(scene: Any, chosen: list[Any], out: Board) -> str:
    """Report lines for the prims found; returns the ring-light root to write."""
    out.report += [
        f"scene {scene.path}",
        f"camera         {scene.camera.path}  ({scene.camera.rule})",
        f"camera xform   {scene.camera_xform.path}  ({scene.camera_xform.rule})",
    ]
    ring: str
    if scene.ring_light:
        out.report.append(f"ring light     {scene.ring_light.path}  ({scene.ring_light.rule})")
        ring = scene.ring_light.path
    else:
        ring = scene.camera_xform.path
        out.report.append(f"ring light     none found: wrote the camera xform {ring}")
        out.checks.append(
            "no ring-light prim: lighting.ring_light stays false; give pcba_target.ring_light_root "
            "if the scene has one"
        )
    out.report.append(f"pcba root      {scene.pcba_root.path}  ({scene.pcba_root.rule})")
    out.report.append("component types (instances):")
    for t in scene.types.values():
        out.report.append(f"  {'*' if t in chosen else ' '} {t.name}: {len(t.instances)}  ({t.path})")
    return ring


def _semantics(
    scene: Any, chosen: list[Any], out: Board
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """day0_image rules (globs over every instance) and usd2roi_nvpcb rules (the Day 1 instance's paths)."""
    from dig_stages.board_discover import PAD, instance_glob

    root_leaf = scene.pcba_root.path.rsplit("/", 1)[1]
    pad_rules = [{"match": f"**/{rel}", "labels": {"class": PAD}} for rel in sorted(scene.board_meshes)]
    day0_sem, day1_sem = list(pad_rules), list(pad_rules)
    for rel, s in sorted(scene.board_meshes.items()):
        out.report.append(f"  board mesh {rel}: {s.cls}  ({s.evidence})")
    day1 = chosen[0].instances[0]
    for t in chosen:
        out.report.append(f"surfaces of {t.name} (from {t.instances[0]}):")
        for s in t.surfaces:
            out.report.append(f"  {s.rel}: {s.cls}  [{'found' if s.strong else 'guessed'}] {s.evidence}")
            day0_sem.append(
                {"match": f"**/{root_leaf}/{t.name}/{instance_glob(t)}/{s.rel}", "labels": {"class": s.cls}}
            )
            if t is chosen[0]:
                day1_sem.append({"match": f"{day1}/{s.rel}", "labels": {"class": s.cls}})
        weak = [s.rel for s in t.surfaces if not s.strong]
        if weak:
            out.checks.append(
                f"{t.name}: {len(weak)} surface class(es) from geometry or the type name only; "
                "confirm or decide with --surface-class PATTERN=CLASS"
            )
    return day0_sem, day1_sem


def _crop_classes(
    chosen: list[Any], usecase: dict[str, Any], material_args: list[str], out: Board
) -> dict[str, str]:
    """Crop class -> material folder: --material, else guessed from the use case's taxonomy materials."""
    from dig_stages.board_discover import PAD, SOLDER

    crop = sorted({c for t in chosen for c in t.body_classes})
    if not crop:
        raise ValueError(
            "the class map leaves no crop class: every surface of "
            f"{', '.join(t.name for t in chosen)} is {PAD} or {SOLDER}; give the body a class with "
            "--surface-class PATTERN=CLASS"
        )
    materials = _materials(usecase)
    given = dict(_pairs(material_args, "--material"))
    for cls in given:
        if cls not in crop:
            raise ValueError(
                f"--material {cls}={given[cls]}: crop class {cls!r} has no surfaces "
                f"(crop classes: {', '.join(crop)}); fix --surface-class or --material"
            )
    class_dirs = {c: given.get(c) or _guess_material(c, materials) for c in crop}
    for c in crop:
        how = (
            "--material"
            if c in given
            else f"guessed from the {usecase['key']} taxonomy materials {materials}"
        )
        out.report.append(f"crop class {c} -> material folder {class_dirs[c]}  ({how})")
        if class_dirs[c] not in materials:
            out.checks.append(
                f"material {class_dirs[c]} is not in the {usecase['key']} checkpoint taxonomy: "
                "Day 0 texture defects need a finetune on it"
            )
    return class_dirs


def _day1_camera(chosen: list[Any], out: Board) -> dict[str, Any]:
    """Frame the Day 1 instance at twice its size (the photo's framing is the user's to check)."""
    b = _union([s.bounds for s in chosen[0].surfaces if s.bounds])
    cam = {
        "translate": [round((b[0] + b[3]) / 2, 3), round((b[1] + b[4]) / 2, 3)],
        "horizontal_aperture": round(20 * max(b[3] - b[0], b[4] - b[1]), 2),
    }
    out.checks.append(
        f"Day 1 labels {chosen[0].instances[0]} and frames it at {cam['translate']}, aperture "
        f"{cam['horizontal_aperture']}: make both match the component in your real photo "
        "(usd2roi_nvpcb.semantics, .camera)"
    )
    return cam


def build_board(args: argparse.Namespace) -> Board:
    from dig_stages.board_discover import discover

    from compiler.options import load_option

    base = load_option("board", "_pcba")
    usecase = load_option("usecase", base["board"]["usecase"])["usecase"]
    scene = discover(
        args.usd,
        components=args.component or None,
        surface_classes=_pairs(args.surface_class, "--surface-class"),
    )
    chosen = [scene.types[c] for c in (args.component or scene.types)]
    out = Board("", [])
    ring = _describe_scene(scene, chosen, out)
    day0_sem, day1_sem = _semantics(scene, chosen, out)
    class_dirs = _crop_classes(chosen, usecase, args.material, out)
    crop = list(class_dirs)
    ic_only = crop == ["ic"]
    out.profiles = ["_pcba", *(["_ic_only"] if ic_only else [])]
    tax, structural = _day1_and_structural(class_dirs, usecase, ic_only, out)
    target = _pcba_target(scene, ring)
    image = {**copy.deepcopy(base["cookbooks"]["day0_image"]), "semantics": day0_sem}
    grid_size = _scan_grid(args.usd, target, image, out)
    camera = _day1_camera(chosen, out)
    photo = _uploads(args, out)
    day1_classes = chosen[0].body_classes  # Day 1 frames one component: its type's classes
    own = {
        "board": {
            "key": args.name,
            "real_image_filename": photo,
            "day1_anomaly_types": tax,
            **({} if ic_only else {"structural_render_patches": structural}),
        },  # else: the profile's
        "cookbooks": {
            "pcba_target": target,
            "day0_image": {"scan_grid": grid_size, "semantics": day0_sem},
            "day0_crop": {"crop": {"classes": crop, "class_dirs": class_dirs}},
            "defect_image": {"scan_grid": dict(grid_size), "component_types": [t.name for t in chosen]},
            "usd2roi_nvpcb": {
                "semantics": day1_sem,
                "camera": camera,
                "crop": {"classes": day1_classes, "class_dirs": {c: class_dirs[c] for c in day1_classes}},
            },
        },
    }
    out.text = board_file(args.name, args.usd, own, base, out.profiles, class_dirs)
    out.pcba_target = {**base["cookbooks"]["pcba_target"], **target}
    out.day0_image = {**image, "scan_grid": grid_size}
    out.crop_classes = crop
    return out


def _day1_and_structural(
    class_dirs: dict[str, str], usecase: dict[str, Any], ic_only: bool, out: Board
) -> tuple[list[list[str]], int]:
    """The Day 1 taxonomy for the cropped materials, and structural render_patches (IC-only: every frame)."""
    from compiler.options import load_option

    default_board = load_option("board", str(usecase["default_board"]))
    tax = _day1_taxonomy(list(dict.fromkeys(class_dirs.values())), usecase)
    structural = -1 if ic_only else int(default_board["board"]["structural_render_patches"])
    out.report.append(f"day 1 taxonomy {tax}  (the {usecase['key']} Day 1 default for these materials)")
    why = (
        "IC-only crops: _ic_only profile, spec A15"
        if ic_only
        else f"as the default board {usecase['default_board']}"
    )
    out.report.append(f"structural render_patches {structural}  ({why})")
    return tax, structural


def _pcba_target(scene: Any, ring: str) -> dict[str, Any]:
    from dig_stages.usd_scan import DEFAULT_APERTURE

    target = {
        "camera_path": scene.camera.path,
        "camera_xform_path": scene.camera_xform.path,
        "ring_light_root": ring,
        "pcba_root": scene.pcba_root.path,
    }
    if scene.camera_aperture and abs(scene.camera_aperture - DEFAULT_APERTURE) > 1e-6:
        target["horizontal_aperture"] = scene.camera_aperture
    return target


def _scan_grid(usd: str, target: dict[str, Any], image: dict[str, Any], out: Board) -> dict[str, int]:
    """The day0 scan grid planned over the scene (the aperture: pcba_target's, else the render's)."""
    from dig_stages.board_discover import plan_grid

    x_num, y_num, grid = plan_grid(usd, target, image)
    vw, vh = grid.view_size
    bb = grid.board_bounds
    out.report.append(
        f"scan grid {x_num} x {y_num} ({len(grid.cells)} cells): frame {vw:.3g} x {vh:.3g} at "
        f"aperture {grid.horizontal_aperture:g}, board {bb[3] - bb[0]:.3g} x {bb[4] - bb[1]:.3g}, "
        f"area covered {grid.coverage['board_area']:.0%}"
    )
    return {"x_num": x_num, "y_num": y_num}


def _uploads(args: argparse.Namespace, out: Board) -> str | None:
    """The real photo's file name under the assets (None without --real-image) and what to upload."""
    photo = None
    if args.real_image:
        photo = f"input_real_image/{args.name}{Path(args.real_image).suffix.lower() or '.jpg'}"
        out.checks.append(f"upload {args.real_image} to <dig_url_root>/datasets/pcb/assets/{photo}")
    else:
        out.checks.append("no --real-image: Day 1 real-photo alignment needs knobs.real_image_filename=")
    out.checks.append("upload the scene to datasets/pcb/assets and pass knobs.scene_filename=<its file name>")
    out.checks.append(
        "registration ranges (usd2roi_nvpcb.registration) are the 0603 demo's: widen them if the "
        "photo's scale differs"
    )
    return photo


def _union(boxes: list[tuple[float, ...]]) -> tuple[float, ...]:
    return (*(min(b[i] for b in boxes) for i in range(3)), *(max(b[i] for b in boxes) for i in range(3, 6)))
