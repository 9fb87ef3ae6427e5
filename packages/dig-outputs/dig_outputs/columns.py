"""Preview columns per row layout (endpoint_and_sizing.md §5) and the matching of one sample across stages."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from .source import RunSource

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}
INFER = "anomaly/inference"


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    kind: str  # "image" | "mask" | "overlay"
    required: bool = True


COL_INPUT_OV = Column("input", "OV render", "image")
COL_MASK_OV = Column("mask", "OV cad mask", "mask")
COL_AUG = Column("augment", "Augmentation (OV→SL)", "image")
COL_AG = Column("anomalygen", "AnomalyGen", "image")
# Not in the upstream grid: the generated defect with its pre-crop submask outlined, so a reviewer
# sees where the defect is. Optional by design: a missing mask never hides a row.
COL_DEFECT = Column("defect", "Defect + mask outline", "overlay", required=False)

# Column layouts by the stage that anchors a row (RunLayout.layout); `crops` without an anomaly/
# stage is the good-image grid. Titles describe what the stage's files are (storage_layout.md §5).
LAYOUTS: dict[str, tuple[Column, ...]] = {
    "crops": (COL_INPUT_OV, COL_MASK_OV, COL_AUG, COL_AG, COL_DEFECT),
    "structural": (COL_INPUT_OV, Column("mask", "Semantic mask", "mask"), COL_AUG),
    "day1": (
        Column("input", "Original image", "image"),
        Column("mask", "OV cad mask", "mask"),
        COL_AG,
        COL_DEFECT,
    ),
    "manual": (
        Column("input", "Original image", "image"),
        Column("mask", "Original mask", "mask"),
        COL_AG,
        COL_DEFECT,
    ),
    "none": (),
}
# The file names a complete row needs, per column, for the message when none is complete.
EXPECTED = {
    "crops": "usd2roi-components/crop/<MAT>/<cell>/normal_img/<NNNN>.png with cad_mask/<NNNN>_cad_mask.png, "
    "augment/crop/<MAT>/<cell>/<NNNN>.<ext>, anomaly/inference/reconstructed_image/<cell>__<NNNN>.png",
    "structural": "structural_defect/cropped/<mode>/rgb/<NNNN>.png with semantic_segmentation/<NNNN>.png, "
    "structural_defect_edited/<mode>/rgb/<NNNN>.<ext>",
    "day1": "usd2roi-day1/crop/<MAT>/normal_img/<NNNN>.png with cad_mask/<NNNN>[_cad_mask].png, "
    "anomaly/inference/reconstructed_image/<NNNN>.png",
    "manual": "anomaly/inference/original_image/<file> with original_mask/<file> and reconstructed_image/<file>",
    "none": "",
}


def columns_for(layout: str, stages: tuple[str, ...]) -> tuple[Column, ...]:
    """The preview columns of a layout, without the anomaly columns when the workflow writes no anomaly/."""
    cols = LAYOUTS[layout]
    if "anomaly" not in stages:
        cols = tuple(c for c in cols if c.key not in ("anomalygen", "defect"))
    return cols


@dataclass
class Row:
    """One sample: `cells` maps column key to run-relative paths (`overlay` holds `(image, mask)`)."""

    key: str
    label: str
    group: str = ""
    cells: dict[str, object] = field(default_factory=dict)


def _images(source: RunSource, stage: str) -> list[PurePosixPath]:
    return [
        PurePosixPath(e.path)
        for e in source.list_stage(stage)
        if PurePosixPath(e.path).suffix.lower() in IMAGE_SUFFIXES
    ]


def _by_name(paths: list[PurePosixPath], parent: str) -> dict[str, PurePosixPath]:
    """Files directly in `parent`, by file name (and by stem as a fallback for another extension)."""
    out: dict[str, PurePosixPath] = {}
    for p in paths:
        if str(p.parent) == parent:
            out[p.name] = p
            out.setdefault("stem:" + p.stem, p)
    return out


def _lookup(index: dict[str, PurePosixPath], name: str) -> PurePosixPath | None:
    return index.get(name) or index.get("stem:" + PurePosixPath(name).stem)


def _add_defect(row: Row, recon: PurePosixPath | None, masks: dict[str, PurePosixPath]) -> None:
    # storage_layout.md §5.6: original_mask/ shares the reconstructed image's file name.
    if recon is None:
        return
    mask = _lookup(masks, recon.name)
    if mask is not None:
        row.cells["defect"] = (str(recon), str(mask))


def _anomaly_indexes(source: RunSource, stages: list[str]) -> tuple[dict, dict, dict]:
    if "anomaly" not in stages:
        return {}, {}, {}
    imgs = _images(source, "anomaly")
    return (
        _by_name(imgs, f"{INFER}/reconstructed_image"),
        _by_name(imgs, f"{INFER}/original_mask"),
        _by_name(imgs, f"{INFER}/original_image"),
    )


def rows_day0(source: RunSource, stages: list[str], with_anomaly: bool) -> list[Row]:
    """usd2roi-components/crop/<MAT>/<cell>/normal_img/<NNNN>.png anchors each row."""
    comp = _images(source, "usd2roi-components")
    files = {str(p) for p in comp}
    aug: dict[tuple[str, str, str], PurePosixPath] = {}
    if "augment" in stages:
        for p in _images(source, "augment"):
            parts = p.parts
            if len(parts) == 5 and parts[1] == "crop":
                aug[(parts[2], parts[3], p.stem)] = p
    recon, omask, _ = _anomaly_indexes(source, stages) if with_anomaly else ({}, {}, {})
    rows = []
    for p in comp:
        parts = p.parts
        if not (len(parts) == 6 and parts[1] == "crop" and parts[4] == "normal_img"):
            continue
        mat, cell, stem = parts[2], parts[3], p.stem
        row = Row(f"{mat}/{cell}/{stem}", f"{mat} · {cell} · {stem}", group=mat)
        row.cells["input"] = str(p)
        cad = f"usd2roi-components/crop/{mat}/{cell}/cad_mask/{stem}_cad_mask.png"
        if cad in files:
            row.cells["mask"] = cad
        if (mat, cell, stem) in aug:
            row.cells["augment"] = str(aug[(mat, cell, stem)])
        if with_anomaly:
            # Day 0 inference flattens cells into composite names `<cell>__<stem>`.
            r = _lookup(recon, f"{cell}__{stem}.png")
            if r is not None:
                row.cells["anomalygen"] = str(r)
            _add_defect(row, r, omask)
        rows.append(row)
    return rows


def rows_structural(source: RunSource, stages: list[str]) -> list[Row]:
    """structural_defect/cropped/<mode>/rgb/<NNNN>.png anchors; component_instance/ is not an image."""
    sd = _images(source, "structural_defect")
    files = {str(p) for p in sd}
    edited: dict[tuple[str, str], PurePosixPath] = {}
    if "structural_defect_edited" in stages:
        for p in _images(source, "structural_defect_edited"):
            parts = p.parts
            if len(parts) == 4 and parts[2] == "rgb":
                edited[(parts[1], p.stem)] = p
    rows = []
    for p in sd:
        parts = p.parts
        if not (len(parts) == 5 and parts[1] == "cropped" and parts[3] == "rgb"):
            continue
        mode, stem = parts[2], p.stem
        row = Row(f"{mode}/{stem}", f"{mode} · {stem}", group=mode)
        row.cells["input"] = str(p)
        for suffix in (".png", p.suffix):
            seg = f"structural_defect/cropped/{mode}/semantic_segmentation/{stem}{suffix}"
            if seg in files:
                row.cells["mask"] = seg
                break
        if (mode, stem) in edited:
            row.cells["augment"] = str(edited[(mode, stem)])
        rows.append(row)
    return rows


def rows_day1(source: RunSource, stages: list[str]) -> list[Row]:
    """usd2roi-day1/crop/<MAT>/normal_img/<NNNN>.png anchors; anomaly keeps the <NNNN> stems."""
    d1 = _images(source, "usd2roi-day1")
    files = {str(p) for p in d1}
    recon, omask, _ = _anomaly_indexes(source, stages)
    rows = []
    for p in d1:
        parts = p.parts
        if not (len(parts) == 5 and parts[1] == "crop" and parts[3] == "normal_img"):
            continue
        mat, stem = parts[2], p.stem
        row = Row(f"{mat}/{stem}", f"{mat} · {stem}", group=mat)
        row.cells["input"] = str(p)
        # storage_layout.md §5.4: the suffix is unconfirmed upstream; try both, `_cad_mask` first.
        for name in (f"{stem}_cad_mask.png", f"{stem}.png"):
            cad = f"usd2roi-day1/crop/{mat}/cad_mask/{name}"
            if cad in files:
                row.cells["mask"] = cad
                break
        r = _lookup(recon, p.name)
        if r is not None:
            row.cells["anomalygen"] = str(r)
        _add_defect(row, r, omask)
        rows.append(row)
    return rows


def rows_manual(source: RunSource, stages: list[str]) -> list[Row]:
    """anomaly/inference/original_image/<file> anchors; mask and output share the file name."""
    recon, omask, orig = _anomaly_indexes(source, stages)
    rows = []
    for name, p in sorted(orig.items()):
        if name.startswith("stem:"):
            continue
        row = Row(name, name)
        row.cells["input"] = str(p)
        m = _lookup(omask, name)
        if m is not None:
            row.cells["mask"] = str(m)
        r = _lookup(recon, name)
        if r is not None:
            row.cells["anomalygen"] = str(r)
        _add_defect(row, r, omask)
        rows.append(row)
    return rows


def build_rows(layout: str, source: RunSource, stages: list[str]) -> list[Row]:
    """Every candidate row of the layout, sorted by key; incomplete rows included (see `complete`)."""
    if layout == "crops":
        rows = rows_day0(source, stages, with_anomaly="anomaly" in stages)
    elif layout == "structural":
        rows = rows_structural(source, stages)
    elif layout == "day1":
        rows = rows_day1(source, stages)
    elif layout == "manual":
        rows = rows_manual(source, stages)
    else:
        rows = []
    return sorted(rows, key=lambda r: r.key)


def missing_columns(row: Row, columns: tuple[Column, ...]) -> list[Column]:
    return [c for c in columns if c.required and c.key not in row.cells]


def every_kth(items: list, n: int) -> list:
    """endpoint_and_sizing.md §5: sort, take every k-th with k = ceil(N/n)."""
    if n <= 0 or not items:
        return []
    k = max(1, math.ceil(len(items) / n))
    return items[::k][:n]


def choose(rows: list[Row], n: int, *, per_group: bool) -> list[Row]:
    """Deterministic sample of complete rows; `per_group` spreads it over groups (structural modes)."""
    if not per_group:
        return every_kth(rows, n)
    groups: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        groups[r.group].append(r)
    names = sorted(groups)
    if not names:
        return []
    # At least one sample per mode, the rest shared out in mode order.
    base, extra = divmod(max(n, len(names)), len(names))
    picked: list[Row] = []
    for i, g in enumerate(names):
        picked += every_kth(groups[g], base + (1 if i < extra else 0))
    return picked
