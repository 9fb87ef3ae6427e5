"""AnomalyGen checkpoint normalisation (wrapper dir) and best-step selection from validation KPIs."""

from __future__ import annotations

import csv
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from dig_stages import _common

WEIGHT_SUFFIXES = (".pt", ".ckpt")


def iter_name(step: int) -> str:
    """Checkpoint file name for a step: iter_<step zero-padded to 9 digits>.pt."""
    return f"iter_{int(step):09d}.pt"


def _step_of(path: Path) -> int | None:
    stem = (
        path.name[len("iter_") : -len(".pt")]
        if path.name.startswith("iter_") and path.name.endswith(".pt")
        else ""
    )
    return int(stem) if stem.isdigit() else None


def trainer_weights(root: str | Path, maxdepth: int = 10) -> list[Path]:
    """`*/checkpoints/model/iter_*.pt` files (never optim/scheduler/trainer: same names, not weights)."""
    return [
        p
        for p, _d, is_dir in _common.walk(root, maxdepth)
        if not is_dir
        and p.parent.name == "model"
        and p.parent.parent.name == "checkpoints"
        and _step_of(p) is not None
    ]


def build_wrapper(ckpt_dataset: str | Path, wrapper: str | Path) -> Path:
    """Normalise a trainer or shipped (flat) checkpoint into wrapper/{ag_config.yaml, checkpoints/model/}."""
    ckpt_dataset = Path(ckpt_dataset)
    ag_config = _common.find_first(ckpt_dataset, "ag_config.yaml", maxdepth=8, kind="file")
    if ag_config is None:
        _common.fail(
            f"ag_config.yaml not found in checkpoint {ckpt_dataset} (searched depth 8)\n"
            "a checkpoint is ag_config.yaml + iter_<9-digit step>.pt; run setup_<usecase> or upload them"
        )
    config_dir = ag_config.parent
    wrapper = _common.reset_dir(wrapper)
    model_dir = wrapper / "checkpoints" / "model"
    model_dir.mkdir(parents=True)
    weights = trainer_weights(ckpt_dataset)
    layout = "trainer"
    if not weights:
        layout = "flat"
        weights = [p for p in sorted(config_dir.glob("iter_*.pt")) if _step_of(p) is not None]
    if not weights:
        _common.fail(
            f"no model iter_*.pt files found under {ckpt_dataset} "
            "(looked for */checkpoints/model/iter_*.pt, then iter_*.pt next to ag_config.yaml)"
        )
    for w in weights:
        dst = model_dir / w.name
        if dst.is_symlink():
            _common.warn(f"two checkpoints named {w.name}; keeping {dst.resolve()}, ignoring {w}")
            continue
        dst.symlink_to(w.resolve())
    shutil.copyfile(ag_config, wrapper / "ag_config.yaml")
    for side in sorted(config_dir.iterdir()):
        if side.name.startswith("iter_") or side.suffix in WEIGHT_SUFFIXES or side.name == "ag_config.yaml":
            continue
        dst = wrapper / side.name
        if not dst.exists() and not dst.is_symlink():
            dst.symlink_to(side.resolve())
    _common.info(
        f"checkpoint wrapper {wrapper}: {len(weights)} weight file(s), {layout} layout, config {ag_config}"
    )
    return wrapper


def available_steps(wrapper: str | Path) -> list[int]:
    """Steps with a weight file in wrapper/checkpoints/model, ascending."""
    steps = (_step_of(p) for p in (Path(wrapper) / "checkpoints" / "model").glob("iter_*.pt"))
    return sorted(s for s in steps if s is not None)


def require_step(wrapper: str | Path, step: int) -> None:
    """Fail early (before validate_checkpoint.py) when the chosen step has no weight file."""
    if step not in available_steps(wrapper):
        have = ", ".join(str(s) for s in available_steps(wrapper)) or "none"
        _common.fail(
            f"checkpoint_step={step}: {Path(wrapper) / 'checkpoints' / 'model' / iter_name(step)} is missing\n"
            f"  steps in this checkpoint: {have}\n  set checkpoint_step to one of them"
        )


def _nn_score(csv_path: Path) -> float | None:
    try:
        with open(csv_path, newline="", encoding="utf-8") as fh:
            for row in csv.reader(fh):
                if row and row[0].strip() == "nn_score" and len(row) > 1:
                    return float(row[-1])
    except (OSError, ValueError):
        return None
    return None


def pick_best_step(ckpt_root: str | Path, fallback_step: int, log=None) -> int:
    """Peak average nn_score over validated steps with a saved model; else latest saved iter; else fallback."""
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    ckpt_root = Path(ckpt_root)
    valid_dir = _common.find_first(ckpt_root, "valid", maxdepth=8, kind="dir")
    if valid_dir is not None and list(valid_dir.glob("*/valid_kpi.csv")):
        model_dir = next(
            (
                p
                for p, _d, is_dir in _common.walk(ckpt_root, 64)
                if is_dir and p.name == "model" and p.parent.name == "checkpoints"
            ),
            None,
        )
        scored: list[tuple[float, int]] = []
        for kpi in sorted(valid_dir.glob("*/valid_kpi.csv")):
            name = kpi.parent.name
            if not name.isdigit() or int(name) == 0:
                continue  # step 0 is the pre-training baseline: no checkpoint
            step = int(name)
            if model_dir is not None and not (model_dir / iter_name(step)).is_file():
                log(f"pick_best_step: step {step} validated but not saved (validation_iter % save_iter != 0)")
                continue
            score = _nn_score(kpi)
            if score is None:
                log(f"pick_best_step: no nn_score row in {kpi}; skipped")
                continue
            scored.append((score, step))
        if scored:
            score, step = max(scored)  # ties go to the later step
            log(
                f"pick_best_step: best={step} (average nn_score={score:g}) among {len(scored)} validated step(s)"
            )
            return step
        log(
            "WARN: pick_best_step: no validated step has a saved checkpoint; check validation_iter % save_iter == 0"
        )
    steps = [s for s in (_step_of(p) for p in trainer_weights(ckpt_root, 64)) if s is not None]
    if steps:
        log(f"pick_best_step: no validation KPIs; using the latest trained iter {max(steps)}")
        return max(steps)
    log(f"pick_best_step: shipped checkpoint; using checkpoint_step={fallback_step}")
    return int(fallback_step)


def main_pick_best_step(argv: Sequence[str] | None = None) -> int:
    """`pick-best-step`: print only the chosen step on stdout (diagnostics on stderr)."""
    fields = {"ckpt_root": ("path", None), "fallback_step": ("int", None)}

    def body(opts: dict) -> int:
        print(pick_best_step(opts["ckpt_root"], opts["fallback_step"]), flush=True)
        return 0

    return _common.run_main(
        body,
        lambda: _common.load_options(argv or [], "pick-best-step", fields, ["ckpt_root", "fallback_step"]),
    )
