"""Structural (pose) defect modes: parse the defect_modes knob and check the per-mode crop tree."""

from __future__ import annotations

import difflib
from pathlib import Path

from dig_stages import _common

DEFECT_MODES = ("shift", "tombstone", "sideflip")


def parse_defect_modes(value: str) -> list[str]:
    """`all` -> all three modes; else a comma list of shift/tombstone/sideflip (canonical order)."""
    allowed = (
        "all, or a comma-separated subset of shift,tombstone,sideflip without spaces (e.g. shift,sideflip)"
    )
    if not isinstance(value, str):
        raise ValueError(f"defect_modes: got {value!r} (a {type(value).__name__}); allowed: {allowed}")
    if value == "all":
        return list(DEFECT_MODES)
    if value.strip() == "":
        raise ValueError(f"defect_modes: got an empty value; allowed: {allowed}")
    if any(ch.isspace() for ch in value):
        # upstream silently disabled a mode written after ", "; refuse instead
        raise ValueError(f"defect_modes: got {value!r}, which contains spaces; allowed: {allowed}")
    tokens = value.split(",")
    if any(t == "" for t in tokens):
        raise ValueError(f"defect_modes: got {value!r}, which has an empty entry; allowed: {allowed}")
    unknown = [t for t in tokens if t not in DEFECT_MODES]
    if unknown:
        hints = []
        for t in unknown:
            close = difflib.get_close_matches(t, DEFECT_MODES + ("all",), n=1)
            hints.append(f"'{t}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
        raise ValueError(f"defect_modes: got {value!r}; unknown mode {', '.join(hints)}; allowed: {allowed}")
    dupes = sorted({t for t in tokens if tokens.count(t) > 1})
    if dupes:
        raise ValueError(
            f"defect_modes: got {value!r}; duplicate mode {', '.join(dupes)}; allowed: {allowed}"
        )
    return [m for m in DEFECT_MODES if m in tokens]


def check_mode_crops(cropped: str | Path, enabled: list[str] | None = None) -> dict[str, int]:
    """Count `cropped/<mode>/rgb/*` images per mode; fail when none, or when rgb sits flat (no mode)."""
    cropped = Path(cropped)
    counts: dict[str, int] = {}
    for mode_dir in _common.subdirs(cropped):
        n = len(_common.list_images(mode_dir / "rgb"))
        if n:
            counts[mode_dir.name] = n
    if not counts:
        flat = ""
        if _common.list_images(cropped / "rgb"):
            # a flat cropped/rgb/ passed upstream's count but broke the image-edit adapter later
            flat = " (found a flat cropped/rgb/ without a <mode> level)"
        _common.fail(
            f"crop_components.py produced no per-mode rgb crops under {cropped}/{flat}; "
            "expected cropped/<mode>/rgb/<NNNN>.png\n" + _common.listing(cropped)
        )
    if enabled:
        unexpected = sorted(set(counts) - set(enabled))
        if unexpected:
            _common.warn(f"crops for modes not enabled in defect_modes: {', '.join(unexpected)}")
        silent = [m for m in enabled if m not in counts]
        if silent:
            # a mode can legitimately draw no component in a short run (ratio, pool drained)
            _common.warn(
                f"no crops for enabled mode(s) {', '.join(silent)}; raise render_patches or the mode's "
                "ratio if you need them"
            )
    return counts
