"""AnomalyGen inference: stage the dataset (Day 0, Day 1 real-align, Day 1 manual), then run the AG scripts."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from dig_stages import _common, checkpoint, defect_spec, pod

LABELS_JSON = "semantic_segmentation_labels.json"
DAY1_MASK_CANDIDATES = (
    "cad_mask/{stem}_cad_mask.png",
    "cad_mask/{stem}.png",
    "seg/{stem}.png",
    "ov_seg/{stem}.png",
    "semantic_segmentation/{stem}.png",
)

COMMON_FIELDS = {
    "pretrained_src_in": ("path", None),
    "ckpt_dataset": ("path", None),
    "output_dir": ("path", None),
    "anomaly_types": ("json", None),
    "checkpoint_step": _common.Option("int", minimum=1, maximum=999_999_999),
    "fresh_checkpoint": ("bool", False),
    "num_sdg": _common.Option("int", minimum=1, maximum=1_000_000),
    "spatial_dependency": _common.Option("str", "free", choices=("free", "text", "cad")),
    "roi_prompt": ("str", None),
    "exp_name": ("str", None),
    "model_size": _common.Option("str", "2b", choices=("2b", "14b")),
    "num_gpus": _common.Option("int", minimum=1),
    # local-run / test overrides of the container paths (the compiler does not write these)
    "ag_root": ("path", pod.AG_ROOT),
    "tmp_dir": ("path", "/tmp"),
    "bash": ("str", "bash"),
    "python": ("str", "python3"),
}
COMMON_REQUIRED = [
    "pretrained_src_in",
    "ckpt_dataset",
    "output_dir",
    "anomaly_types",
    "checkpoint_step",
    "num_sdg",
    "exp_name",
]


def parse_anomaly_types(value: object) -> list[tuple[str, str]]:
    """The [material, defect] pairs, failing with the expected shape."""
    try:
        return defect_spec.parse_pairs(value)
    except ValueError as exc:
        _common.fail(f"anomaly_types: {exc}")
    return []


def stage_submasks(root: Path, pairs: list[tuple[str, str]], stage: Path, label: str = "") -> int:
    """B7: link each (M, D)'s submask templates from <root>/<M>/mask/<D>/ or <root>/<D>/ into stage."""
    total = 0
    for material, defect in dict.fromkeys(pairs):
        tried = [root / material / "mask" / defect, root / defect]
        src = next((c for c in tried if c.is_dir()), None)
        if src is None:
            _common.fail(
                f"{label}submask dir not found for {material}+{defect} (tried {tried[0]}, {tried[1]})\n"
                "check anomaly_types against the raw dataset's <MATERIAL>/mask/<defect>/ dirs"
            )
        files = _common.list_images(src)
        if not files:
            _common.fail(f"{label}no submask files in {src} (expected *.png / *.jpg)")
        dst = stage / material / "mask" / defect
        dst.mkdir(parents=True, exist_ok=True)
        for f in files:
            _common.symlink(f.resolve(), dst / f.name)
        total += len(files)
        _common.info(f"{label}submasks {material}+{defect}: {len(files)} from {src}")
    return total


def warn_missing_materials(pairs: list[tuple[str, str]], disk: list[str], base: Path) -> None:
    for material in sorted({m for m, _ in pairs}):
        if material not in disk:
            _common.warn(f"anomaly_types material '{material}' missing from {base}/")


def write_spec(stage: Path, opts: dict, pairs: list[tuple[str, str]]) -> Path:
    path = stage / "defect_spec.jsonl"
    try:
        defect_spec.write_defect_spec(path, pairs, opts["spatial_dependency"], opts["roi_prompt"])
    except ValueError as exc:
        _common.fail(str(exc))
    _common.info(path.read_text(encoding="utf-8").rstrip())
    return path


# ---------------------------------------------------------------------------------------------
# staging per variant -> (dataset_dir, defect_spec, clean_dir or None)


def stage_day0(opts: dict, pairs: list[tuple[str, str]]) -> tuple[Path, Path, Path | None]:
    """Day 0: augment cells flattened to <cell>__<stem>, cad masks from the usd2roi crop tree."""
    clean_root = pod.find_crop_root(opts["clean_in"])
    if clean_root is None:
        _common.fail(
            f"clean crop/<MAT>/<cell>/ tree not found under {opts['clean_in']} (the image-edit output)"
        )
    mask_root = pod.find_crop_root(opts["mask_in"])
    if mask_root is None:
        _common.fail(
            f"cad_mask crop/<MAT>/<cell>/ tree not found under {opts['mask_in']} (the usd2roi output)"
        )
    submask_root = pod.resolve_submask_root(opts["submask_base_in"])
    stage = _common.reset_dir(Path(opts["tmp_dir"]) / "inference_stage")
    disk = [d.name for d in _common.subdirs(clean_root)]
    if not disk:
        _common.fail(f"no material dirs under {clean_root}")
    staged = masks = 0
    for material in disk:
        for sub in ("clean_image", "cad_mask", "mask"):
            (stage / material / sub).mkdir(parents=True, exist_ok=True)
        for cell in (c for c in _common.subdirs(clean_root / material) if c.match("x*_y*")):
            for img in _common.list_images(cell):
                # composite names keep clean/mask 1:1 once the cells are flattened
                name = f"{cell.name}__{img.stem}"
                _common.symlink(img.resolve(), stage / material / "clean_image" / (name + img.suffix))
                staged += 1
                cad = mask_root / material / cell.name / "cad_mask" / f"{img.stem}_cad_mask.png"
                if cad.is_file():
                    _common.symlink(cad.resolve(), stage / material / "cad_mask" / (name + ".png"))
                    masks += 1
    if staged == 0:
        _common.fail(f"no clean images staged from {clean_root}/<MAT>/x*_y*/")
    _common.info(f"staged {staged} clean image(s), {masks} cad mask(s) for materials {', '.join(disk)}")
    warn_missing_materials(pairs, disk, clean_root)
    stage_submasks(submask_root, pairs, stage)
    spec = write_spec(stage, opts, pairs)
    if opts["spatial_dependency"] == "cad":
        labels = _common.find_first(
            opts["mask_in"], LABELS_JSON, 5, "file", where=lambda p: "/crop/" in str(p)
        )
        if labels is None:
            _common.fail(f"spatial_dependency=cad but no {LABELS_JSON} under {opts['mask_in']}/crop/")
        shutil.copyfile(labels, stage / LABELS_JSON)
    return stage, spec, None


def stage_day1(opts: dict, pairs: list[tuple[str, str]]) -> tuple[Path, Path, Path | None]:
    """Day 1 real-align: aligned ROI crops (plain stems) + the first existing mask candidate."""
    crop = Path(opts["usd2roi_in"]) / "crop"
    disk = [d.name for d in _common.subdirs(crop)]
    if not disk:
        _common.fail(f"no material dirs under {crop}/ (the usd2roi-day1 output)")
    stage = _common.reset_dir(Path(opts["tmp_dir"]) / "usd2roi_day1_stage")
    staged = masks = 0
    for material in disk:
        for sub in ("clean_image", "cad_mask", "mask"):
            (stage / material / sub).mkdir(parents=True, exist_ok=True)
        for img in _common.list_images(crop / material / "normal_img", (".png", ".jpg")):
            _common.symlink(img.resolve(), stage / material / "clean_image" / img.name)
            staged += 1
            cand = (crop / material / c.format(stem=img.stem) for c in DAY1_MASK_CANDIDATES)
            mask = next((c for c in cand if c.is_file()), None)
            if mask is not None:
                _common.symlink(mask.resolve(), stage / material / "cad_mask" / f"{img.stem}.png")
                masks += 1
    if staged == 0:
        _common.fail(f"no ROI crops staged from {crop}/<MAT>/normal_img/")
    _common.info(f"staged {staged} ROI crop(s), {masks} mask(s) for materials {', '.join(disk)}")
    warn_missing_materials(pairs, disk, crop)
    stage_submasks(pod.resolve_submask_root(opts["submask_base_in"]), pairs, stage, "Real-alignment ")
    spec = write_spec(stage, opts, pairs)
    if opts["spatial_dependency"] == "cad":
        labels = _common.find_first(opts["usd2roi_in"], LABELS_JSON, 5, "file")
        if labels is None:
            _common.warn(
                f"spatial_dependency=cad but no {LABELS_JSON} under {opts['usd2roi_in']}; "
                "prep_testcase.sh may fail. Switch to default_spatial_dependency=free."
            )
        else:
            shutil.copyfile(labels, stage / LABELS_JSON)
    # the stage ships its own spec: prepared-dataset mode, no --clean-dir
    return stage, spec, None


def _first_dir(root: Path, names: Sequence[str]) -> Path:
    for name in names:
        found = _common.find_first(root, name, 6, "dir")
        if found is not None:
            return found
    return root


def stage_manual(opts: dict, pairs: list[tuple[str, str]]) -> tuple[Path, Path, Path | None]:
    """Day 1 manual: Mode A uses a shipped defect_spec.jsonl as-is; Mode B stages submasks + renders one."""
    root = Path(opts["inference_dataset"])
    if not root.is_dir():
        _common.fail(f"inference dataset not at {root}; run setup_<usecase> or upload datasets/<usecase>/raw")
    user_spec = _common.find_first(root, "defect_spec.jsonl", 3, "file")
    if user_spec is not None:
        _common.info(f"Mode A (prepared dataset): {user_spec}; anomaly_types and spatial_dependency unused")
        return user_spec.parent, user_spec, None
    clean_dir = _first_dir(root, ("clean_image", "clean_images"))
    submask_base = _first_dir(root, ("submasks", "mask", "masks"))
    stage = _common.reset_dir(Path(opts["tmp_dir"]) / "inference_stage")
    for material in sorted({m for m, _ in pairs}):
        (stage / material / "mask").mkdir(parents=True, exist_ok=True)
    _common.info(f"Mode B (staged): clean dir {clean_dir}, submask base {submask_base}")
    stage_submasks(submask_base, pairs, stage)
    return stage, write_spec(stage, opts, pairs), clean_dir


# ---------------------------------------------------------------------------------------------


def inference_dir(output_dir: str | Path) -> Path:
    """<output>/inference (nested so convert_to_daft_format's sibling stays inside the mount)."""
    out = Path(output_dir)
    return out if out.name == "inference" else out / "inference"


def _prepare_checkpoint(opts: dict, scripts: Path) -> tuple[Path, int]:
    """Pretrained links, the checkpoint wrapper and its chosen step, validated: (wrapper, step)."""
    ag_root = Path(opts["ag_root"])
    pod.link_pretrained(pod.find_pretrained(opts["pretrained_src_in"]), ag_root)
    wrapper = checkpoint.build_wrapper(opts["ckpt_dataset"], Path(opts["tmp_dir"]) / "ag_ckpt_wrapper")
    step = checkpoint.pick_best_step(opts["ckpt_dataset"], opts["checkpoint_step"])
    if opts["fresh_checkpoint"] and not checkpoint.trainer_weights(opts["ckpt_dataset"], 64):
        _common.warn("fresh_checkpoint is set but the finetune output holds no checkpoints/model/iter_*.pt")
    checkpoint.require_step(wrapper, step)
    _common.info(f"checkpoint step: {step}")
    _common.require_tool(
        [
            *_common.split_cmd(opts["python"]),
            str(scripts / "validate_checkpoint.py"),
            str(wrapper),
            "--step",
            str(step),
        ],
        what="validate_checkpoint.py",
        cwd=ag_root,
    )
    return wrapper, step


def _prep_testcase(opts: dict, scripts: Path, staged: tuple[Path, Path, Path | None], wrapper: Path) -> Path:
    """prep_testcase.sh over the staged dataset, then validate_jsonl.py: the non-empty inference.jsonl."""
    dataset, spec, clean_dir = staged
    ag_root = Path(opts["ag_root"])
    tmp = Path(opts["tmp_dir"])
    jsonl = tmp / "inference.jsonl"
    amp = tmp / "amp_output"
    cmd = [
        *_common.split_cmd(opts["bash"]),
        str(scripts / "prep_testcase.sh"),
        "--name",
        f"{opts['exp_name']}_infer",
        "--num-sdg",
        str(opts["num_sdg"]),
        "--dataset-dir",
        str(dataset),
    ]
    if clean_dir is not None:
        cmd += ["--clean-dir", str(clean_dir)]
    # never --seeds: prep_testcase derives n_seeds from num_sdg / total submasks
    cmd += ["--defect-spec", str(spec), "--amp-output-dir", str(amp), "--output-jsonl", str(jsonl)]
    _common.require_tool(cmd, what="prep_testcase.sh", cwd=ag_root)
    rows = (
        sum(1 for line in jsonl.read_text(encoding="utf-8").splitlines() if line.strip())
        if jsonl.is_file()
        else 0
    )
    if rows == 0:
        _common.fail(f"prep_testcase.sh produced an empty {jsonl}; check the staged dataset {dataset}")
    _common.info(f"inference.jsonl: {rows} row(s)")
    _common.require_tool(
        [*_common.split_cmd(opts["python"]), str(scripts / "validate_jsonl.py"), str(wrapper), str(jsonl)],
        what="validate_jsonl.py (anomaly_types vs the checkpoint's taxonomy)",
        cwd=ag_root,
    )
    return jsonl


def _run_sdg(opts: dict, scripts: Path, checkpoint_at: tuple[Path, int], jsonl: Path, out: Path) -> None:
    """run_sdg.sh at the chosen step, verify_output.sh, and at least one reconstructed image."""
    wrapper, step = checkpoint_at
    ag_root = Path(opts["ag_root"])
    sh = _common.split_cmd(opts["bash"])
    results = out / "results"
    results.mkdir(parents=True, exist_ok=True)
    cmd = [
        *sh,
        str(scripts / "run_sdg.sh"),
        "--checkpoint_dir",
        str(wrapper),
        "--step",
        str(step),
        "--input_jsonl",
        str(jsonl),
        "--output_dir",
        str(out),
        "--model_size",
        str(opts["model_size"]),
    ]
    if opts["num_gpus"] is not None:
        cmd += ["--num_gpus", str(opts["num_gpus"])]
    cmd += ["--seed", "0"]
    _common.require_tool(cmd, what="run_sdg.sh", env={"IMAGINAIRE_OUTPUT_ROOT": str(results)}, cwd=ag_root)
    _common.require_tool(
        [*sh, str(scripts / "verify_output.sh"), str(jsonl), str(out)], what="verify_output.sh", cwd=ag_root
    )
    n = len(_common.list_images(out / "reconstructed_image"))
    if n == 0:
        _common.fail(f"run_sdg.sh wrote no images to {out / 'reconstructed_image'}")
    _common.info(f"reconstructed images: {n} in {out / 'reconstructed_image'}")


def run_inference(opts: dict, stager) -> int:
    """Shared chain: stage, pretrained links, checkpoint wrapper + step, prep_testcase, run_sdg, verify."""
    pairs = parse_anomaly_types(opts["anomaly_types"])
    out = inference_dir(opts["output_dir"])
    out.mkdir(parents=True, exist_ok=True)
    scripts = Path(opts["ag_root"]) / "scripts" / "utilities"
    prep = scripts / "prep_testcase.sh"
    if not prep.is_file():
        _common.fail(f"{prep}: prep_testcase.sh not in image — check the anomalygen_image digest")
    staged = stager(opts, pairs)
    wrapper, step = _prepare_checkpoint(opts, scripts)
    jsonl = _prep_testcase(opts, scripts, staged, wrapper)
    _run_sdg(opts, scripts, (wrapper, step), jsonl, out)
    return 0


_EXTRA = {
    "infer-day0": {"clean_in": ("path", None), "mask_in": ("path", None), "submask_base_in": ("path", None)},
    "infer-day1": {"usd2roi_in": ("path", None), "submask_base_in": ("path", None)},
    "infer-manual": {"inference_dataset": ("path", None)},
}
# The one declaration of each step's options: the loader below enforces it, the compiler checks
# every compiled spec.json against it (compiler/contract.py).
OPTIONS = {
    step: _common.options({**extra, **COMMON_FIELDS}, [*extra, *COMMON_REQUIRED])
    for step, extra in _EXTRA.items()
}


def _main(argv, step: str, stager) -> int:
    return _common.run_main(
        lambda opts: run_inference(opts, stager),
        lambda: _common.load_options(argv or [], step, OPTIONS[step]),
    )


def main_day0(argv: Sequence[str] | None = None) -> int:
    """`infer-day0` (infer-all-defects, Day 0 texture)."""
    return _main(argv, "infer-day0", stage_day0)


def main_day1(argv: Sequence[str] | None = None) -> int:
    """`infer-day1` (infer-all-defects, Day 1 real-photo alignment)."""
    return _main(argv, "infer-day1", stage_day1)


def main_manual(argv: Sequence[str] | None = None) -> int:
    """`infer-manual` (infer-all-defects, Day 1 manual ROI)."""
    return _main(argv, "infer-manual", stage_manual)
