"""Build a self-contained `index.html` preview grid of a run: summary header plus sampled rows."""

from __future__ import annotations

import csv
import html
import io
import os
import re
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from . import images
from .columns import (
    EXPECTED,
    IMAGE_SUFFIXES,
    INFER,
    Column,
    Row,
    build_rows,
    choose,
    columns_for,
    missing_columns,
)
from .source import OutputsError, RunSource
from .workflow import RunLayout

DEFAULT_SAMPLES = 8
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass
class StageCount:
    stage: str
    present: bool
    files: int = 0
    images: int = 0
    bytes: int = 0


@dataclass
class Summary:
    stages: list[StageCount]
    materials: list[str]
    material_label: str
    defect_types: Counter
    candidates: int = 0
    complete: int = 0
    skipped: Counter = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)
    checkpoints: list[str] = field(default_factory=list)


@dataclass
class Cell:
    src: str  # relative to index.html
    width: int
    height: int
    caption: str


@dataclass
class PreviewResult:
    index: Path
    rows: int
    columns: list[str]
    summary: Summary


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def read_defect_types(source: RunSource, scratch: Path) -> Counter:
    """Count defect types in `anomaly/inference/SDG_result.csv` (column named like `defect_type`).

    The CSV schema is not pinned upstream ("per-sample labels + run metadata"), so the column is
    found by name; an unreadable file yields an empty count rather than failing the preview.
    """
    csv_path = f"{INFER}/SDG_result.csv"
    if not any(e.path == csv_path for e in source.list_stage("anomaly")):
        return Counter()
    text = source.materialize(csv_path, scratch).read_text(encoding="utf-8", errors="replace")
    reader = csv.DictReader(io.StringIO(text))
    fields = reader.fieldnames or []
    lowered = {f.strip().lower(): f for f in fields}
    col = lowered.get("defect_type") or next(
        (f for k, f in lowered.items() if "defect" in k or "anomaly_type" in k), None
    )
    if col is None:
        return Counter()
    return Counter((row.get(col) or "").strip() for row in reader if (row.get(col) or "").strip())


def summarize(source: RunSource, flow: RunLayout, stages: list[str], scratch: Path) -> Summary:
    counts = []
    for s in flow.stage_dirs:
        entries = source.list_stage(s) if s in stages else []
        counts.append(
            StageCount(
                s,
                s in stages,
                len(entries),
                sum(1 for e in entries if PurePosixPath(e.path).suffix.lower() in IMAGE_SUFFIXES),
                sum(e.size or 0 for e in entries),
            )
        )
    defect_types = read_defect_types(source, scratch) if "anomaly" in stages else Counter()
    materials: set[str] = set()
    label = "Materials"
    if flow.layout == "structural":
        label = "Defect modes"
        for e in source.list_stage("structural_defect"):
            parts = e.path.split("/")
            if len(parts) > 3 and parts[1] == "cropped":
                materials.add(parts[2])
    else:
        crop_stage = {"crops": "usd2roi-components", "day1": "usd2roi-day1"}
        if flow.layout in crop_stage and crop_stage[flow.layout] in stages:
            for e in source.list_stage(crop_stage[flow.layout]):
                parts = e.path.split("/")
                if len(parts) > 3 and parts[1] == "crop":
                    materials.add(parts[2])
        # Defect types are `<MATERIAL>+<DEFECT>`: the only material record a manual-ROI run has.
        materials.update(t.split("+", 1)[0] for t in defect_types if "+" in t)
    checkpoints = []
    if "finetune" in stages:
        checkpoints = sorted(
            e.path
            for e in source.list_stage("finetune")
            if "/checkpoints/model/" in e.path and PurePosixPath(e.path).name.startswith("iter_")
        )
    return Summary(counts, sorted(materials), label, defect_types, checkpoints=checkpoints)


@dataclass(frozen=True)
class _CellWriter:
    """Writes one cell's thumbnail from the run (`source`, objects fetched into `scratch`) under `out`."""

    source: RunSource
    out: Path
    scratch: Path

    def __call__(self, row: Row, col: Column, k: int, idx: int) -> Cell | None:
        """Row `idx`'s cell of column `k` (1-based) as `col<k>/<idx>_<row key>.<ext>`; None when absent."""
        source, out, scratch = self.source, self.out, self.scratch
        value = row.cells.get(col.key)
        if value is None:
            return None
        stem = out / f"col{k}" / f"{idx:02d}_{_SAFE.sub('_', row.key)[:80]}"
        if col.kind == "overlay":
            img_path, mask_path = value  # type: ignore[misc]
            img = images.thumbnail(images.load_rgb(source.materialize(img_path, scratch)))
            mask = images.mask_bool(source.materialize(mask_path, scratch), img.size)
            img = images.outline(img, mask)
            caption = PurePosixPath(mask_path).name + ("" if mask.any() else " (mask empty)")
            dest = images.save(img, stem, lossless=True)
        else:
            local = source.materialize(str(value), scratch)
            img = images.load_mask_view(local) if col.kind == "mask" else images.load_rgb(local)
            img = images.thumbnail(img)
            dest = images.save(img, stem, lossless=col.kind == "mask")
            caption = PurePosixPath(str(value)).name
        return Cell(dest.relative_to(out).as_posix(), img.width, img.height, caption)


_CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:16px;background:#111;color:#ddd}
h1{font-size:20px;margin:0 0 4px}h1 small{color:#999;font-weight:normal}
.meta{color:#aaa;margin:0 0 12px}
table{border-collapse:collapse}
.summary td,.summary th{border:1px solid #333;padding:2px 8px;text-align:right}
.summary th:first-child,.summary td:first-child{text-align:left}
.absent{color:#777}
.facts{margin:10px 0}.facts b{color:#fff}
.tag{display:inline-block;background:#233;border:1px solid #355;border-radius:3px;padding:0 6px;margin:1px}
#samples{margin-top:12px}
#samples th,#samples td{border:1px solid #333;padding:4px;vertical-align:top}
#samples thead th{background:#1c1c1c;position:sticky;top:0}
#samples tbody th{text-align:left;font-weight:normal;color:#bbb;white-space:nowrap}
figure{margin:0}img{display:block;width:200px;height:auto;background:#000;image-rendering:auto}
figcaption{font-size:11px;color:#999;max-width:200px;word-break:break-all}
td.blank{color:#666;font-size:12px;text-align:center;vertical-align:middle}
.notes{color:#e8b86d}
"""


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def render_html(
    source: RunSource,
    flow: RunLayout,
    columns: tuple[Column, ...],
    rows: list[tuple[Row, list[Cell | None]]],
    summary: Summary,
) -> str:
    """The page of run `source.name` (read from `source.where`); every string from storage goes through
    `html.escape`."""
    name = source.name
    out = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>dig preview · {_e(name)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{_e(name)} <small>{_e(flow.title)}</small></h1>",
        f'<p class="meta">source: {_e(source.where)}</p>',
    ]
    out += _summary_html(summary, columns, len(rows))
    if columns:
        out += _samples_html(columns, rows)
    out.append("</body></html>\n")
    return "\n".join(out)


def _summary_html(summary: Summary, columns: tuple[Column, ...], shown: int) -> list[str]:
    """The stage table, materials / defect types / checkpoints, how the rows were sampled, the notes."""
    out = [
        '<table class="summary" id="stage-counts"><thead><tr><th>Stage</th><th>Files</th><th>Images</th>'
        "<th>Size</th></tr></thead><tbody>",
    ]
    for s in summary.stages:
        if s.present:
            out.append(
                f"<tr><td>{_e(s.stage)}/</td><td>{s.files}</td><td>{s.images}</td><td>{_size(s.bytes)}</td></tr>"
            )
        else:
            out.append(f'<tr class="absent"><td>{_e(s.stage)}/</td><td colspan="3">missing</td></tr>')
    out.append("</tbody></table>")
    mats = " ".join(f'<span class="tag">{_e(m)}</span>' for m in summary.materials) or "—"
    out.append(f'<div class="facts"><div id="materials"><b>{_e(summary.material_label)}:</b> {mats}</div>')
    if any(s.stage == "anomaly" for s in summary.stages):
        defects = (
            " ".join(
                f'<span class="tag">{_e(t)} × {n}</span>' for t, n in sorted(summary.defect_types.items())
            )
            or "— (no defect column in anomaly/inference/SDG_result.csv)"
        )
        out.append(f'<div id="defect-types"><b>Defect types:</b> {defects}</div>')
    if summary.checkpoints:
        out.append(
            f'<div id="checkpoints"><b>Checkpoints ({len(summary.checkpoints)}):</b> '
            + " ".join(f'<span class="tag">{_e(PurePosixPath(c).name)}</span>' for c in summary.checkpoints)
            + "</div>"
        )
    if columns:
        skipped = "; ".join(f"{n} missing {_e(t)}" for t, n in sorted(summary.skipped.items()))
        out.append(
            f'<div id="sampling">Showing <b>{shown}</b> of {summary.complete} complete samples '
            f"({summary.candidates} candidates"
            + (f"; skipped {summary.candidates - summary.complete}: {skipped}" if skipped else "")
            + ")</div>"
        )
    out.append("</div>")
    out += [f'<p class="notes">{_e(n)}</p>' for n in summary.notes]
    return out


def _samples_html(columns: tuple[Column, ...], rows: list[tuple[Row, list[Cell | None]]]) -> list[str]:
    out = ['<table id="samples"><thead><tr><th>Sample</th>']
    out += [f'<th data-col="{_e(c.key)}">{_e(c.title)}</th>' for c in columns]
    out.append("</tr></thead><tbody>")
    for row, cells in rows:
        label = "<br>".join(_e(part) for part in row.label.split(" · "))
        out.append(f'<tr data-sample="{_e(row.key)}"><th>{label}</th>')
        for col, cell in zip(columns, cells, strict=True):
            if cell is None:
                out.append(f'<td class="blank" data-col="{_e(col.key)}">no defect mask</td>')
            else:
                out.append(
                    f'<td data-col="{_e(col.key)}"><figure><img src="{_e(cell.src)}" alt="{_e(cell.caption)}" '
                    f'width="{cell.width}" height="{cell.height}"><figcaption>{_e(cell.caption)}</figcaption>'
                    "</figure></td>"
                )
        out.append("</tr>")
    out.append("</tbody></table>")
    return out


def _prepare_dest(dest: Path, force: bool) -> None:
    index = dest / "index.html"
    if index.exists() or any(dest.glob("col[0-9]*")):
        if not force:
            raise OutputsError(
                f"refusing to overwrite the preview in {dest}",
                hint="pass --force to replace it, or choose another --dest",
            )
        index.unlink(missing_ok=True)
        for d in dest.glob("col[0-9]*"):
            if d.is_dir():
                shutil.rmtree(d)
    dest.mkdir(parents=True, exist_ok=True)


def build_preview(
    source: RunSource, flow: RunLayout, dest: Path, *, samples: int = DEFAULT_SAMPLES, force: bool = False
) -> PreviewResult:
    """Write `<dest>/index.html` with images under `<dest>/col<K>/`; the result names the index."""
    if samples < 1:
        raise OutputsError(f"--samples must be >= 1, got {samples}")
    dest = dest.expanduser().resolve()
    stages, notes = source.check_stages(flow)
    _prepare_dest(dest, force)
    columns = columns_for(flow.layout, flow.stage_dirs)
    with tempfile.TemporaryDirectory(prefix="dig-preview-") as tmp:
        scratch = Path(tmp)
        summary = summarize(source, flow, stages, scratch)
        summary.notes += notes
        candidates = build_rows(flow.layout, source, stages)
        complete = []
        for r in candidates:
            miss = missing_columns(r, columns)
            if miss:
                summary.skipped[miss[0].title] += 1
            else:
                complete.append(r)
        summary.candidates, summary.complete = len(candidates), len(complete)
        if columns and not complete:
            summary.notes.append(
                (
                    f"no complete samples: {len(candidates)} candidate(s), none with every column"
                    if candidates
                    else "no samples found in the expected layout (storage_layout.md §5)"
                )
                + f"; a sample needs {EXPECTED[flow.layout]}"
            )
        chosen = choose(complete, samples, per_group=flow.layout == "structural")
        cell = _CellWriter(source, dest, scratch)
        rendered = [
            (r, [cell(r, c, k, i) for k, c in enumerate(columns, start=1)]) for i, r in enumerate(chosen)
        ]
    if source.skipped_keys:
        summary.notes.append(f"skipped {len(source.skipped_keys)} key(s) with unsafe paths")
    text = render_html(source, flow, columns, rendered, summary)
    index = dest / "index.html"
    tmp_index = dest / ".index.html.part"
    tmp_index.write_text(text, encoding="utf-8")
    os.replace(tmp_index, index)
    return PreviewResult(index, len(rendered), [c.title for c in columns], summary)
