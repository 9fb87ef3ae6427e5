"""`preview` without a browser: columns, deterministic sampling, skipping, mask outline, escaping, summary."""

from __future__ import annotations

import math
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from dig_outputs.__main__ import main
from dig_outputs.columns import Row, choose, columns_for, every_kth
from dig_outputs.images import OUTLINE_RGB, mask_bool, outline, thumbnail
from dig_outputs.preview import build_preview
from dig_outputs.source import LocalRun
from dig_outputs.synthetic import RunSpec, build_run, golden_workflow
from dig_outputs.workflow import read_workflow
from PIL import Image


def cols(flow: str):
    wf = read_workflow(golden_workflow(flow))
    return columns_for(wf.layout, wf.stage_dirs)


class _Page(HTMLParser):
    """Collects what the assertions need: header cells, rows, img attributes, external references."""

    def __init__(self) -> None:
        super().__init__()
        self.col_titles: list[str] = []
        self.rows: list[str] = []
        self.imgs: list[dict] = []
        self.blank_cells: list[str] = []
        self.tags: set[str] = set()
        self._in_samples_head = False
        self._th_text: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.add(tag)
        if tag == "table" and a.get("id") == "samples":
            self._in_samples_head = True
        if tag == "th" and self._in_samples_head:
            self._th_text = []
        if tag == "tbody":
            self._in_samples_head = False
        if tag == "tr" and "data-sample" in a:
            self.rows.append(a["data-sample"])
        if tag == "img":
            self.imgs.append(a)
        if tag == "td" and a.get("class") == "blank":
            self.blank_cells.append(self.rows[-1])

    def handle_data(self, data):
        if self._th_text is not None:
            self._th_text.append(data)

    def handle_endtag(self, tag):
        if tag == "th" and self._th_text is not None:
            self.col_titles.append("".join(self._th_text))
            self._th_text = None


def _parse(index: Path) -> _Page:
    page = _Page()
    page.feed(index.read_text(encoding="utf-8"))
    return page


def _expected_rows(flow: str, complete: list[str], n: int = 8) -> list[str]:
    if flow != "structural":
        k = max(1, math.ceil(len(complete) / n))
        return complete[::k][:n]
    return [r.key for r in choose([Row(k, k, group=k.split("/")[0]) for k in complete], n, per_group=True)]


@pytest.mark.parametrize("flow", ["day0", "good_image", "structural", "day1", "day1_manual_roi"])
def test_outputs_preview_columns_rows_and_files(flow, runs, tmp_path):
    run = runs[flow]
    result = build_preview(
        LocalRun(run.run_dir, run.run_dir.name), read_workflow(golden_workflow(flow)), tmp_path / "p"
    )
    page = _parse(result.index)
    assert page.col_titles == ["Sample"] + [c.title for c in cols(flow)]
    assert page.rows == _expected_rows(flow, run.complete_rows)
    # Self-contained: no scripts, no stylesheets, no remote or absolute references.
    html_text = result.index.read_text()
    assert "script" not in page.tags and "link" not in page.tags
    assert not re.search(
        r"(https?:|file:|//)", html_text.split("<style>")[0] + html_text.split("</style>")[1]
    )
    for img in page.imgs:
        src = img["src"]
        assert re.fullmatch(r"col[1-5]/[A-Za-z0-9_.-]+\.(png|jpg)", src), src
        assert (result.index.parent / src).is_file()
        with Image.open(result.index.parent / src) as im:
            assert (im.width, im.height) == (int(img["width"]), int(img["height"]))
    has_defect_col = any(c.key == "defect" for c in cols(flow))
    expected_blank = [r for r in page.rows if has_defect_col and _mask_missing(run, flow, r)]
    assert page.blank_cells == expected_blank
    assert len(page.imgs) == len(page.rows) * len(cols(flow)) - len(expected_blank)


def _mask_missing(run, flow: str, row_key: str) -> bool:
    if flow == "day0":
        _mat, cell, stem = row_key.split("/")
        fname = f"{cell}__{stem}.png"
    elif flow == "day1":
        fname = row_key.split("/")[1] + ".png"
    else:
        fname = row_key
    return fname in run.rows_without_defect_mask


def test_outputs_preview_day0_skips_rows_without_anomalygen_and_keeps_rows_without_mask(runs, tmp_path):
    run = runs["day0"]
    result = build_preview(
        LocalRun(run.run_dir, "r"), read_workflow(golden_workflow("day0")), tmp_path / "p", samples=50
    )
    page = _parse(result.index)
    assert page.rows == run.complete_rows  # samples >= N: every complete row, in sorted order
    assert result.summary.candidates == 9 and result.summary.complete == 7
    assert dict(result.summary.skipped) == {"AnomalyGen": 2}
    assert page.blank_cells  # rows whose defect mask is absent are still shown
    assert "skipped 2: 2 missing AnomalyGen" in result.index.read_text()


def test_outputs_preview_deterministic(runs, tmp_path):
    run = runs["day1"]
    a = build_preview(
        LocalRun(run.run_dir, "r"), read_workflow(golden_workflow("day1")), tmp_path / "a", samples=3
    )
    b = build_preview(
        LocalRun(run.run_dir, "r"), read_workflow(golden_workflow("day1")), tmp_path / "b", samples=3
    )
    assert a.index.read_text() == b.index.read_text()
    for f in sorted(p for p in a.index.parent.rglob("*") if p.is_file()):
        assert f.read_bytes() == (b.index.parent / f.relative_to(a.index.parent)).read_bytes()


def test_outputs_every_kth_rule():
    items = [f"{i:02d}" for i in range(20)]
    assert every_kth(items, 8) == ["00", "03", "06", "09", "12", "15", "18"]  # k = ceil(20/8) = 3
    assert every_kth(items, 5) == ["00", "04", "08", "12", "16"]
    assert every_kth(items[:3], 8) == items[:3]
    assert every_kth([], 8) == []


def test_outputs_choose_structural_covers_every_mode():
    rows = [Row(f"{m}/{i:04d}", "", group=m) for m in ("shift", "sideflip", "tombstone") for i in range(10)]
    picked = choose(rows, 2, per_group=True)
    assert sorted({r.group for r in picked}) == ["shift", "sideflip", "tombstone"]
    assert len(choose(rows, 8, per_group=True)) == 8


def test_outputs_defect_column_outlines_mask(runs, tmp_path):
    run = runs["day0"]
    result = build_preview(
        LocalRun(run.run_dir, "r"), read_workflow(golden_workflow("day0")), tmp_path / "p", samples=50
    )
    overlays = sorted((result.index.parent / "col5").glob("*.png"))
    assert overlays
    for path in overlays:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"))
        assert (arr == OUTLINE_RGB).all(axis=2).any(), path


def test_outputs_outline_draws_boundary_only():
    img = Image.new("RGB", (40, 30), (10, 20, 30))
    mask = np.zeros((30, 40), bool)
    mask[10:20, 12:28] = True
    arr = np.asarray(outline(img, mask))
    magenta = (arr == OUTLINE_RGB).all(axis=2)
    assert magenta[10, 15] and magenta[19, 20] and magenta[15, 12] and magenta[15, 27]
    assert not magenta[15, 20]  # inside stays the image
    assert not magenta[5, 5]  # outside too
    # A defect touching the border still gets a closed outline along the frame.
    edge = np.zeros((30, 40), bool)
    edge[0:5, 0:5] = True
    assert (np.asarray(outline(img, edge))[0, 2] == OUTLINE_RGB).all()


def test_outputs_mask_bool_resizes_and_thresholds(tmp_path):
    m = np.zeros((20, 20), np.uint8)
    m[5:15, 5:15] = 255
    m[0, 0] = 40  # lossy noise below the threshold
    Image.fromarray(m).save(tmp_path / "m.png")
    b = mask_bool(tmp_path / "m.png", (10, 10))
    assert b.shape == (10, 10) and b[5, 5] and not b[0, 0]
    labels = np.zeros((8, 8), np.uint8)
    labels[2:4, 2:4] = 1  # label-id masks use small values
    Image.fromarray(labels).save(tmp_path / "l.png")
    assert mask_bool(tmp_path / "l.png", (8, 8)).sum() == 4


def test_outputs_large_frames_are_thumbnailed(tmp_path):
    # One hand-made Day 1 sample with 4k-class frames (the generator is too slow at this size).
    run_dir = tmp_path / "runs" / "big"
    frame = Image.new("RGB", (1400, 1050), (30, 90, 40))
    mask = Image.new("L", (1400, 1050), 0)
    mask.paste(255, (600, 400, 800, 600))
    for rel, im in (
        ("usd2roi-day1/crop/IC/normal_img/0000.png", frame),
        ("usd2roi-day1/crop/IC/cad_mask/0000_cad_mask.png", mask),
        ("anomaly/inference/reconstructed_image/0000.png", frame),
        ("anomaly/inference/original_mask/0000.png", mask),
    ):
        (run_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        im.save(run_dir / rel, compress_level=1)
    result = build_preview(LocalRun(run_dir, "big"), read_workflow(golden_workflow("day1")), tmp_path / "p")
    page = _parse(result.index)
    assert len(page.imgs) == 4 and all(int(i["width"]) == 640 and int(i["height"]) == 480 for i in page.imgs)
    assert thumbnail(Image.new("RGB", (300, 200))).size == (300, 200)


def test_outputs_names_from_storage_are_escaped(tmp_path):
    run_dir = tmp_path / "runs" / 'r<u>&"x'
    build_run(run_dir, "day1_manual_roi", RunSpec(per_cell=1))
    inf = run_dir / "anomaly" / "inference"
    evil = '<img src=x onerror=alert(1)>&"q.png'
    for sub in ("original_image", "original_mask", "reconstructed_image"):
        first = sorted((inf / sub).iterdir())[0]
        first.rename(inf / sub / evil)
    result = build_preview(
        LocalRun(run_dir, run_dir.name), read_workflow(golden_workflow("day1_manual_roi")), tmp_path / "p"
    )
    text = result.index.read_text()
    assert "<img src=x" not in text and "<u>" not in text
    assert "&lt;img src=x onerror=alert(1)&gt;&amp;&quot;q.png" in text
    assert "r&lt;u&gt;&amp;&quot;x" in text
    page = _parse(result.index)
    assert evil in page.rows
    assert all(re.fullmatch(r"col[1-5]/[A-Za-z0-9_.-]+\.(png|jpg)", i["src"]) for i in page.imgs)


def test_outputs_preview_summary(runs, tmp_path):
    run = runs["day0"]
    result = build_preview(LocalRun(run.run_dir, "r"), read_workflow(golden_workflow("day0")), tmp_path / "p")
    s = result.summary
    assert [(c.stage, c.present, c.files) for c in s.stages] == [
        (st, True, sum(1 for f in run.files if f.startswith(st + "/")))
        for st in ("usd2roi-components", "augment", "finetune", "anomaly")
    ]
    assert s.materials == ["IC", "passive_component"]
    assert dict(s.defect_types) == run.defect_types
    assert s.checkpoints and s.checkpoints[0].endswith("checkpoints/model/iter_000000100.pt")
    text = result.index.read_text()
    assert "IC+bridge × 2" in text and "passive_component+missing × 3" in text


def test_outputs_preview_structural_summary_lists_modes(runs, tmp_path):
    run = runs["structural"]
    result = build_preview(
        LocalRun(run.run_dir, "r"), read_workflow(golden_workflow("structural")), tmp_path / "p"
    )
    assert result.summary.material_label == "Defect modes"
    assert result.summary.materials == ["shift", "sideflip", "tombstone"]
    assert not any("component_instance" in i["src"] for i in _parse(result.index).imgs)


def test_outputs_preview_finetune_is_summary_only(runs, tmp_path):
    run = runs["finetune"]
    result = build_preview(
        LocalRun(run.run_dir, "r"), read_workflow(golden_workflow("finetune")), tmp_path / "p"
    )
    assert result.rows == 0
    text = result.index.read_text()
    assert 'id="samples"' not in text and "iter_000000100.pt" in text


def test_outputs_preview_refuses_overwrite(runs, tmp_path, capsys):
    run_dir = str(runs["good_image"].run_dir)
    dest = str(tmp_path / "p")
    args = ["preview", "--local", run_dir, "--workflow", str(golden_workflow("good_image")), "--dest", dest]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args) == 2
    assert "refusing to overwrite the preview" in capsys.readouterr().err
    assert main([*args, "--force"]) == 0


def test_outputs_preview_from_s3_matches_local(s3_root, runs, tmp_path, capsys):
    name = runs["day0"].run_dir.name
    assert (
        main(
            [
                "preview",
                "--root",
                s3_root,
                "--name",
                name,
                "--workflow",
                str(golden_workflow("day0")),
                "--dest",
                str(tmp_path / "s3"),
            ]
        )
        == 0
    )
    index = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert index == (tmp_path / "s3" / "index.html").resolve()
    local = build_preview(
        LocalRun(runs["day0"].run_dir, name), read_workflow(golden_workflow("day0")), tmp_path / "loc"
    )
    assert _parse(index).rows == _parse(local.index).rows
    for f in sorted((tmp_path / "loc").rglob("col*/*")):
        assert f.read_bytes() == (tmp_path / "s3" / f.relative_to(tmp_path / "loc")).read_bytes()


def test_outputs_preview_local_accepts_download_dest(s3_root, runs, tmp_path, capsys):
    name = runs["structural"].run_dir.name
    dl = tmp_path / "outputs" / name
    assert (
        main(
            [
                "download",
                "--root",
                s3_root,
                "--name",
                name,
                "--workflow",
                str(golden_workflow("structural")),
                "--dest",
                str(dl),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "preview",
                "--local",
                str(dl),
                "--workflow",
                str(golden_workflow("structural")),
                "--dest",
                str(dl / "preview"),
            ]
        )
        == 0
    )
    index = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert index == (dl / "preview" / "index.html").resolve()
    assert f"<h1>{name} " in index.read_text()


def test_outputs_preview_missing_stage(runs, tmp_path, capsys):
    pretrained = golden_workflow("day0").parent / "pcb__0603_H100__pretrained.yaml"
    rc = main(
        [
            "preview",
            "--local",
            str(runs["day0_no_anomaly"].run_dir),
            "--workflow",
            str(pretrained),
            "--dest",
            str(tmp_path / "p"),
        ]
    )
    assert rc == 2
    assert (
        "is missing stage(s) anomaly/ that workflow texture_defect_gen_day0 writes" in capsys.readouterr().err
    )
