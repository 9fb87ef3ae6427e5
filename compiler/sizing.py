"""`--images N`: choose the knobs that make a flow produce about N images, from the yield rules in spec/.

Rules (facts read from the composed config, i.e. conf/):
- structural: the board's calibration table `board.structural_yield` (spec/endpoint_and_sizing.md §8):
  the smallest calibrated render_patches whose yield reaches N; below one patch's yield, fewer
  defect_modes (each disabled mode removes ~1/3); beyond the table, each doubling of patches adds
  1.6-1.7x crops, up to every scan-grid cell. A board without a table gets render_patches=-1.
- Day 0 texture and good images: final crops <= scan-grid cells x materials x crop cap
  (spec/knobs.md §0.4-0.5, §10): render_patches (cells) and crop_max_emit (cap per material per cell).
- Day 1 (both): num_sdg is the total of generated images (spec/knobs.md §0.10).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from compiler.compose import parse_overrides

MODE_ORDER = ("shift", "tombstone", "sideflip")  # the order spec/knobs.md §0.13 lists the pose modes in


class SizingError(Exception):
    """--images cannot apply to this request (a usage error)."""


@dataclass
class Sizing:
    images: int
    flow: str
    knobs: dict[str, Any]  # what --images sets
    expected: str  # the expected count or range
    rule: str  # the rule used, with its source
    nearest: list[str] = field(default_factory=list)  # where N itself is not achievable
    overrides: list[str] = field(default_factory=list)

    def set_text(self) -> str:
        return " ".join(f"knobs.{k}={_spell(v)}" for k, v in self.knobs.items())

    def report(self) -> str:
        lines = [
            f"--images {self.images}: set {self.set_text()} -> expected {self.expected}",
            f"    rule: {self.rule}",
        ]
        if self.nearest:
            lines.append(f"    no setting gives exactly {self.images}; nearest: {'; '.join(self.nearest)}")
        return "\n".join(lines)


def _spell(value: Any) -> str:
    return "null" if value is None else str(value)


def _cells(book: dict[str, Any]) -> int:
    grid = book.get("scan_grid") or {}
    return int(grid.get("x_num", 1)) * int(grid.get("y_num", 1))


def rule_for(config: dict[str, Any], images: int) -> Sizing:
    """The knob values that size this composed config's flow to about `images`."""
    variant, knobs, books = config["flow"]["variant"], config["knobs"], config["cookbooks"]
    flow = config["flow"]["key"]
    if variant == "structural":
        return _structural(config, images)
    if "crop_max_emit" in knobs and "day0_crop" in books and "day0_image" in books:
        return _crops(flow, books, images)
    if flow.startswith("day1") and "num_sdg" in knobs:
        return Sizing(
            images,
            flow,
            {"num_sdg": images},
            f"{images} generated images",
            "num_sdg is the total of generated (SDG) images across all defects (spec/knobs.md §0.10)",
        )
    raise SizingError(
        f"flow '{flow}' produces no images to size; --images applies to day0, good_image, "
        "structural, day1 and day1_manual_roi"
    )


def _crops(flow: str, books: dict[str, Any], images: int) -> Sizing:
    cells_total = _cells(books["day0_image"])
    crop = books["day0_crop"]["crop"]
    materials = len(set((crop.get("class_dirs") or {c: c for c in crop.get("classes", [])}).values())) or 1
    per_full_pass = cells_total * materials
    cap = math.ceil(images / per_full_pass)
    cells = math.ceil(images / (materials * cap))
    most = cells * materials * cap
    patches = -1 if cells >= cells_total else cells
    rule = (
        f"final crops <= scan-grid cells x materials x crop cap = {cells} x {materials} x {cap} "
        f"(scan grid {cells_total} cells; materials {materials} from cookbooks.day0_crop.crop.class_dirs; "
        "crop_max_emit caps crops per material per cell; spec/knobs.md §0.4, §0.5, §10)"
    )
    sizing = Sizing(
        images,
        flow,
        {"render_patches": patches, "crop_max_emit": cap},
        f"up to {most} crops (fewer where a cell holds fewer than {cap} "
        f"component{'s' if cap > 1 else ''} of a material)",
        rule,
    )
    if most != images:
        below = (cells - 1) * materials * cap if cells > 1 else None
        sizing.nearest = [f"{most} (this setting)"] + (
            [f"{below} (render_patches={cells - 1})"] if below else []
        )
    return sizing


def _structural(config: dict[str, Any], images: int) -> Sizing:
    board = config["board"]
    table = [(int(p), int(n)) for p, n in (board.get("structural_yield") or [])]
    source = "spec/endpoint_and_sizing.md §8"
    cells_total = _cells(config["cookbooks"].get("defect_image", {}))
    if not table:
        return Sizing(
            images,
            "structural",
            {"render_patches": -1},
            "not calibrated for this board",
            f"board {board['key']} has no structural calibration (conf/board/{board['key']}.yaml "
            f"structural_yield): render every scan-grid cell ({source}); calibrate with "
            "knobs.render_patches=1 and count cropped/*/rgb/*.png",
            nearest=[f"render_patches=-1 (all {cells_total} cells): count unknown until calibrated"],
        )
    calib = ", ".join(f"{p}->~{n}" for p, n in table)
    rule_head = f"board {board['key']} calibration (render_patches->crops: {calib}; {source})"
    # render_patches=1 can land on an empty cell (spec/knobs.md §0.4): narrow modes from the first entry >= 2.
    first_p, first_n = next(((p, n) for p, n in table if p >= 2), table[0])
    if images < first_n:
        return _structural_fewer_modes(images, first_p, first_n, rule_head)
    for p, n in table:
        if n >= images:
            sizing = Sizing(images, "structural", {"render_patches": p}, f"~{n} crops", rule_head)
            lower = [(q, m) for q, m in table if m < images]
            if n != images:
                sizing.nearest = [f"~{n} (render_patches={p})"] + (
                    [f"~{lower[-1][1]} (render_patches={lower[-1][0]})"] if lower else []
                )
            return sizing
    return _structural_beyond_table(images, table[-1], cells_total, rule_head)


def _structural_fewer_modes(images: int, first_p: int, first_n: int, rule_head: str) -> Sizing:
    """Below the first calibrated count: keep its patches, enable fewer defect modes (~1/3 of crops each)."""
    per_mode = first_n / len(MODE_ORDER)
    modes = max(1, math.ceil(images / per_mode))
    expected = round(per_mode * modes)
    knobs: dict[str, Any] = {"render_patches": first_p}
    if modes < len(MODE_ORDER):
        knobs["defect_modes"] = ",".join(MODE_ORDER[:modes])
    sizing = Sizing(
        images,
        "structural",
        knobs,
        f"~{expected} crops",
        f"{rule_head}; below ~{first_n} "
        f"keep {first_p} patches (1 can land on an empty cell, §0.4) and enable fewer modes "
        "(each removes ~1/3 of the crops)",
    )
    if expected != images:
        sizing.nearest = [
            f"~{round(per_mode * m)} ({m} mode{'s' if m > 1 else ''})"
            for m in sorted({max(1, modes - 1), modes})
            if round(per_mode * m) != images
        ]
    return sizing


def _structural_beyond_table(images: int, last: tuple[int, int], cells_total: int, rule_head: str) -> Sizing:
    """Beyond the table: each doubling of patches adds 1.6-1.7x crops (§8), up to every scan-grid cell."""
    last_p, last_n = last
    doublings = math.log(images / last_n, 1.6)
    p = math.ceil(last_p * 2**doublings)
    if p >= cells_total:
        hi_d = math.log2(cells_total / last_p)
        lo, hi = round(last_n * 1.6**hi_d), round(last_n * 1.7**hi_d)
        return Sizing(
            images,
            "structural",
            {"render_patches": -1},
            f"~{lo}-{hi} crops (every cell)",
            f"{rule_head}; beyond it each doubling of patches adds 1.6-1.7x crops, at most "
            f"{cells_total} cells",
            nearest=[f"~{lo}-{hi} (render_patches=-1, the most this board gives)"],
        )
    d = math.log2(p / last_p)
    lo, hi = round(last_n * 1.6**d), round(last_n * 1.7**d)
    return Sizing(
        images,
        "structural",
        {"render_patches": p},
        f"~{lo}-{hi} crops",
        f"{rule_head}; beyond it each doubling of patches adds 1.6-1.7x crops",
    )


def size_request(
    overrides: list[str], images: int, *, composer: Any = None, prefs: dict[str, str] | None = None
) -> Sizing:
    """Compose the request, choose the sizing knobs, and return the overrides of the sized compile."""
    from compiler.cli import UsageError
    from compiler.pipeline import default_composer

    req = parse_overrides(overrides)
    composed = (composer or default_composer()).compose(req, prefs or {})
    try:
        sizing = rule_for(composed.config, images)
    except SizingError as exc:
        raise UsageError(str(exc)) from None
    clash = [k for k, _ in req.values if k.removeprefix("knobs.") in sizing.knobs]
    if clash:
        raise UsageError(f"--images {images} sets {sizing.set_text()}; drop {', '.join(clash)} or --images")
    sizing.overrides = [*overrides, *(f"knobs.{k}={_spell(v)}" for k, v in sizing.knobs.items())]
    return sizing
