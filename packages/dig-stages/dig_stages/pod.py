"""Pod preflights (OptiX mount, /dev/shm size) and locating inputs inside OSMO mounts."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from dig_stages import _common

NVOPTIX_PATH = "/usr/share/nvidia/nvoptix.bin"
SHM_PATH = "/dev/shm"
MIN_SHM_GIB = 16
AG_ROOT = "/workspace/paidf-anomalygen"
# items of the pretrained tree linked into <AG_ROOT>/checkpoints (each only when present)
PRETRAINED_ITEMS = ("NVDINOV2", "nvidia", "google-t5", "facebook", "C-RADIOv2_B.pth", "sam2", "Qwen")


def check_nvoptix(path: str | Path = NVOPTIX_PATH) -> None:
    """Fail unless the OptiX denoiser binary is mounted (else Kit silently renders noisy frames)."""
    if not Path(path).is_file():
        _common.fail(
            f"{path} not mounted; Kit would fall back to noisy raw path tracing.\n"
            "Add the nvoptix hostPath volume to the OSMO POD_TEMPLATE (see `dig preflight pod-template`)."
        )


def shm_gib(path: str | Path = SHM_PATH) -> float:
    """Total size of the filesystem at `path` in GiB (os.statvfs)."""
    st = os.statvfs(path)
    return st.f_blocks * st.f_frsize / 2**30


def check_shm(
    path: str | Path = SHM_PATH, min_gib: int = MIN_SHM_GIB, purpose: str = "Kit ray-tracer buffers"
) -> None:
    """Fail when /dev/shm is smaller than min_gib (exact byte comparison, not df's rounded-up GiB)."""
    try:
        size = shm_gib(path)
    except OSError as exc:
        _common.fail(f"cannot stat {path}: {exc}")
    if size < min_gib:
        _common.fail(
            f"{path} is {size:.1f}GiB; need >= {min_gib} GiB (32 preferred) for {purpose}.\n"
            "Raise the dshm emptyDir sizeLimit in the OSMO POD_TEMPLATE."
        )


def _min_gib(opts: dict) -> int:
    value = opts.get("min_shm_gib")
    return MIN_SHM_GIB if value is None else int(value)


def render_preflight(opts: dict) -> None:
    """B1: both checks, as the render tasks run them."""
    check_nvoptix(opts.get("nvoptix_path") or NVOPTIX_PATH)
    check_shm(opts.get("shm_path") or SHM_PATH, _min_gib(opts))


def train_preflight(opts: dict) -> None:
    """B2: /dev/shm only, as the finetune task runs it."""
    check_shm(opts.get("shm_path") or SHM_PATH, _min_gib(opts), "torchrun shared-memory")


PREFLIGHT_FIELDS = {
    "nvoptix_path": ("path", NVOPTIX_PATH),
    "shm_path": ("path", SHM_PATH),
    "min_shm_gib": ("int", MIN_SHM_GIB),
}


def main_preflight(argv: Sequence[str] | None = None) -> int:
    """`pod-preflight`: --checks render (nvoptix + shm) or train (shm only)."""
    fields = dict(PREFLIGHT_FIELDS, checks=("str", "render"))

    def body(opts: dict) -> int:
        if opts["checks"] not in ("render", "train"):
            _common.fail(f"checks: got {opts['checks']!r}; allowed: render, train")
        (render_preflight if opts["checks"] == "render" else train_preflight)(opts)
        _common.info(f"preflight ({opts['checks']}) OK")
        return 0

    return _common.run_main(body, lambda: _common.load_options(argv or [], "pod-preflight", fields))


# ---------------------------------------------------------------------------------------------
# locating inputs


def find_scene(assets_dir: str | Path, scene_filename: str) -> Path:
    """First file named scene_filename under the assets mount (shallowest, then sorted)."""
    found = _common.find_first(assets_dir, scene_filename, maxdepth=64, kind="file")
    if found is None:
        _common.fail(
            f"scene_filename={scene_filename} not found under {assets_dir}\n"
            "check the knob scene_filename, or that datasets/pcb/assets holds the USD bundle (setup_pcb)"
        )
    return found.resolve()


def find_real_image(assets_dir: str | Path, real_image_filename: str) -> Path:
    """The photo at assets/<relative path>, else the first file anywhere with the same basename."""
    direct = Path(assets_dir) / real_image_filename
    if direct.is_file():
        return direct.resolve()
    found = _common.find_first(assets_dir, Path(real_image_filename).name, maxdepth=64, kind="file")
    if found is None:
        _common.fail(
            f"real_image_filename={real_image_filename} not found under {assets_dir}\n"
            "upload the photo to datasets/pcb/assets/input_real_image/<board>.jpg, and change board and "
            "real_image_filename together"
        )
    return found.resolve()


def find_crop_root(base: str | Path) -> Path | None:
    """`<base>/crop` when it has a subdir, else the first dir named `crop` within depth 5, else None."""
    direct = Path(base) / "crop"
    if direct.is_dir() and _common.subdirs(direct):
        return direct
    return _common.find_first(base, "crop", maxdepth=5, kind="dir")


def find_pretrained(base: str | Path) -> Path:
    """The first dir named `pretrained` within depth 4 of the models/pretrained mount."""
    if Path(base).name == "pretrained" and Path(base).is_dir():
        return Path(base)
    found = _common.find_first(base, "pretrained", maxdepth=4, kind="dir")
    if found is None:
        _common.fail(f"pretrained/ not found within depth 4 of {base}; run setup_pretrained first")
    return found


def _has_mask_level(root: Path) -> bool:
    # a dir at exactly depth 3 shaped <M>/mask/<D>
    return any(d.is_dir() for m in _common.subdirs(root) for d in _common.subdirs(m / "mask"))


def resolve_submask_root(base: str | Path) -> Path:
    """Submask root: base if it has */mask/* dirs; else its first subdir (wrapper, e.g. PCB/) if so; else base."""
    base = Path(base)
    if _has_mask_level(base):
        return base
    subs = _common.subdirs(base)
    if subs and _has_mask_level(subs[0]):
        return subs[0]
    return base


def link_pretrained(pretrained: str | Path, ag_root: str | Path = AG_ROOT) -> list[str]:
    """B4: replace <ag_root>/checkpoints/<item> by a symlink to each present pretrained item."""
    ckpts = Path(ag_root) / "checkpoints"
    ckpts.mkdir(parents=True, exist_ok=True)
    linked = []
    for item in PRETRAINED_ITEMS:
        src = Path(pretrained) / item
        if not src.exists():
            continue
        dst = ckpts / item
        # never wipe checkpoints/ itself: SAM2 and Qwen3-VL are baked into the image there
        if dst.is_symlink() or dst.is_file():
            dst.unlink()
        elif dst.is_dir():
            shutil.rmtree(dst)
        dst.symlink_to(src.resolve())
        linked.append(item)
    _common.info(f"linked pretrained items into {ckpts}: {', '.join(linked) or '(none)'}")
    return linked
