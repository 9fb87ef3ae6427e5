"""Synthetic run trees that follow storage_layout.md §5, for tests and the demo preview (no GPU, no OSMO)."""

from __future__ import annotations

import csv
import io
import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

BOARD_GREEN = (28, 92, 48)
SILVER = (205, 208, 212)

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


def _rng(*key: object) -> np.random.Generator:
    # Seed from the sample identity so every run of the generator writes the same pixels.
    return np.random.default_rng(zlib.crc32("/".join(map(str, key)).encode()))


def _board(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    img = np.empty((h, w, 3), np.float64)
    img[:] = BOARD_GREEN
    img += rng.normal(0, 4, (h, w, 1))
    # Copper traces under the solder mask: a few lighter horizontal/vertical stripes.
    for _ in range(3):
        if rng.random() < 0.5:
            y = int(rng.integers(0, h))
            img[max(0, y - 1) : y + 2, :] += (10, 30, 12)
        else:
            x = int(rng.integers(0, w))
            img[:, max(0, x - 1) : x + 2] += (10, 30, 12)
    return img


def _component(
    material: str, h: int, w: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, dict]:
    """An OV-style render (flat colours) and its CAD label map; `geom` says where parts are."""
    img = _board(h, w, rng)
    labels = np.zeros((h, w), np.uint8)
    cy, cx = (
        h // 2 + int(rng.integers(-h // 16, h // 16 + 1)),
        w // 2 + int(rng.integers(-w // 16, w // 16 + 1)),
    )
    if material == "IC":
        bh, bw = h // 3, w // 3
        y0, y1, x0, x1 = cy - bh // 2, cy + bh // 2, cx - bw // 2, cx + bw // 2
        legs = []
        n = 3
        for i in range(n):
            lx0 = x0 + (i * 2 + 1) * bw // (2 * n + 1)
            lx1 = lx0 + max(1, bw // (2 * n + 1))
            for ly0, ly1 in ((y0 - h // 8, y0), (y1, y1 + h // 8)):
                img[ly0:ly1, lx0:lx1] = SILVER
                labels[ly0:ly1, lx0:lx1] = 2
                legs.append((ly0, ly1, lx0, lx1))
        img[y0:y1, x0:x1] = (34, 34, 38)
        labels[y0:y1, x0:x1] = 1
        img[
            y0 + bh // 5 : y0 + bh // 5 + max(1, bh // 10), x0 + bw // 6 : x0 + bw // 6 + max(1, bw // 10)
        ] = (90, 90, 90)
        geom = {"body": (y0, y1, x0, x1), "legs": legs}
    else:
        bh, bw = h // 4, w // 2
        y0, y1, x0, x1 = cy - bh // 2, cy + bh // 2, cx - bw // 2, cx + bw // 2
        cap = max(2, bw // 5)
        # Solder pads peek out around the part.
        img[y0 - 2 : y1 + 2, x0 - 3 : x0 + cap] = (176, 160, 120)
        img[y0 - 2 : y1 + 2, x1 - cap : x1 + 3] = (176, 160, 120)
        img[y0:y1, x0:x1] = (128, 96, 64)
        img[y0:y1, x0 : x0 + cap] = SILVER
        img[y0:y1, x1 - cap : x1] = SILVER
        labels[y0:y1, x0:x1] = 1
        labels[y0:y1, x0 : x0 + cap] = 2
        labels[y0:y1, x1 - cap : x1] = 2
        geom = {"body": (y0, y1, x0, x1), "cap": cap}
    return img, labels, geom


def _restyle(ov: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A stand-in for the OVSL2SL look: warm ring light, vignette, soft focus, sensor noise."""
    h, w, _ = ov.shape
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.hypot((yy - h / 2) / h, (xx - w / 2) / w)
    light = 1.25 - 0.9 * r[..., None] ** 2
    out = ov * light * (1.12, 1.04, 0.8) + (10, 6, 0)
    # Specular highlight on bright metal.
    metal = ov.mean(axis=2, keepdims=True) > 170
    out = np.where(metal, out * 1.1 + 18, out)
    blurred = out.copy()
    blurred[1:-1, 1:-1] = (
        out[:-2, 1:-1] + out[2:, 1:-1] + out[1:-1, :-2] + out[1:-1, 2:] + 4 * out[1:-1, 1:-1]
    ) / 8
    return blurred + rng.normal(0, 3, blurred.shape)


def _paint_defect(
    img: np.ndarray, material: str, defect: str, geom: dict, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """AnomalyGen stand-in: the image with a defect painted in, and the defect's binary mask."""
    h, w, _ = img.shape
    out = img.copy()
    mask = np.zeros((h, w), bool)
    y0, y1, x0, x1 = geom["body"]
    if defect == "missing":
        mask[y0 - 3 : y1 + 3, x0 - 4 : x1 + 4] = True
        board = _restyle(_board(h, w, rng), rng)
        out[mask] = board[mask]
        cap = geom["cap"]
        for a, b in ((x0 - 3, x0 + cap), (x1 - cap, x1 + 3)):  # bare pads stay behind
            out[y0:y1, a:b] = (196, 178, 132)
    elif defect == "excess_solder":
        cy, cx = (y0 + y1) // 2, x1
        ry, rx = (y1 - y0) * 0.9, (x1 - x0) * 0.28
        yy, xx = np.mgrid[0:h, 0:w]
        mask = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        shade = 1.0 - 0.35 * (((yy - cy + ry / 3) / ry) ** 2 + ((xx - cx + rx / 3) / rx) ** 2)
        out[mask] = (np.array(SILVER) * np.clip(shade, 0.5, 1.1)[..., None])[mask]
    else:  # bridge: solder joins two neighbouring legs
        legs = geom["legs"]
        a, b = legs[0], legs[2]
        ly0, ly1 = a[0], a[1]
        mask[ly0 + (ly1 - ly0) // 3 : ly1, a[2] : b[3]] = True
        out[mask] = np.array(SILVER) * 0.95
    return out, mask


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
        rng = _rng(run.flow, fname, "defect")
        if mat in PCB_DEFECTS:
            recon, mask = _paint_defect(clean, mat, defect, geom, rng)
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


def build_run(
    run_dir: Path,
    flow: str,
    *,
    name: str = "run",
    size: tuple[int, int] = (64, 48),
    per_cell: int = 3,
    with_finetune: bool = False,
    drop_anomaly_every: int = 0,
    drop_mask_every: int = 0,
    skip_stages: tuple[str, ...] = (),
) -> SyntheticRun:
    """Write a run of `flow` under `run_dir` (the `runs/<name>/` directory); `size` is (w, h) of crops.

    `drop_anomaly_every=k` leaves every k-th crop without an AnomalyGen output (a row the preview
    must skip); `drop_mask_every=k` removes every k-th defect mask (the optional column stays blank).
    """
    w, h = size
    run = SyntheticRun(run_dir, flow)
    run_dir.mkdir(parents=True, exist_ok=True)
    if flow in ("day0", "good_image"):
        materials = {"passive_component": ["x0_y0", "x3_y1"], "IC": ["x5_y2"]}
        _write(
            run,
            "usd2roi-components/trigger_0000/rgb_x0_y0.png",
            _restyle(_board(h * 2, w * 2, _rng(1)), _rng(2)),
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
        for i, (mat, cell, stem) in enumerate(_crops(materials, per_cell)):
            rng = _rng(flow, mat, cell, stem)
            ov, labels, geom = _component(mat, h, w, rng)
            _write(run, f"usd2roi-components/crop/{mat}/{cell}/normal_img/{stem}.png", ov)
            _write(run, f"usd2roi-components/crop/{mat}/{cell}/cad_mask/{stem}_cad_mask.png", labels)
            sl = np.clip(_restyle(ov, rng), 0, 255)
            if "augment" not in skip_stages:
                _write(run, f"augment/crop/{mat}/{cell}/{stem}.jpg", sl)
            dropped = flow == "day0" and drop_anomaly_every and (i + 1) % drop_anomaly_every == 0
            if flow == "good_image" or not dropped:
                run.complete_rows.append(f"{mat}/{cell}/{stem}")
            if flow == "day0" and not dropped:
                samples.append((mat, f"{cell}__{stem}.png", sl, geom))
        if flow == "day0":
            if with_finetune:
                _finetune(run, name)
            if "anomaly" not in skip_stages:
                _anomaly(run, samples, drop_mask_every=drop_mask_every)
    elif flow == "structural":
        _write(run, "structural_defect/trigger_0000/rgb_0000.png", _board(h * 2, w * 2, _rng(3)))
        _write(run, "structural_defect/render_config.yaml", "defects: {}\n")
        _write(run, "structural_defect/pcba_target.yaml", "# resolved\n")
        for mode in STRUCTURAL_MODES:
            for i in range(per_cell + 1):
                stem = f"{i:04d}"
                rng = _rng(flow, mode, stem)
                ov, labels, _geom = _component("passive_component", h, w, rng)
                if mode != "shift":  # a pose defect: the part is rotated in the crop
                    k = 2 if mode == "sideflip" else 1
                    ov, labels = np.rot90(ov, k).copy(), np.rot90(labels, k).copy()
                    ov = np.asarray(
                        Image.fromarray(ov.clip(0, 255).astype(np.uint8)).resize((w, h)), np.float64
                    )
                    labels = np.asarray(Image.fromarray(labels).resize((w, h), Image.Resampling.NEAREST))
                _write(run, f"structural_defect/cropped/{mode}/rgb/{stem}.png", ov)
                _write(run, f"structural_defect/cropped/{mode}/semantic_segmentation/{stem}.png", labels)
                _write(run, f"structural_defect/cropped/{mode}/component_instance/{stem}.png", labels * 0 + 1)
                _write(run, f"structural_defect_edited/{mode}/rgb/{stem}.jpg", _restyle(ov, rng))
                run.complete_rows.append(f"{mode}/{stem}")
    elif flow == "day1":
        _write(run, "usd2roi-day1/crop/semantic_segmentation_labels.json", _LABELS_JSON)
        _write(
            run,
            "usd2roi-day1/aligned/params.json",
            json.dumps({"rotation": 0.4, "scale": 1.01, "shift": [3, -2]}),
        )
        _write(run, "usd2roi-day1/usd2roi_day1.yaml", "# resolved cookbook\n")
        samples = []
        for i in range(per_cell * 2):
            stem = f"{i:04d}"
            mat = "passive_component"
            rng = _rng(flow, stem)
            ov, labels, geom = _component(mat, h, w, rng)
            real = np.clip(_restyle(ov, rng), 0, 255)
            _write(run, f"usd2roi-day1/crop/{mat}/normal_img/{stem}.png", real)
            # §5.4: the cad_mask suffix is unconfirmed; write both spellings across samples.
            cad = f"{stem}_cad_mask.png" if i % 2 else f"{stem}.png"
            _write(run, f"usd2roi-day1/crop/{mat}/cad_mask/{cad}", labels)
            dropped = drop_anomaly_every and (i + 1) % drop_anomaly_every == 0
            if not dropped:
                run.complete_rows.append(f"{mat}/{stem}")
                samples.append((mat, f"{stem}.png", real, geom))
        if with_finetune:
            _finetune(run, name)
        if "anomaly" not in skip_stages:
            _anomaly(run, samples, drop_mask_every=drop_mask_every)
    elif flow == "day1_manual_roi":
        samples = []
        for i in range(per_cell * 2):
            fname = f"exp{i % 3}_{1000 + i * 7:06d}.png"
            rng = _rng(flow, fname)
            img = _restyle(np.full((h, w, 3), 150.0) + rng.normal(0, 6, (h, w, 1)), rng)
            samples.append(("metal_surface", fname, np.clip(img, 0, 255), {}))
            run.complete_rows.append(fname)
        if with_finetune:
            _finetune(run, name)
        _anomaly(run, samples, drop_mask_every=drop_mask_every)
        # Manual ROI: the original mask is column 2 (required), so a dropped mask drops the row.
        for f in run.rows_without_defect_mask:
            run.complete_rows.remove(f)
    elif flow == "finetune":
        _finetune(run, name)
    else:
        raise ValueError(f"unknown flow {flow!r}")
    run.files.sort()
    run.complete_rows.sort()
    return run
