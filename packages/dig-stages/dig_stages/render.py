"""Render-side drivers: fill config sentinels, run the Kit/usd2roi/crop tools, check what they wrote."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path

from dig_stages import _common, pod, structural

KIT = "/isaac-sim/kit/kit /isaac-sim/apps/isaacsim.exp.base.kit --no-window"
SIM_ROOT = "/workspace/paidf-simulation"

TOOL_FIELDS = {
    # local-run / test overrides of the container paths (the compiler does not write these)
    "kit": ("str", KIT),
    "sim_root": ("path", SIM_ROOT),
    "python": ("str", "python3"),
    "tmp_dir": ("path", "/tmp"),
    **pod.PREFLIGHT_FIELDS,
}


def _require_file(path: str | Path, what: str = "cookbook localpath") -> Path:
    if not Path(path).is_file():
        _common.fail(f"{path} not mounted ({what}); re-run `dig compile` and resubmit")
    return Path(path)


def write_resolved(src: str | Path, dst: str | Path, values: dict[str, str]) -> Path:
    """Copy a compiler-rendered config to dst with its sentinels filled (each one must be present)."""
    text = _require_file(src).read_text(encoding="utf-8")
    try:
        filled = _common.fill_sentinels(text, values, required=values)
    except _common.StageError as exc:
        _common.fail(f"{src}: {exc}")
    Path(dst).write_text(filled, encoding="utf-8")
    return Path(dst)


def run_kit(opts: dict, script: str, args: Sequence[str]) -> None:
    """Run a Kit standalone script the way the images need it (ENTRYPOINT is bypassed by OSMO)."""
    exec_arg = " ".join([str(Path(opts["sim_root"]) / script), *args])
    cmd = _common.split_cmd(opts["kit"]) + ["--exec", exec_arg]
    _common.require_tool(cmd, what=f"Kit {Path(script).name}")


def python_tool(opts: dict, script: str, *args: str) -> list[str]:
    return [*_common.split_cmd(opts["python"]), str(Path(opts["sim_root"]) / script), *args]


def check_frames(out: str | Path) -> int:
    """Count trigger_*/rgb_*.png frames; fail when the render wrote none."""
    out = Path(out)
    frames = sorted(out.glob("trigger_*/rgb_*.png"))
    if not frames:
        _common.fail(
            f"sdg_pipeline.py produced no frames under {out} (no trigger_*/rgb_*.png); see the Kit log above\n"
            + _common.listing(out, 20)
        )
    _common.info(f"render: {len(frames)} frame(s) under {out}")
    return len(frames)


def roi_summary(crop: Path, pattern: str, message: str) -> int:
    """Count ROI images matching pattern under crop/; fail with message when zero; log materials."""
    n = _common.count_files(crop, pattern, (".png",))
    if n == 0:
        _common.fail(message + "\n" + _common.listing(crop, 20))
    mats = [d.name for d in _common.subdirs(crop)]
    _common.info(f"crop: {n} ROI image(s); materials: {', '.join(mats)}")
    return n


# ---------------------------------------------------------------------------------------------

DAY0_FIELDS = {
    "assets_dir": ("path", None),
    "output_dir": ("path", None),
    "scene_filename": ("str", None),
    "pcba_target": ("path", "/tmp/pcba_target.yaml"),
    "image_config": ("path", "/tmp/day0_image.yaml"),
    "crop_config": ("path", "/tmp/day0_crop.yaml"),
    **TOOL_FIELDS,
}


def run_day0(opts: dict) -> int:
    """usd2roi Day 0: scan-grid render (Kit) then per-cell ROI crop; checks ROI pairs."""
    pod.render_preflight(opts)
    out = Path(opts["output_dir"])
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(opts["tmp_dir"])
    for key in ("pcba_target", "image_config", "crop_config"):
        _require_file(opts[key])
    scene = pod.find_scene(opts["assets_dir"], opts["scene_filename"])
    _common.info(f"scene: {scene}")
    target = write_resolved(opts["pcba_target"], tmp / "pcba_target_patched.yaml", {"__SCENE__": str(scene)})
    image_cfg = write_resolved(
        opts["image_config"], tmp / "day0_image_resolved.yaml", {"__OUTPUT__": str(out)}
    )
    crop_cfg = write_resolved(opts["crop_config"], tmp / "day0_crop_resolved.yaml", {"__OUTPUT__": str(out)})
    for src, name in (
        (image_cfg, "day0_image.yaml"),
        (crop_cfg, "day0_crop.yaml"),
        (target, "pcba_target.yaml"),
    ):
        shutil.copyfile(src, out / name)
    run_kit(
        opts,
        "scripts/sdg/standalone/sdg_pipeline.py",
        ["--config", str(image_cfg), "--pcba-config", str(target)],
    )
    check_frames(out)
    _common.require_tool(
        python_tool(opts, "scripts/usd2roi/usd2roi_crop.py", "--config", str(crop_cfg)),
        what="usd2roi_crop.py",
    )
    crop = out / "crop"
    roi_summary(
        crop,
        "**/normal_img/*.png",
        f"0 ROI pairs emitted under {crop} (no semantic region matched crop.classes in the crop cookbook)",
    )
    cells = len([c for m in _common.subdirs(crop) for c in _common.subdirs(m)])
    _common.info(f"crop: {cells} cell dir(s)")
    return 0


def main_day0(argv: Sequence[str] | None = None) -> int:
    """`render-day0` (usd2roi-replicator task)."""
    return _common.run_main(
        run_day0, lambda: _common.load_options(argv or [], "render-day0", OPTIONS["render-day0"])
    )


# ---------------------------------------------------------------------------------------------

STRUCTURAL_FIELDS = {
    "assets_dir": ("path", None),
    "output_dir": ("path", None),
    "work_dir": ("path", "/tmp/work_out"),
    "scene_filename": ("str", None),
    "pcba_target": ("path", "/tmp/pcba_target.yaml"),
    "render_config": ("path", "/tmp/render_config.yaml"),
    "crop_offset": _common.Option("int", 10, minimum=0, maximum=1000),
    "defect_modes": _common.Option("json", list(structural.DEFECT_MODES)),
    **TOOL_FIELDS,
}


def run_structural(opts: dict) -> int:
    """Structural pose defects: Kit render in a work dir, crop_components per mode, mirror to the output."""
    pod.render_preflight(opts)
    modes = opts["defect_modes"]
    if not isinstance(modes, list) or not modes or any(m not in structural.DEFECT_MODES for m in modes):
        _common.fail(f"defect_modes: got {modes!r}; expected a non-empty list of shift, tombstone, sideflip")
    _common.info(
        f"defect modes enabled: {', '.join(modes)}; disabled: "
        f"{', '.join(m for m in structural.DEFECT_MODES if m not in modes) or '(none)'}"
    )
    # the output mount is root-owned and Kit runs as UID 1234: render into a work dir, then copy
    work = _common.reset_dir(opts["work_dir"])
    tmp = Path(opts["tmp_dir"])
    _require_file(opts["pcba_target"])
    _require_file(opts["render_config"])
    scene = pod.find_scene(opts["assets_dir"], opts["scene_filename"])
    _common.info(f"scene: {scene}")
    target = write_resolved(opts["pcba_target"], tmp / "pcba_target_patched.yaml", {"__SCENE__": str(scene)})
    cfg = write_resolved(
        opts["render_config"], tmp / "render_config_resolved.yaml", {"__OUTPUT__": str(work)}
    )
    shutil.copyfile(cfg, work / "render_config.yaml")
    shutil.copyfile(target, work / "pcba_target.yaml")
    run_kit(
        opts, "scripts/sdg/standalone/sdg_pipeline.py", ["--config", str(cfg), "--pcba-config", str(target)]
    )
    check_frames(work)
    _common.require_tool(
        python_tool(
            opts,
            "scripts/postprocess/crop_components.py",
            "--input",
            str(work / "trigger_0000"),
            "--output",
            str(work / "cropped"),
            "--crops",
            "rgb",
            "semantic_segmentation",
            "component_instance",
            "--offset",
            str(opts["crop_offset"]),
        ),
        what="crop_components.py",
    )
    counts = structural.check_mode_crops(work / "cropped", modes)
    _common.info("crops per mode: " + ", ".join(f"{m}={n}" for m, n in counts.items()))
    out = Path(opts["output_dir"])
    out.mkdir(parents=True, exist_ok=True)
    n = _common.copy_tree(work, out)
    _common.info(f"mirrored {n} file(s) from {work} to {out}")
    return 0


def main_structural(argv: Sequence[str] | None = None) -> int:
    """`render-structural` (sdg-and-crop task)."""
    return _common.run_main(
        run_structural,
        lambda: _common.load_options(argv or [], "render-structural", OPTIONS["render-structural"]),
    )


# ---------------------------------------------------------------------------------------------

DAY1_FIELDS = {
    "assets_dir": ("path", None),
    "output_dir": ("path", None),
    "scene_filename": ("str", None),
    "real_image_filename": ("str", None),
    "config": ("path", "/tmp/usd2roi_day1.yaml"),
    **TOOL_FIELDS,
}

REGISTER_HINTS = (
    "  - widen registration.sx_range / sy_range / rot_range_deg in the board's usd2roi_nvpcb.yaml\n"
    "  - or lower registration.min_mi (null disables the gate)\n"
    "  - re-check camera.translate and camera.horizontal_aperture against the real photo"
)


def run_day1(opts: dict) -> int:
    """usd2roi Day 1: ortho render (Kit), MI registration (exit code passed through), per-ROI crop."""
    pod.render_preflight(opts)
    out = Path(opts["output_dir"])
    out.mkdir(parents=True, exist_ok=True)
    _require_file(opts["config"])
    scene = pod.find_scene(opts["assets_dir"], opts["scene_filename"])
    photo = pod.find_real_image(opts["assets_dir"], opts["real_image_filename"])
    _common.info(f"scene: {scene}\nreal image: {photo}")
    cfg = write_resolved(
        opts["config"],
        Path(opts["tmp_dir"]) / "usd2roi_day1_resolved.yaml",
        {"__SCENE__": str(scene), "__REAL_IMAGE__": str(photo), "__OUTPUT__": str(out)},
    )
    shutil.copyfile(cfg, out / "usd2roi_day1.yaml")
    run_kit(opts, "scripts/usd2roi/usd2roi_render.py", ["--config", str(cfg)])
    code = _common.run_tool(python_tool(opts, "scripts/usd2roi/usd2roi_register.py", "--config", str(cfg)))
    if code != 0:
        _common.fail(f"usd2roi_register.py exited {code} (likely MI < min_mi).\n" + REGISTER_HINTS, code)
    _common.require_tool(
        python_tool(opts, "scripts/usd2roi/usd2roi_crop.py", "--config", str(cfg)), what="usd2roi_crop.py"
    )
    crop = out / "crop"
    roi_summary(crop, "**/normal_img/*.png", f"0 ROI crops emitted under {crop}")
    params = out / "aligned" / "params.json"
    if params.is_file():
        try:
            _common.info(
                "registration: " + json.dumps(json.loads(params.read_text(encoding="utf-8")), indent=2)
            )
        except json.JSONDecodeError:
            _common.warn(f"{params} is not valid JSON")
    return 0


def main_day1(argv: Sequence[str] | None = None) -> int:
    """`render-day1` (usd2roi-day1 task)."""
    return _common.run_main(
        run_day1, lambda: _common.load_options(argv or [], "render-day1", OPTIONS["render-day1"])
    )


# The one declaration of each step's options: the loaders above enforce it, the compiler checks
# every compiled spec.json against it (compiler/contract.py).
_REQUIRED = ["assets_dir", "output_dir", "scene_filename"]
OPTIONS = {
    "render-day0": _common.options(DAY0_FIELDS, _REQUIRED),
    "render-structural": _common.options(STRUCTURAL_FIELDS, _REQUIRED),
    "render-day1": _common.options(DAY1_FIELDS, [*_REQUIRED, "real_image_filename"]),
}
