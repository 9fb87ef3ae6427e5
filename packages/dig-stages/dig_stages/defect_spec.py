"""Render defect_spec.jsonl (AnomalyGen AMP routing spec) from [material, defect] pairs."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dig_stages import _common

SPATIAL_DEPENDENCIES = ("free", "text", "cad")


def parse_pairs(pairs: Any) -> list[tuple[str, str]]:
    """Validate `pairs` (JSON text or a list) as a non-empty list of [material, defect] strings."""
    if isinstance(pairs, str):
        try:
            pairs = json.loads(pairs)
        except json.JSONDecodeError as exc:
            raise ValueError(f"anomaly types are not valid JSON ({exc.msg}): {pairs!r}") from None
    if not isinstance(pairs, (list, tuple)) or not pairs:
        raise ValueError(
            f"anomaly types must be a non-empty JSON list of [material, defect] pairs, got {pairs!r}\n"
            '  example: [["passive_component","missing"],["IC","bridge"]]'
        )
    out: list[tuple[str, str]] = []
    for i, pair in enumerate(pairs):
        if (
            not isinstance(pair, (list, tuple))
            or len(pair) != 2
            or not all(isinstance(x, str) and x for x in pair)
        ):
            raise ValueError(
                f"anomaly types entry {i} must be a list of exactly two non-empty strings "
                f"[material, defect], got {pair!r}"
            )
        out.append((pair[0], pair[1]))
    return out


def render_defect_spec(pairs: Any, spatial_dependency: str, roi_prompt: str | None = None) -> str:
    """The defect_spec.jsonl text: one line per pair, keys defect_type, spatial_dependency, roi prompt."""
    if spatial_dependency not in SPATIAL_DEPENDENCIES:
        raise ValueError(
            f"spatial_dependency: got {spatial_dependency!r}; allowed: {', '.join(SPATIAL_DEPENDENCIES)}"
        )
    prompt = roi_prompt or ""
    if spatial_dependency == "text" and not prompt.strip():
        raise ValueError(
            "spatial_dependency=text needs a non-empty roi_prompt (where on the image defects go), "
            "or use spatial_dependency=free"
        )
    lines = []
    for material, defect in parse_pairs(pairs):
        row = {
            "defect_type": f"{material}+{defect}",
            "spatial_dependency": spatial_dependency,
            "roi_prompt_defect_location": prompt,
        }
        lines.append(json.dumps(row) + "\n")
    return "".join(lines)


def write_defect_spec(
    path: str | Path, pairs: Any, spatial_dependency: str, roi_prompt: str | None = None
) -> int:
    """Write the spec file (raising ValueError as render_defect_spec); return the number of lines."""
    text = render_defect_spec(pairs, spatial_dependency, roi_prompt)
    Path(path).write_text(text, encoding="utf-8")
    n = text.count("\n")
    print(f"wrote {n} entries to {path} (spatial_dependency={spatial_dependency})", file=sys.stderr)
    return n


def main(argv: Sequence[str] | None = None) -> int:
    """`defect-spec`: --output, and --pairs JSON or --material + --defects JSON; exit 2 on bad input."""
    fields = {
        "output": ("path", None),
        "pairs": ("str", ""),
        "material": ("str", ""),
        "defects": ("str", ""),
        "spatial_dependency": ("str", "free"),
        "roi_prompt": ("str", ""),
    }
    try:
        opts = _common.load_options(list(argv or []), "defect-spec", fields, required=["output"])
        if opts["pairs"]:
            pairs: Any = opts["pairs"]
        elif opts["material"] and opts["defects"]:
            try:
                defects = json.loads(opts["defects"])
            except json.JSONDecodeError as exc:
                raise ValueError(f"--defects is not valid JSON ({exc.msg}): {opts['defects']!r}") from None
            if not isinstance(defects, list) or not all(isinstance(d, str) for d in defects):
                raise ValueError(f"--defects must be a JSON list of strings, got {opts['defects']!r}")
            pairs = [[opts["material"], d] for d in defects]
        else:
            raise ValueError("give --pairs JSON, or both --material and --defects JSON")
        write_defect_spec(opts["output"], pairs, opts["spatial_dependency"], opts["roi_prompt"])
    except (ValueError, _common.StageError) as exc:
        print("ERROR: " + str(exc), file=sys.stderr)
        return 2
    return 0
