"""Setup flows: download/prepare artifacts into the storage layout, flatten checkpoints, count-check."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from dig_stages import _common, pod, sanity

# copied from the image's checkpoints/ into models/pretrained/pretrained/
PRETRAINED_COPY = ("NVDINOV2", "nvidia", "google-t5", "facebook", "sam2", "Qwen")
C_RADIO_REPO = "nvidia/C-RADIOv3-B"
C_RADIO_DIR = "nvidia/C-RADIO-V3"  # local dir name differs from the repo id on purpose
DATA_MODULES = {
    "pcb": "prepare_dataset_uc1",
    "metal_surface": "prepare_dataset_uc2",
    "glass": "prepare_dataset_uc3",
}
SCRIPT_UC = {"pcb": "pcb", "metal_surface": "metal", "glass": "glass"}
GLASS_ZIP = "mobile_screen.zip"

TOOL_FIELDS = {
    # local-run / test overrides of the container paths (the compiler does not write these)
    "ag_root": ("path", pod.AG_ROOT),
    "tmp_dir": ("path", "/tmp"),
    "python": ("str", "python3"),
    "bash": ("str", "bash"),
    "hf": ("str", "hf"),
}


def flatten_checkpoint(out: str | Path) -> Path | None:
    """Move iter_*.pt + ag_config.yaml up from the download's nested nvidia/<repo>/ dir; drop the nest."""
    out = Path(out)
    first = next(
        (
            p
            for p, _d, is_dir in _common.walk(out, maxdepth=3, mindepth=2)
            if not is_dir and p.name.startswith("iter_") and p.name.endswith(".pt")
        ),
        None,
    )
    if first is None or first.parent == out:
        return None
    nested = first.parent
    for f in sorted(nested.glob("iter_*.pt")) + [nested / "ag_config.yaml"]:
        if f.is_file():
            shutil.move(str(f), str(out / f.name))
    # delete the top-level wrapper (nvidia/), never OUT itself
    top = out / nested.relative_to(out).parts[0]
    shutil.rmtree(top)
    _common.info(f"flattened checkpoint from {nested} into {out}")
    return nested


def _hf(opts: dict) -> list[str]:
    return _common.split_cmd(opts["hf"])


def run_pretrained(opts: dict) -> int:
    """models/pretrained: download_checkpoints into the image, copy the tree out, add C-RADIO-V3."""
    out = Path(opts["output_dir"]) / "pretrained"
    out.mkdir(parents=True, exist_ok=True)
    ag_root = Path(opts["ag_root"])
    sizes = opts["model_sizes"] if isinstance(opts["model_sizes"], list) else str(opts["model_sizes"]).split()
    log = Path(opts["tmp_dir"]) / "dl_checkpoints.log"
    code = _common.run_tool(
        [
            *_common.split_cmd(opts["python"]),
            "-m",
            "scripts.download_checkpoints",
            "--model_types",
            "text2image",
            "--model_sizes",
            *[str(s) for s in sizes],
        ],
        cwd=ag_root,
        log_file=log,
    )
    if code != 0:
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-20:] if log.is_file() else []
        _common.fail(
            "download_checkpoints failed (is hf-token's license accepted for Cosmos-Predict2?)\n"
            + "\n".join(tail),
            code,
        )
    for item in PRETRAINED_COPY:
        src = ag_root / "checkpoints" / item
        if src.is_dir():
            n = _common.copy_tree(src, out / item)
            _common.info(f"copied checkpoints/{item}: {n} files")
        else:
            _common.warn(f"checkpoints/{item} not found — skipping")
    _common.require_tool(
        [*_hf(opts), "download", C_RADIO_REPO, "model.safetensors", "--local-dir", str(out / C_RADIO_DIR)],
        what=f"hf download {C_RADIO_REPO}",
    )
    files = sorted(str(p) for p, _d, is_dir in _common.walk(out, 64) if not is_dir)
    if not files:
        _common.fail("empty pretrained tree")
    _common.info("\n".join(files[:40]))
    sanity.count_check(out, "models/pretrained")
    return 0


def run_model(opts: dict) -> int:
    """models/<usecase>: download the finetuned checkpoint, flatten it to ag_config.yaml + iter_*.pt."""
    out = Path(opts["output_dir"])
    out.mkdir(parents=True, exist_ok=True)
    uc = opts["script_uc"] or SCRIPT_UC.get(opts["usecase"] or "", "")
    if uc not in SCRIPT_UC.values():
        _common.fail(f"script_uc: got {uc!r}; allowed: {', '.join(SCRIPT_UC.values())}")
    script = Path(opts["ag_root"]) / "scripts" / "utilities" / "download_anomalygen_checkpoints.sh"
    _common.require_tool(
        [*_common.split_cmd(opts["bash"]), str(script), "--uc", uc, "--checkpoint-dir", str(out)],
        what="download_anomalygen_checkpoints.sh",
        cwd=opts["ag_root"],
    )
    flatten_checkpoint(out)
    if not (out / "ag_config.yaml").is_file():
        _common.warn(f"{out}/ag_config.yaml missing after flatten; inference needs it next to iter_*.pt")
    sanity.count_check(out, f"models/{opts['usecase'] or uc}")
    return 0


def run_data(opts: dict) -> int:
    """datasets/<usecase>/raw: the image's prepare_dataset_ucN (glass also needs the mounted zip)."""
    out = Path(opts["output_dir"])
    out.mkdir(parents=True, exist_ok=True)
    usecase = opts["usecase"]
    if usecase not in DATA_MODULES:
        _common.fail(
            f"usecase: got {usecase!r}; setup-data prepares {', '.join(DATA_MODULES)} "
            "(upload custom datasets under datasets/<usecase>/raw)"
        )
    cmd = [*_common.split_cmd(opts["python"]), "-m", f"scripts.utilities.{DATA_MODULES[usecase]}", str(out)]
    if usecase == "glass":
        zip_copy = Path(opts["tmp_dir"]) / "uc3_input.zip"
        zip_name = opts.get("zip_filename") or GLASS_ZIP  # the loader defaults it; direct callers may not
        src = Path(opts["zip_dir"] or "") / zip_name
        if opts["zip_dir"] and src.is_file():
            shutil.copyfile(src, zip_copy)
        if not zip_copy.is_file():
            _common.fail(
                f"{zip_copy} not present — uc3_zip_url_root may be wrong or {zip_name} missing\n"
                + _common.listing(opts["zip_dir"] or ".", 20)
            )
        cmd += ["--zip", str(zip_copy), "--masks-from-hf"]
    _common.require_tool(cmd, what=DATA_MODULES[usecase], cwd=opts["ag_root"])
    removed = sanity.remove_root_entries(out, (".cache", ".gitattributes"))
    if removed:
        _common.info(f"removed {', '.join(removed)} from {out}")
    if not (out / "defect_spec.jsonl").is_file():
        _common.warn(f"{out}/defect_spec.jsonl missing; finetune needs it at the dataset root")
    sanity.count_check(out, f"datasets/{usecase}/raw")
    return 0


def run_assets(opts: dict) -> int:
    """datasets/pcb/assets: the PCBA USD bundle from HF (dataset repo)."""
    out = Path(opts["output_dir"])
    out.mkdir(parents=True, exist_ok=True)
    _common.require_tool(
        [
            *_hf(opts),
            "download",
            "nvidia/Spark-AnomalyGen-USD",
            "--repo-type",
            "dataset",
            "--local-dir",
            str(out),
        ],
        what="hf download nvidia/Spark-AnomalyGen-USD",
    )
    sanity.remove_root_entries(out, (".cache", ".gitattributes"))
    sanity.count_check(out, "datasets/pcb/assets")
    return 0


# The one declaration of each step's options: the loaders below enforce it, the compiler checks
# every compiled spec.json against it (compiler/contract.py).
OPTIONS = {
    "setup-pretrained": _common.options(
        {"output_dir": ("path", None), "model_sizes": ("json", ["2B"]), **TOOL_FIELDS}, ["output_dir"]
    ),
    "setup-model": _common.options(
        {"output_dir": ("path", None), "usecase": ("str", None), "script_uc": ("str", None), **TOOL_FIELDS},
        ["output_dir", "usecase"],
    ),
    "setup-data": _common.options(
        {
            "output_dir": ("path", None),
            "usecase": ("str", None),
            "zip_dir": ("path", None),
            "zip_filename": ("str", GLASS_ZIP),
            **TOOL_FIELDS,
        },
        ["output_dir", "usecase"],
    ),
    "setup-assets": _common.options({"output_dir": ("path", None), **TOOL_FIELDS}, ["output_dir"]),
}


def _main(argv: Sequence[str] | None, step: str, body) -> int:
    return _common.run_main(body, lambda: _common.load_options(argv or [], step, OPTIONS[step]))


def main_pretrained(argv: Sequence[str] | None = None) -> int:
    """`setup-pretrained` (pretrained task)."""
    return _main(argv, "setup-pretrained", run_pretrained)


def main_model(argv: Sequence[str] | None = None) -> int:
    """`setup-model` (<usecase>-model tasks)."""
    return _main(argv, "setup-model", run_model)


def main_data(argv: Sequence[str] | None = None) -> int:
    """`setup-data` (<usecase>-data tasks)."""
    return _main(argv, "setup-data", run_data)


def main_assets(argv: Sequence[str] | None = None) -> int:
    """`setup-assets` (pcb-assets task)."""
    return _main(argv, "setup-assets", run_assets)
