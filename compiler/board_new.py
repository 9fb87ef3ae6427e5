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
import os
import re
import sys
from pathlib import Path

from compiler.board_scene import Board, UsageError, build_board
from compiler.paths import CONF_DIR

PCBA_FLOWS = ("day0", "good_image", "structural", "day1", "day1_manual_roi")


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
    try:
        path = _checked_path(args)
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
    return _write(args, board, path)


def _checked_path(args: argparse.Namespace) -> Path:
    """Refuse a bad name, a missing directory or photo, or an existing board; the board file's path."""
    from compiler.schema import BOARD_KEY_PATTERN

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
        raise ValueError(f"{path} exists: pass --force to overwrite it (or --dry-run to see the new file)")
    return path


def _write(args: argparse.Namespace, board: Board, path: Path) -> int:
    """Write the board and its preview, then compile every PCBA flow of it (exit 1 if one fails)."""
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
