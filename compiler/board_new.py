"""`dig board new NAME --usd SCENE.usd ...`: write a board config from its USD scene, with a report and a preview.

    dig board new my_board --usd scene.usd [--component TYPE ...] [--surface-class PATTERN=CLASS ...]
        [--material CLASS=MATERIAL ...] [--real-image PHOTO.jpg] [--config-dir DIR] [--dry-run] [--force]
    python -m compiler.board_new new my_board --usd scene.usd

Writes conf/board/NAME.yaml (or DIR/board/NAME.yaml) holding only what differs from the PCBA base
(conf/board/_pcba.yaml), NAME.preview.png beside it (every scan-grid cell, classes coloured), and
prints what it found, what it guessed and why, and what to check. Exit 2: usage; 1: the scene or
the options cannot make a board. Nothing is written on error; an existing board needs --force.
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compiler.paths import CONF_DIR

PCBA_FLOWS = ("day0", "good_image", "structural", "day1", "day1_manual_roi")
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


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dig board", description="Make a board config from its USD scene.")
    sub = p.add_subparsers(dest="verb", required=True)
    n = sub.add_parser("new", help="write conf/board/NAME.yaml from SCENE.usd")
    n.add_argument("name")
    n.add_argument("--usd", required=True, help="the board's USD scene on local disk")
    n.add_argument("--component", action="append", default=[], help="component type prim name (repeat)")
    n.add_argument(
        "--surface-class",
        action="append",
        default=[],
        metavar="PATTERN=CLASS",
        help="class for surfaces whose path or name matches the glob (decides weak evidence)",
    )
    n.add_argument(
        "--material",
        action="append",
        default=[],
        metavar="CLASS=MATERIAL",
        help="crop folder (material) of a crop class, e.g. ic=IC",
    )
    n.add_argument("--real-image", help="the board's real AOI photo (Day 1 real-photo alignment)")
    n.add_argument("--config-dir", help="write into DIR/board/ (a user config dir) instead of conf/board/")
    n.add_argument("--dry-run", action="store_true", help="print the file, write nothing")
    n.add_argument("--force", action="store_true", help="overwrite an existing board")
    return p


def _diff(own: Any, base: Any) -> Any:
    """`own` without what equals `base` (dicts recursively; lists and scalars whole)."""
    if isinstance(own, dict) and isinstance(base, dict):
        out = {}
        for k, v in own.items():
            if k in base:
                d = _diff(v, base[k])
                if d is not _SAME:
                    out[k] = d
            else:
                out[k] = v
        return out or _SAME
    return _SAME if own == base else own


_SAME = object()


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


def _semantics(scene: Any, chosen: list[Any], out: Board) -> tuple[list[dict], list[dict]]:
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
    from dig_stages.board_discover import discover, plan_grid
    from dig_stages.usd_scan import DEFAULT_APERTURE

    from compiler.options import load_option

    base = load_option("board", "_pcba")
    usecase = load_option("usecase", base["board"]["usecase"])["usecase"]
    default_board = load_option("board", str(usecase["default_board"]))
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
    tax = _day1_taxonomy(list(dict.fromkeys(class_dirs.values())), usecase)
    structural = -1 if ic_only else default_board["board"]["structural_render_patches"]
    out.report.append(f"day 1 taxonomy {tax}  (the {usecase['key']} Day 1 default for these materials)")
    out.report.append(
        f"structural render_patches {structural}  ("
        + (
            "IC-only crops: _ic_only profile, spec A15"
            if ic_only
            else f"as the default board {usecase['default_board']}"
        )
        + ")"
    )
    target = {
        "camera_path": scene.camera.path,
        "camera_xform_path": scene.camera_xform.path,
        "ring_light_root": ring,
        "pcba_root": scene.pcba_root.path,
    }
    if scene.camera_aperture and abs(scene.camera_aperture - DEFAULT_APERTURE) > 1e-6:
        target["horizontal_aperture"] = scene.camera_aperture
    image = {**copy.deepcopy(base["cookbooks"]["day0_image"]), "semantics": day0_sem}
    x_num, y_num, grid = plan_grid(args.usd, target, image)  # the aperture: pcba_target's, else the render's
    vw, vh = grid.view_size
    bb = grid.board_bounds
    out.report.append(
        f"scan grid {x_num} x {y_num} ({len(grid.cells)} cells): frame {vw:.3g} x {vh:.3g} at "
        f"aperture {grid.horizontal_aperture:g}, board {bb[3] - bb[0]:.3g} x {bb[4] - bb[1]:.3g}, "
        f"area covered {grid.coverage['board_area']:.0%}"
    )
    camera = _day1_camera(chosen, out)
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
    day1_classes = chosen[0].body_classes  # Day 1 frames one component: its type's classes
    grid_size = {"x_num": x_num, "y_num": y_num}
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
    out.text = _render(args, own, base, out.profiles, class_dirs)
    out.pcba_target = {**base["cookbooks"]["pcba_target"], **target}
    out.day0_image = {**image, "scan_grid": grid_size}
    out.crop_classes = crop
    return out


def _union(boxes: list[tuple[float, ...]]) -> tuple[float, ...]:
    return (*(min(b[i] for b in boxes) for i in range(3)), *(max(b[i] for b in boxes) for i in range(3, 6)))


def _render(
    args: argparse.Namespace,
    own: dict[str, Any],
    base: dict[str, Any],
    profiles: list[str],
    class_dirs: dict[str, str],
) -> str:
    import yaml

    _Dumper = _dumper()
    body = _diff(own, base)
    if body is _SAME:
        body = {}
    body.setdefault("board", {})["key"] = args.name  # always its own, even if a base ever named one
    text = yaml.dump(
        body, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=10_000, allow_unicode=True
    )
    mats = ", ".join(sorted(set(class_dirs.values())))
    head = [
        "# @package _global_",
        f"# Board {args.name}: generated by `dig board new` from {Path(args.usd).name}; crops land in {mats}.",
        f"#   python -m compiler flow=day0 usecase=pcb board={args.name}",
        f"# Only what is this board's own; the rest comes from {' and '.join(p + '.yaml' for p in profiles)}.",
        "# Check the Day 1 camera, the real photo and the surface classes the report marked as guessed.",
        "defaults:",
        *(f"  - {p}" for p in profiles),
        "  - _self_",
        "",
    ]
    return "\n".join(head) + text


def _dumper():
    import yaml

    class Dumper(yaml.SafeDumper):
        """Block mappings, flow lists of scalars (as the shipped boards are written), no anchors."""

        def ignore_aliases(self, data: Any) -> bool:
            return True

    def _list(dumper: yaml.SafeDumper, data: list) -> Any:
        flat = all(
            not isinstance(v, dict)
            and (not isinstance(v, list) or all(not isinstance(w, (dict, list)) for w in v))
            for v in data
        )
        return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flat)

    def _dict(dumper: yaml.SafeDumper, data: dict) -> Any:
        rule = set(data) == {"match", "labels"}  # a semantics rule: one line each
        return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=rule or None)

    Dumper.add_representer(list, _list)
    Dumper.add_representer(dict, _dict)
    return Dumper


def _board_path(args: argparse.Namespace) -> Path:
    root = Path(args.config_dir).expanduser() if args.config_dir else CONF_DIR
    return root / "board" / f"{args.name}.yaml"


def self_check(name: str, config_dir: str | None, with_photo: bool) -> list[str]:
    """Compile every PCBA flow of the new board with strict=true; one line per flow."""
    from compiler.compose import Composer, parse_overrides
    from compiler.errors import DigError
    from compiler.pipeline import compile_request

    composer = Composer(searchpath=[config_dir] if config_dir else [])
    lines = []
    for flow in PCBA_FLOWS:
        if flow == "day1" and not with_photo:
            lines.append(f"  {flow}: skipped (no --real-image)")
            continue
        try:
            c = compile_request(
                parse_overrides([f"flow={flow}", "usecase=pcb", f"board={name}", "strict=true"]),
                composer=composer,
                prefs={},
            )
            lines.append(f"  {flow}: ok ({c.key})")
        except DigError as exc:
            lines.append(f"  {flow}: FAILED {exc.format().splitlines()[0]}")
    return lines


def main(argv: list[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        args = _parser().parse_args(args_list)
    except SystemExit as exc:
        return int(exc.code or 0)
    from compiler.schema import BOARD_KEY_PATTERN

    try:
        if not re.match(BOARD_KEY_PATTERN, args.name) or len(args.name) > 64:
            raise UsageError(f"board name {args.name!r}: letters, digits, _ and -, not starting with _ or -")
        if args.name == "none":
            raise UsageError("board name 'none' is the no-board option")
        if args.config_dir and not Path(args.config_dir).is_dir():
            raise UsageError(f"--config-dir {args.config_dir}: not a directory")
        if args.real_image and not Path(args.real_image).is_file():
            raise UsageError(f"--real-image {args.real_image}: no such file")
        path = _board_path(args)
        if args.config_dir and (CONF_DIR / "board" / f"{args.name}.yaml").is_file():
            # conf/ comes first in the search path: a same-named board in a user dir would never be read
            raise UsageError(f"board name {args.name!r} is a board of conf/board/; choose another name")
        if path.exists() and not args.force and not args.dry_run:
            raise ValueError(
                f"{path} exists: pass --force to overwrite it (or --dry-run to see the new file)"
            )
        try:
            import dig_stages.board_discover  # noqa: F401  (usd-core: imported only for this command)
        except ImportError as exc:
            raise ValueError(f"reading a USD scene needs usd-core (pip install usd-core): {exc}") from None
        board = build_board(args)
    except UsageError as exc:
        print(f"dig board: error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # BoardError is a ValueError
        print(f"dig board: error: {exc}", file=sys.stderr)
        return 1
    print("\n".join(board.report))
    if args.dry_run:
        print(f"\n--- {path} (dry run, not written) ---")
        print(board.text, end="")
        print("\nwhat to check:\n" + "\n".join(f"  - {c}" for c in board.checks))
        return 0
    from dig_stages.board_discover import render_grid_preview

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(board.text, encoding="utf-8")
    os.replace(tmp, path)
    preview = path.with_name(f"{args.name}.preview.png")
    shot = render_grid_preview(args.usd, board.pcba_target, board.day0_image, preview)
    print(f"\nwrote {path} ({len(board.text.splitlines())} lines)")
    print(f"preview {preview}: {shot['x_num']} x {shot['y_num']} cells, classes {shot['class_counts']}")
    checked = self_check(args.name, args.config_dir, bool(args.real_image))
    print("compiles (strict=true):\n" + "\n".join(checked))
    print("what to check:\n" + "\n".join(f"  - {c}" for c in board.checks))
    if any("FAILED" in line for line in checked):
        print(
            f"dig board: error: {path} was written but does not compile every flow (see above)",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
