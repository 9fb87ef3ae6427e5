"""The run-book's Notes: the compile's diagnostics, then what a user of this flow variant must know."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from compiler.flows import calls_endpoint, run_name, takes_run_name
from compiler.rules import finetune_scheduled

if TYPE_CHECKING:
    from compiler.pipeline import Compiled


def notes(compiled: Compiled, images: int | None) -> list[str]:
    c = compiled.config
    out = [f"{d.severity}: {d.key}: {d.message}" for d in compiled.diagnostics]
    out += _render_notes(c) + _run_notes(c)
    if images is not None:
        out.append(_images_note(c, images))
    return out


def _structural_notes(c: dict[str, Any]) -> list[str]:
    k = c["knobs"]
    calib = c["board"].get("structural_yield")
    table = ", ".join(f"{p}→~{n}" for p, n in calib or [])
    out = [
        "`crop_max_emit` does not exist on structural: it is sized by `render_patches` "
        f"(now {k['render_patches']})"
        + (
            f". Yield on board {c['board']['key']} (render_patches→≈crops): {table}; below "
            f"~{calib[0][1]} narrow `defect_modes` (each disabled mode removes ~33%); `--images N` "
            "picks the patches."
            if calib
            else "; this board has no yield calibration."
        )
    ]
    if c["board"]["key"] == "1152819000":
        out.append("Board 1152819000 is IC-only (shift mode): use render_patches=-1.")
    elif k["render_patches"] == 1:
        out.append("render_patches=1 may render an empty cell (0 crops): prefer ≥ 3.")
    return out


def _render_notes(c: dict[str, Any]) -> list[str]:
    """The render and image-edit side: sizing, what each flow can make, the endpoint."""
    variant = c["flow"]["variant"]
    out = _structural_notes(c) if variant == "structural" else []
    if variant in ("texture", "good", "structural"):
        out.append(
            "Missing components are made by Day 0 texture defects (AnomalyGen "
            "`passive_component+missing`), not by structural (pose: shift/tombstone/sideflip)."
        )
    if variant in ("texture", "good"):
        out.append(
            "`crop_max_emit` caps crops per material per scan cell: '' keeps the cookbook cap, null "
            'removes it, N caps at N. "N images" means crop_max_emit=N, never render_patches.'
        )
    if calls_endpoint(c):
        out.append(
            f"Check the image-edit endpoint is Ready before submit ({c['endpoint']['url']}/models must "
            "list nvidia/Qwen-Image-Edit-NVPCB-OVSL2SL); otherwise the render finishes and image-edit "
            "fails."
        )
    return out


def _run_notes(c: dict[str, Any]) -> list[str]:
    """Day 1 inputs, finetune scheduling, setup, and run names."""
    k, variant = c["knobs"], c["flow"]["variant"]
    out = []
    if variant == "real_alignment":
        out.append(
            "Day 1 on pcb defaults to real-photo alignment (render + MI registration to "
            f"{k.get('real_image_filename')}); for your own crops use flow=day1_manual_roi. Changing "
            "board= changes the photo with it; a custom photo must match the board."
        )
    if finetune_scheduled(c) and c["flow"]["key"] != "finetune":
        out.append(
            "finetune-job has no upstream edge (URL inputs only) and starts at once; inference waits for "
            "it and picks the best validated step (checkpoint_step is only the fallback)."
        )
    if not takes_run_name(c):
        out.append(
            "Setup writes fixed URLs under the storage root; re-running overwrites them. Re-submit only "
            "the setup that failed."
        )
    if variant == "setup_glass":
        out.append("Upload mobile_screen.zip as a regular file under uc3_zip_url_root before submitting.")
    if variant == "setup_pretrained" and "14B" in str(k.get("pretrained_model_sizes", "")):
        out.append("Model sizes include 14B: storage_large must be ≥ 300Gi.")
    if run_name(c) and not c["name"]:
        out.append(
            "Never reuse a run name: runs/<name>/ would be overwritten (exception: a good_image + "
            "structural pair for ChangeNet shares one name on purpose)."
        )
    return out


def _images_note(config: dict[str, Any], images: int) -> str:
    from compiler.sizing import SizingError, rule_for

    try:
        return rule_for(config, images).report().replace("\n    ", "; ")
    except SizingError as exc:
        return f"--images {images}: {exc}"
