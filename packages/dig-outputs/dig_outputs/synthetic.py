"""Synthetic run trees that follow storage_layout.md §5, for tests and the demo preview (no GPU, no OSMO)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from . import synthetic_pixels as px

# Materials and defects as shipped for pcb (storage_layout.md §3): passive_component on board
# 0603_H100, IC on 1152819000.
PCB_DEFECTS = {"passive_component": ("missing", "excess_solder"), "IC": ("bridge",)}
STRUCTURAL_MODES = ("shift", "tombstone", "sideflip")


@dataclass
class SyntheticRun:
    """What was written: run-relative paths, and the rows a complete preview should contain."""

    run_dir: Path
    flow: str
    files: list[str] = field(default_factory=list)
    complete_rows: list[str] = field(default_factory=list)
    rows_without_defect_mask: list[str] = field(default_factory=list)
    defect_types: dict[str, int] = field(default_factory=dict)


def _save(arr: np.ndarray, path: Path, quality: int = 92) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    if path.suffix == ".jpg":
        img.save(path, quality=quality)
    else:
        img.save(path)


def _write(run: SyntheticRun, rel: str, data: str | bytes | np.ndarray) -> Path:
    path = run.run_dir / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, np.ndarray):
        _save(data, path)
    elif isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8")
    run.files.append(rel)
    return path


_LABELS_JSON = json.dumps(
    {"0": {"class": "BACKGROUND"}, "1": {"class": "component_body"}, "2": {"class": "terminal"}}
)


def _crops(materials: dict[str, list[str]], per_cell: int) -> list[tuple[str, str, str]]:
    return [
        (m, cell, f"{i:04d}") for m, cells in materials.items() for cell in cells for i in range(per_cell)
    ]


def _anomaly(
    run: SyntheticRun, samples: list[tuple[str, str, np.ndarray, dict]], *, drop_mask_every: int
) -> None:
    """anomaly/inference/ for `(material, file name, clean SL image, geom)` samples (§5.6)."""
    rows = []
    for i, (mat, fname, clean, geom) in enumerate(samples):
        defects = PCB_DEFECTS.get(mat, ("scratch",))
        defect = defects[i % len(defects)]
        rng = px.seeded_rng(run.flow, fname, "defect")
        if mat in PCB_DEFECTS:
            recon, mask = px.paint_defect(clean, mat, defect, geom, rng)
        else:
            recon, mask = clean.copy(), np.zeros(clean.shape[:2], bool)
            h, w = mask.shape
            y = int(rng.integers(h // 4, 3 * h // 4))
            mask[y : y + max(2, h // 20), w // 5 : 4 * w // 5] = True
            recon[mask] = recon[mask] * 0.45
        base = "anomaly/inference"
        _write(run, f"{base}/original_image/{fname}", clean)
        _write(run, f"{base}/reconstructed_image/{fname}", recon)
        ann = recon.copy()
        ys, xs = np.nonzero(mask)
        if ys.size:
            ann[ys.min() : ys.max() + 1, [xs.min(), xs.max()]] = (255, 0, 0)
            ann[[ys.min(), ys.max()], xs.min() : xs.max() + 1] = (255, 0, 0)
        _write(run, f"{base}/annotated_image/{fname}", ann)
        _write(run, f"{base}/cropped_image/{fname}", clean[: clean.shape[0] // 2, : clean.shape[1] // 2])
        if drop_mask_every and (i + 1) % drop_mask_every == 0:
            run.rows_without_defect_mask.append(fname)
        else:
            _write(run, f"{base}/original_mask/{fname}", mask.astype(np.uint8) * 255)
            _write(
                run,
                f"{base}/cropped_mask/{fname}",
                (mask[: mask.shape[0] // 2, : mask.shape[1] // 2] * 255).astype(np.uint8),
            )
        dtype = f"{mat}+{defect}"
        run.defect_types[dtype] = run.defect_types.get(dtype, 0) + 1
        rows.append({"image_name": fname, "defect_type": dtype, "seed": i})
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["image_name", "defect_type", "seed"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    _write(run, "anomaly/inference/SDG_result.csv", buf.getvalue())


def _finetune(run: SyntheticRun, name: str) -> None:
    job = f"results/anomaly_gen/{name}/{name}_training_FP32_lr0.02_bs=2_2b_512x512"
    _write(run, f"finetune/{job}/ag_config.yaml", "anomaly_types: []\n")
    for kind in ("model", "optim", "scheduler", "trainer"):
        _write(run, f"finetune/{job}/checkpoints/{kind}/iter_000000100.pt", b"\0" * 64)
    _write(run, f"finetune/{job}/valid/100/valid_kpi.csv", "kpi,Average\nfid,1.0\n")


# The compiled workflow each synthetic run stands for (the shipped goldens): tests and the demo read
# stages from it exactly as a user's `--workflow FILE` is read.
GOLDEN = Path(__file__).resolve().parents[3] / "golden"
GOLDEN_WORKFLOWS = {
    "day0": "day0/pcb__0603_H100__finetune.yaml",
    "good_image": "good_image/pcb__0603_H100.yaml",
    "structural": "structural/pcb__0603_H100.yaml",
    "day1": "day1/pcb__0603_H100__pretrained.yaml",
    "day1_manual_roi": "day1_manual_roi/pcb__pretrained.yaml",
    "finetune": "finetune/pcb.yaml",
}


def golden_workflow(flow: str) -> Path:
    return GOLDEN / GOLDEN_WORKFLOWS[flow]


@dataclass(frozen=True)
class RunSpec:
    """How a synthetic run is built: its name, crop size (w, h), crops per cell, and the gaps it has.

    `drop_anomaly_every=k` leaves every k-th crop without an AnomalyGen output (a row the preview
    must skip); `drop_mask_every=k` removes every k-th defect mask (the optional column stays blank);
    `skip_stages` names stages ("augment", "anomaly") whose outputs are not written at all.
    """

    name: str = "run"
    size: tuple[int, int] = (64, 48)
    per_cell: int = 3
    with_finetune: bool = False
    drop_anomaly_every: int = 0
    drop_mask_every: int = 0
    skip_stages: tuple[str, ...] = ()


def build_run(run_dir: Path, flow: str, spec: RunSpec | None = None) -> SyntheticRun:
    """Write a run of `flow` under `run_dir` (the `runs/<name>/` directory), shaped by `spec`."""
    writers = {
        "day0": _day0,
        "good_image": _day0,
        "structural": _structural,
        "day1": _day1,
        "day1_manual_roi": _day1_manual_roi,
        "finetune": lambda run, spec: _finetune(run, spec.name),
    }
    run = SyntheticRun(run_dir, flow)
    run_dir.mkdir(parents=True, exist_ok=True)
    if flow not in writers:
        raise ValueError(f"unknown flow {flow!r}")
    writers[flow](run, spec or RunSpec())
    run.files.sort()
    run.complete_rows.sort()
    return run


def _day0(run: SyntheticRun, spec: RunSpec) -> None:
    """day0 and good_image: the usd2roi-components crops, their SL restyle, day0's AnomalyGen outputs."""
    (w, h), flow = spec.size, run.flow
    materials = {"passive_component": ["x0_y0", "x3_y1"], "IC": ["x5_y2"]}
    _write(
        run,
        "usd2roi-components/trigger_0000/rgb_x0_y0.png",
        px.restyle(px.board_image(h * 2, w * 2, px.seeded_rng(1)), px.seeded_rng(2)),
    )
    _write(
        run,
        "usd2roi-components/trigger_0000/semantic_segmentation_x0_y0.png",
        np.zeros((h * 2, w * 2, 3)),
    )
    _write(run, "usd2roi-components/trigger_0000/metadata.json", "{}")
    _write(run, "usd2roi-components/crop/semantic_segmentation_labels.json", _LABELS_JSON)
    for snap in ("pcba_target.yaml", "day0_image.yaml", "day0_crop.yaml"):
        _write(run, f"usd2roi-components/{snap}", "# resolved snapshot\n")
    samples = []
    for i, (mat, cell, stem) in enumerate(_crops(materials, spec.per_cell)):
        rng = px.seeded_rng(flow, mat, cell, stem)
        ov, labels, geom = px.component_image(mat, h, w, rng)
        _write(run, f"usd2roi-components/crop/{mat}/{cell}/normal_img/{stem}.png", ov)
        _write(run, f"usd2roi-components/crop/{mat}/{cell}/cad_mask/{stem}_cad_mask.png", labels)
        sl = np.clip(px.restyle(ov, rng), 0, 255)
        if "augment" not in spec.skip_stages:
            _write(run, f"augment/crop/{mat}/{cell}/{stem}.jpg", sl)
        dropped = flow == "day0" and spec.drop_anomaly_every and (i + 1) % spec.drop_anomaly_every == 0
        if flow == "good_image" or not dropped:
            run.complete_rows.append(f"{mat}/{cell}/{stem}")
        if flow == "day0" and not dropped:
            samples.append((mat, f"{cell}__{stem}.png", sl, geom))
    if flow == "day0":
        if spec.with_finetune:
            _finetune(run, spec.name)
        if "anomaly" not in spec.skip_stages:
            _anomaly(run, samples, drop_mask_every=spec.drop_mask_every)


def _structural(run: SyntheticRun, spec: RunSpec) -> None:
    (w, h), flow = spec.size, run.flow
    _write(run, "structural_defect/trigger_0000/rgb_0000.png", px.board_image(h * 2, w * 2, px.seeded_rng(3)))
    _write(run, "structural_defect/render_config.yaml", "defects: {}\n")
    _write(run, "structural_defect/pcba_target.yaml", "# resolved\n")
    for mode in STRUCTURAL_MODES:
        for i in range(spec.per_cell + 1):
            stem = f"{i:04d}"
            rng = px.seeded_rng(flow, mode, stem)
            ov, labels, _geom = px.component_image("passive_component", h, w, rng)
            if mode != "shift":  # a pose defect: the part is rotated in the crop
                k = 2 if mode == "sideflip" else 1
                ov, labels = np.rot90(ov, k).copy(), np.rot90(labels, k).copy()
                ov = np.asarray(Image.fromarray(ov.clip(0, 255).astype(np.uint8)).resize((w, h)), np.float64)
                labels = np.asarray(Image.fromarray(labels).resize((w, h), Image.Resampling.NEAREST))
            _write(run, f"structural_defect/cropped/{mode}/rgb/{stem}.png", ov)
            _write(run, f"structural_defect/cropped/{mode}/semantic_segmentation/{stem}.png", labels)
            _write(run, f"structural_defect/cropped/{mode}/component_instance/{stem}.png", labels * 0 + 1)
            _write(run, f"structural_defect_edited/{mode}/rgb/{stem}.jpg", px.restyle(ov, rng))
            run.complete_rows.append(f"{mode}/{stem}")


def _day1(run: SyntheticRun, spec: RunSpec) -> None:
    (w, h), flow = spec.size, run.flow
    _write(run, "usd2roi-day1/crop/semantic_segmentation_labels.json", _LABELS_JSON)
    _write(
        run,
        "usd2roi-day1/aligned/params.json",
        json.dumps({"rotation": 0.4, "scale": 1.01, "shift": [3, -2]}),
    )
    _write(run, "usd2roi-day1/usd2roi_day1.yaml", "# resolved cookbook\n")
    samples = []
    for i in range(spec.per_cell * 2):
        stem = f"{i:04d}"
        mat = "passive_component"
        rng = px.seeded_rng(flow, stem)
        ov, labels, geom = px.component_image(mat, h, w, rng)
        real = np.clip(px.restyle(ov, rng), 0, 255)
        _write(run, f"usd2roi-day1/crop/{mat}/normal_img/{stem}.png", real)
        # §5.4: the cad_mask suffix is unconfirmed; write both spellings across samples.
        cad = f"{stem}_cad_mask.png" if i % 2 else f"{stem}.png"
        _write(run, f"usd2roi-day1/crop/{mat}/cad_mask/{cad}", labels)
        dropped = spec.drop_anomaly_every and (i + 1) % spec.drop_anomaly_every == 0
        if not dropped:
            run.complete_rows.append(f"{mat}/{stem}")
            samples.append((mat, f"{stem}.png", real, geom))
    if spec.with_finetune:
        _finetune(run, spec.name)
    if "anomaly" not in spec.skip_stages:
        _anomaly(run, samples, drop_mask_every=spec.drop_mask_every)


def _day1_manual_roi(run: SyntheticRun, spec: RunSpec) -> None:
    (w, h), flow = spec.size, run.flow
    samples = []
    for i in range(spec.per_cell * 2):
        fname = f"exp{i % 3}_{1000 + i * 7:06d}.png"
        rng = px.seeded_rng(flow, fname)
        img = px.restyle(np.full((h, w, 3), 150.0) + rng.normal(0, 6, (h, w, 1)), rng)
        samples.append(("metal_surface", fname, np.clip(img, 0, 255), {}))
        run.complete_rows.append(fname)
    if spec.with_finetune:
        _finetune(run, spec.name)
    _anomaly(run, samples, drop_mask_every=spec.drop_mask_every)
    # Manual ROI: the original mask is column 2 (required), so a dropped mask drops the row.
    for f in run.rows_without_defect_mask:
        run.complete_rows.remove(f)
