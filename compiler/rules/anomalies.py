"""What to generate: defect modes, the anomaly taxonomy against the checkpoint and the board, the ROI mode."""

from __future__ import annotations

from compiler.errors import Diagnostic
from compiler.rules.registry import Config, err, rule, warn


@rule(
    "A16",
    "error",
    "defect_modes: `all` or a comma list of shift/tombstone/sideflip, no spaces, empties or repeats",
)
def _defect_modes(config: Config, explicit: set[str]) -> list[Diagnostic]:
    knobs = config["knobs"]
    if "defect_modes" not in knobs:
        return []
    from dig_stages.structural import parse_defect_modes

    try:
        parse_defect_modes(knobs["defect_modes"])
    except ValueError as exc:
        return [
            err(
                "knobs.defect_modes",
                str(exc),
                knobs["defect_modes"],
                "all, or e.g. shift,tombstone (no spaces)",
                "A16",
            )
        ]
    return []


@rule(
    "A19",
    "error",
    "anomaly types must be ones the shipped checkpoint was trained on (use_pretrained_checkpoint=true)",
)
def _taxonomy(config: Config, explicit: set[str]) -> list[Diagnostic]:
    knobs = config["knobs"]
    pairs = knobs.get("anomaly_types_json")
    if pairs is None:
        return []
    out = []
    seen = set()
    for pair in pairs:
        if tuple(pair) in seen:
            out.append(
                err(
                    "knobs.anomaly_types_json",
                    "lists the same [material, defect] pair twice",
                    pair,
                    rid="A18",
                )
            )
        seen.add(tuple(pair))
    if knobs.get("use_pretrained_checkpoint") is True:
        shipped = [list(p) for p in config["usecase"]["anomaly_types"]]
        unknown = [p for p in pairs if list(p) not in shipped]
        if unknown:
            out.append(
                err(
                    "knobs.anomaly_types_json",
                    f"the shipped {config['usecase']['key']} checkpoint was not "
                    "trained on these pairs (validate_jsonl.py would fail: TEXTURE+TYPE_C not supported); "
                    "pick from the allowed pairs or finetune first (use_pretrained_checkpoint=false)",
                    unknown,
                    str(shipped),
                    "A19",
                )
            )
    return out


@rule(
    "A20",
    "error notice",
    "anomaly materials must be produced by the board's crop (class_dirs): none -> error, some -> notice",
)
def _materials_vs_board(config: Config, explicit: set[str]) -> list[Diagnostic]:
    knobs, books = config["knobs"], config["cookbooks"]
    pairs = knobs.get("anomaly_types_json")
    crop = (books.get("day0_crop") or books.get("usd2roi_nvpcb") or {}).get("crop")
    if not pairs or not crop or config["flow"]["variant"] not in ("texture", "real_alignment"):
        return []
    produced = sorted(set((crop.get("class_dirs") or {}).values()))
    materials = sorted({p[0] for p in pairs})
    missing = [m for m in materials if m not in produced]
    if missing == materials:
        return [
            err(
                "knobs.anomaly_types_json",
                f"no pair's material is cropped from board "
                f"'{config['board']['key']}' (its crop.class_dirs give {produced}): the run would "
                "generate no defects",
                materials,
                f"pairs whose material is one of {produced}",
                "A20",
            )
        ]
    if missing:
        # The upstream pod stages only the materials on disk and warns; so do we, at compile time.
        return [
            Diagnostic(
                "notice",
                "knobs.anomaly_types_json",
                f"materials {missing} are not cropped from board "
                f"'{config['board']['key']}' ({produced}); their pairs get no images",
                rule="A20",
            )
        ]
    return []


@rule("A21", "error warning", "default_spatial_dependency=text needs knobs.roi_prompt")
def _text_mode(config: Config, explicit: set[str]) -> list[Diagnostic]:
    knobs = config["knobs"]
    mode = knobs.get("default_spatial_dependency")
    if mode == "text" and not knobs.get("roi_prompt"):
        return [
            err(
                "knobs.roi_prompt",
                "is required when default_spatial_dependency=text (the ROI is found "
                "from this free-text prompt)",
                None,
                'e.g. knobs.roi_prompt="the solder joint"',
                "A21",
            )
        ]
    if mode != "text" and knobs.get("roi_prompt"):
        return [
            warn(
                "knobs.roi_prompt",
                f"is ignored with default_spatial_dependency={mode}",
                knobs["roi_prompt"],
                rid="A21",
            )
        ]
    return []
