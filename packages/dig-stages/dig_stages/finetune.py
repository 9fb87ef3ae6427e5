"""AnomalyGen finetune: training-config render and iteration hygiene, then the in-pod torchrun driver."""

from __future__ import annotations

import copy
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dig_stages import _common, pod

VALIDATION_JSONL = "/tmp/validation/validation.jsonl"
NVDINOV2_CKPT = "checkpoints/NVDINOV2/nv_dinov2_classification_model.ckpt"
EXPERIMENT = "predict2_anomaly_gen_ddp_2b"  # fixed: training has no model-size knob
MASTER_PORT = "12341"


def job_name(exp_name: str) -> str:
    """The trainer's job name (lower-case `2b`, as the shipped recipe)."""
    return f"{exp_name}_training_FP32_lr0.02_bs=2_2b_512x512"


def _set_path(doc: dict, dotted: str, value: Any) -> None:
    node = doc
    keys = dotted.split(".")
    for key in keys[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[keys[-1]] = value


def render_training_config(cookbook: dict, *, exp_name: str, dataset_dir: str, validation_jsonl: str) -> dict:
    """The cookbook with the five run fields patched and trainer.early_stop removed (input untouched)."""
    if not isinstance(cookbook, dict):
        raise TypeError(f"cookbook must be a mapping, got {type(cookbook).__name__}")
    out = copy.deepcopy(cookbook)
    _set_path(out, "job.group", exp_name)
    _set_path(out, "job.name", job_name(exp_name))
    _set_path(out, "dataloader_train.dataset.dataset_dir", dataset_dir)
    _set_path(out, "dataloader_val.dataset.input_data_path", validation_jsonl)
    _set_path(out, "model.config.ag_config.mask_encoder.encoder_config.init_cfg.checkpoint", NVDINOV2_CKPT)
    trainer = out.get("trainer")
    if isinstance(trainer, dict):
        # the image's TrainerConfig rejects this key
        trainer.pop("early_stop", None)
    return out


def _as_int(trainer: dict, key: str, problems: list[tuple[str, str]]) -> int:
    value = trainer.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        problems.append(("error", f"trainer.{key} must be an integer, got {value!r}"))
        return 0
    try:
        return int(value)
    except ValueError:
        problems.append(("error", f"trainer.{key} must be an integer, got {value!r}"))
        return 0


def iteration_hygiene(trainer: dict) -> list[tuple[str, str]]:
    """Checks of save/validation/logging iters against max_iter: [(severity, message)], severity error|warning."""
    problems: list[tuple[str, str]] = []
    trainer = trainer or {}
    max_iter = _as_int(trainer, "max_iter", problems)
    save_iter = _as_int(trainer, "save_iter", problems)
    val_iter = _as_int(trainer, "validation_iter", problems)
    log_iter = _as_int(trainer, "logging_iter", problems)
    if max_iter <= 0:
        return problems
    if save_iter > 0 and save_iter > max_iter:
        problems.append(
            (
                "error",
                f"trainer.save_iter ({save_iter}) > trainer.max_iter ({max_iter}): no checkpoint will be saved. "
                "Set save_iter <= max_iter in the usecase's ag_config.yaml cookbook (save_iter == max_iter is fine).",
            )
        )
    if val_iter > 0 and val_iter > max_iter:
        problems.append(
            (
                "warning",
                f"trainer.validation_iter ({val_iter}) > trainer.max_iter ({max_iter}): no validation KPIs; "
                "best-step selection will fall back to the latest saved iteration.",
            )
        )
    if log_iter > 0 and log_iter > max_iter:
        problems.append(
            (
                "warning",
                f"trainer.logging_iter ({log_iter}) > trainer.max_iter ({max_iter}): no progress logs.",
            )
        )
    return problems


def count_training_masks(dataset_dir: str | Path) -> int:
    """Mask files (png/jpg/jpeg) at `*/mask/*/*` anywhere under the raw dataset = NUM_SDG."""
    root = Path(dataset_dir)
    n = 0
    for dirpath, _dirs, names in os.walk(root):
        rel_parts = Path(dirpath).relative_to(root).parts
        # the file's dir must be below a `mask` dir by at least one level
        if "mask" not in rel_parts[:-1]:
            continue
        n += sum(1 for name in names if Path(name).suffix.lower() in _common.IMAGE_EXTS)
    return n


FIELDS = {
    "pretrained_src": ("path", None),
    "dataset_dir": ("path", None),
    "config": ("path", "/tmp/ag_config_template.yaml"),
    "output_dir": ("path", None),
    "results_dir": ("path", None),
    "exp_name": ("str", None),
    "num_gpus": _common.Option("int", 1, minimum=1),
    "usecase": ("str", ""),
    "max_iter": _common.Option("int", 0, minimum=0),
    "save_iter": _common.Option("int", 0, minimum=0),
    "validation_iter": _common.Option("int", 0, minimum=0),
    "logging_iter": _common.Option("int", 0, minimum=0),
    # local-run / test overrides (the compiler does not write these)
    "ag_root": ("path", pod.AG_ROOT),
    "tmp_dir": ("path", "/tmp"),
    "torchrun": ("str", "torchrun"),
    "python": ("str", "python3"),
    "bash": ("str", "bash"),
    **pod.PREFLIGHT_FIELDS,
}


def _check_inputs(opts: dict, setup_hint: str) -> tuple[Path, Path, Path]:
    """Config, pretrained tree (linked into the AnomalyGen root) and raw dataset present: (config, dataset, spec)."""
    config = Path(opts["config"])
    if not config.is_file():
        _common.fail(f"{config} not mounted — cookbook upload failed.")
    pretrained = Path(opts["pretrained_src"])
    if not pretrained.is_dir():
        _common.fail(
            f"pretrained tree not at {pretrained}; run setup_pretrained\n"
            + _common.listing(pretrained.parent, 20)
        )
    pod.link_pretrained(pretrained, Path(opts["ag_root"]))
    dataset = Path(opts["dataset_dir"])
    if not dataset.is_dir():
        _common.fail(f"training dataset not at {dataset}; run {setup_hint} or upload datasets/<usecase>/raw")
    spec = dataset / "defect_spec.jsonl"
    if not spec.is_file():
        _common.fail(f"{spec} missing in raw dataset (it must sit at the dataset root); re-run {setup_hint}")
    return config, dataset, spec


def _check_hygiene(opts: dict, cookbook_hint: str) -> None:
    """Iteration hygiene of the trainer options: errors fail the step, warnings are logged."""
    trainer = {key: opts[key] for key in ("max_iter", "save_iter", "validation_iter", "logging_iter")}
    for severity, message in iteration_hygiene(trainer):
        if severity == "error":
            _common.fail(message.replace("the usecase's ag_config.yaml cookbook", cookbook_hint))
        _common.warn(message)


def _validate_dataset(opts: dict, scripts: Path, dataset: Path) -> int:
    """Phase 1 Step 1 (validate_dataset.py), then NUM_SDG = the training mask count (must be > 0)."""
    _common.info("Phase 1 Step 1: validate_dataset.py")
    _common.require_tool(
        [opts["python"], str(scripts / "validate_dataset.py"), str(dataset)],
        what="validate_dataset.py",
        cwd=Path(opts["ag_root"]),
    )
    num_sdg = count_training_masks(dataset)
    if num_sdg == 0:
        _common.fail(f"no training masks under {dataset}/*/mask/ (expected <MATERIAL>/mask/<defect>/*.png)")
    _common.info(f"NUM_SDG={num_sdg} (training masks)")
    return num_sdg


def _prep_validation(opts: dict, prep: Path, dataset: Path, spec: Path, num_sdg: int) -> None:
    """prep_testcase.sh writes validation.jsonl + amp files under <tmp_dir>/validation (non-empty required)."""
    validation = _common.reset_dir(Path(opts["tmp_dir"]) / "validation")
    (validation / "amp").mkdir()
    jsonl = validation / "validation.jsonl"
    _common.require_tool(
        [
            opts["bash"],
            str(prep),
            "--name",
            f"validation_{opts['exp_name']}",
            "--num-sdg",
            str(num_sdg),
            "--dataset-dir",
            str(dataset),
            "--defect-spec",
            str(spec),
            "--amp-output-dir",
            str(validation / "amp"),
            "--output-jsonl",
            str(jsonl),
        ],
        what="prep_testcase.sh (validation)",
        cwd=Path(opts["ag_root"]),
    )
    if not jsonl.is_file() or jsonl.stat().st_size == 0:
        _common.fail("prep_testcase.sh produced an empty validation.jsonl")
    rows = sum(1 for line in jsonl.read_text(encoding="utf-8").splitlines() if line.strip())
    amp_files, _ = _common.tree_stats(validation / "amp")
    _common.info(f"validation.jsonl: {rows} rows; amp files: {amp_files}")


def _train(opts: dict, config: Path) -> None:
    """Install the rendered config under ag_configs/ and run torchrun ag_train into the results dir."""
    ag_root = Path(opts["ag_root"])
    configs = ag_root / "ag_configs"
    configs.mkdir(parents=True, exist_ok=True)
    target = configs / f"{opts['exp_name']}.yaml"
    shutil.copyfile(config, target)
    results = Path(opts["results_dir"] or Path(opts["output_dir"] or ".") / "results")
    results.mkdir(parents=True, exist_ok=True)
    cmd = _common.split_cmd(opts["torchrun"]) + [
        f"--nproc_per_node={opts['num_gpus']}",
        f"--master_port={MASTER_PORT}",
        "-m",
        "scripts.anomaly_gen.ag_train",
        "--config=cosmos_predict2/configs/base/ag_config.py",
        f"--ag_config=ag_configs/{opts['exp_name']}.yaml",
        "--",
        f"experiment={EXPERIMENT}",
    ]
    code = _common.run_tool(cmd, env={"IMAGINAIRE_OUTPUT_ROOT": str(results)}, cwd=ag_root)
    if code != 0:
        _common.fail(f"torchrun ag_train exited {code}", code)
    saved = sorted(results.glob("**/checkpoints/model/iter_*.pt"))
    _common.info(f"training done: {len(saved)} model checkpoint(s) under {results}")


def _run(opts: dict) -> int:
    pod.train_preflight(opts)
    if opts["output_dir"]:
        Path(opts["output_dir"]).mkdir(parents=True, exist_ok=True)
    usecase = opts["usecase"] or "<usecase>"
    config, dataset, spec = _check_inputs(opts, f"setup/setup_{usecase}.yaml")
    scripts = Path(opts["ag_root"]) / "scripts" / "utilities"
    prep = scripts / "prep_testcase.sh"
    if not prep.is_file():
        _common.fail(f"{prep} not in image — check the anomalygen_image digest")
    # hygiene first: fail in seconds, not after dataset prep
    _check_hygiene(opts, f"assets/cookbooks/{usecase}/ag_config.yaml")
    num_sdg = _validate_dataset(opts, scripts, dataset)
    _prep_validation(opts, prep, dataset, spec, num_sdg)
    _train(opts, config)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`finetune`: preflight, dataset checks, validation prep, then torchrun ag_train."""
    return _common.run_main(_run, lambda: _common.load_options(argv or [], "finetune", OPTIONS["finetune"]))


# The one declaration of the step's options: the loader enforces it, the compiler checks every
# compiled spec.json against it (compiler/contract.py).
OPTIONS = {"finetune": _common.options(FIELDS, ["pretrained_src", "dataset_dir", "exp_name"])}
