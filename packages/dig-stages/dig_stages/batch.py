"""Augmentation batch expansion: one image-edit entry per ROI crop, output tree per material/cell or per mode."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

LAYOUTS = ("cells", "modes")
IMAGE_SUFFIXES = (".png", ".jpg")


class BatchError(ValueError):
    """No inputs, a wrong layout or colliding outputs: the message says what to change."""


@dataclass(frozen=True)
class Entry:
    """One ROI to edit: the input crop, where its edit goes, and the side files upstream writes."""

    key: str  # "<MAT>/<cell>/<stem>" or "<mode>/<stem>": stable id for logs and summaries
    input: str
    output: str
    caption: str
    metadata: str


def _images_in(folder: Path) -> list[Path]:
    # Upstream globs *.png and *.jpg (lower case) only; sorted so every run expands identically.
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in IMAGE_SUFFIXES)


def expand(
    input_dir: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    layout: str,
    output_ext: str = ".jpg",
    side_dir: str | os.PathLike[str] = "/tmp",
) -> list[Entry]:
    """Expand the ROI crops under `input_dir` into sorted entries (see flows.md §1.3 and §3.3).

    `cells`: `crop/<MAT>/<cell>/normal_img/*` -> `<output_dir>/crop/<MAT>/<cell>/<stem><ext>`.
    `modes`: `cropped/<mode>/rgb/*` -> `<output_dir>/<mode>/rgb/<stem><ext>`.
    Captions and metadata go to `side_dir` (upstream: /tmp, not uploaded).
    """
    if layout not in LAYOUTS:
        raise BatchError(f"ERROR: layout '{layout}' is unknown; use one of {', '.join(LAYOUTS)}")
    if not output_ext.startswith("."):
        output_ext = "." + output_ext
    src, out, side = Path(input_dir), Path(output_dir), Path(side_dir)
    if layout == "cells":
        entries = _expand_cells(src, out, side, output_ext)
    else:
        entries = _expand_modes(src, out, side, output_ext)
    _refuse_collisions(entries)
    return entries


def _expand_cells(src: Path, out: Path, side: Path, output_ext: str) -> list[Entry]:
    """`crop/<MAT>/<cell>/normal_img/*` -> `<out>/crop/<MAT>/<cell>/<stem><ext>`."""
    crop = src / "crop"
    materials = sorted(p for p in crop.iterdir() if p.is_dir()) if crop.is_dir() else []
    if not materials:
        raise BatchError(f"ERROR: no material subdirs under {crop}/; check the render task's output")
    entries: list[Entry] = []
    for mat in materials:
        for cell in sorted(p for p in mat.iterdir() if p.is_dir()):
            normal = cell / "normal_img"
            if not normal.is_dir():
                continue
            for img in _images_in(normal):
                m, c, s = mat.name, cell.name, img.stem
                entries.append(
                    Entry(
                        key=f"{m}/{c}/{s}",
                        input=str(img),
                        output=str(out / "crop" / m / c / f"{s}{output_ext}"),
                        caption=str(side / f"cap_{m}_{c}_{s}.txt"),
                        metadata=str(side / f"meta_{m}_{c}_{s}.json"),
                    )
                )
    if not entries:
        raise BatchError(f"ERROR: no crop images at {crop}/<MAT>/<cell>/normal_img/*.png|*.jpg")
    return entries


def _expand_modes(src: Path, out: Path, side: Path, output_ext: str) -> list[Entry]:
    """`cropped/<mode>/rgb/*` -> `<out>/<mode>/rgb/<stem><ext>`."""
    cropped = src / "cropped"
    mode_dirs = sorted(p for p in cropped.glob("*/rgb") if p.is_dir()) if cropped.is_dir() else []
    entries: list[Entry] = []
    for rgb in mode_dirs:
        mode = rgb.parent.name
        for img in _images_in(rgb):
            entries.append(
                Entry(
                    key=f"{mode}/{img.stem}",
                    input=str(img),
                    output=str(out / mode / "rgb" / f"{img.stem}{output_ext}"),
                    caption=str(side / f"cap_{mode}__{img.stem}.txt"),
                    metadata=str(side / f"meta_{mode}__{img.stem}.json"),
                )
            )
    if not entries:
        raise BatchError(f"ERROR: no per-mode rgb crops under {cropped}/<mode>/rgb/ (*.png|*.jpg)")
    return entries


def _refuse_collisions(entries: list[Entry]) -> None:
    """a.png and a.jpg in one folder would both become a<ext>: refuse rather than overwrite silently."""
    seen: dict[str, str] = {}
    for e in entries:
        if e.output in seen:
            raise BatchError(
                f"ERROR: {seen[e.output]} and {e.input} both map to {e.output}; keep one image per stem"
            )
        seen[e.output] = e.input


def main(argv: list[str]) -> int:
    """`batch-expand`: write the expanded entries as JSON (valid YAML too) for inspection or another client."""
    ap = argparse.ArgumentParser(prog="dig_stages batch-expand")
    ap.add_argument("--spec", help="JSON task spec (keys = option names with _)")
    ap.add_argument("--input-dir")
    ap.add_argument("--output-dir")
    ap.add_argument("--layout", choices=LAYOUTS)
    ap.add_argument("--output-ext")
    ap.add_argument("--side-dir")
    ap.add_argument("--out", help="write the entry list here (default: stdout)")
    args = ap.parse_args(argv)
    spec: dict[str, Any] = {}
    if args.spec:
        spec = json.loads(Path(args.spec).read_text())
    for k in ("input_dir", "output_dir", "layout", "output_ext", "side_dir"):
        if getattr(args, k) is not None:
            spec[k] = getattr(args, k)
    missing = [k for k in ("input_dir", "output_dir", "layout") if not spec.get(k)]
    if missing:
        print(f"ERROR: batch-expand needs {', '.join(missing)} (spec key or --flag)", file=sys.stderr)
        return 1
    try:
        entries = expand(
            spec["input_dir"],
            spec["output_dir"],
            spec["layout"],
            spec.get("output_ext") or ".jpg",
            spec.get("side_dir") or "/tmp",
        )
    except BatchError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    text = json.dumps([asdict(e) for e in entries], indent=1)
    if args.out:
        Path(args.out).write_text(text + "\n")
    else:
        print(text)
    groups = {e.key.rsplit("/", 1)[0] for e in entries}
    print(f"batch-expand: {len(entries)} entries in {len(groups)} {spec['layout']} dirs", file=sys.stderr)
    return 0
