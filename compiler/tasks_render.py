"""The render-side tasks (Kit renders, ROI crops) and the image-edit restyling, as in spec/flows.md."""

from __future__ import annotations

import copy
from typing import Any

from compiler.rules import MODEL_ID
from compiler.task import HF_TOKEN, Context, Task, ref

COOKBOOK = "cookbooks.augmentation_config_ovsl2sl"
GPU_ENV = {"NVIDIA_DRIVER_CAPABILITIES": "all"}


def assets(ctx: Context) -> dict[str, dict[str, str]]:
    return {"assets_dir": {"url": ctx.url("datasets", "pcb", "assets")}}


# -- cookbooks with the run's knobs applied ----------------------------------------------------------
def day0_image(book: dict[str, Any], target: dict[str, Any], render_patches: int) -> dict[str, Any]:
    out = copy.deepcopy(book)
    out["max_image_count"] = render_patches
    # sdg_pipeline.py raises KeyError('horizontal_aperture') without it (spec A42): same guard as upstream.
    if "horizontal_aperture" not in out and "horizontal_aperture" not in target:
        out["horizontal_aperture"] = 200.0
    return out


def day0_crop(book: dict[str, Any], crop_max_emit: Any) -> dict[str, Any]:
    out = copy.deepcopy(book)
    if crop_max_emit != "":  # blank keeps the cookbook's cap; null removes it; N caps
        out["crop"]["max_emit"] = crop_max_emit
    return out


def defect_image(book: dict[str, Any], render_patches: int, modes: list[str] | None) -> dict[str, Any]:
    out = copy.deepcopy(book)
    out["max_image_count"] = render_patches
    out["output"] = "__OUTPUT__"
    if modes is not None:  # `all` keeps the cookbook's own flags
        for mode in out.get("defects", {}):
            out["defects"][mode]["enabled"] = mode in modes
    return out


# -- tasks -------------------------------------------------------------------------------------------
def usd2roi_replicator(ctx: Context) -> Task:
    books, k = ctx.c["cookbooks"], ctx.k
    image = day0_image(books["day0_image"], books["pcba_target"], k["render_patches"])
    return Task(
        name="usd2roi-replicator",
        group="usd2roi-render",
        image=k["usd2roi_image"],
        resource="gpu-render",
        script="/tmp/run.sh",
        step="render-day0",
        summary="scan-grid render (Kit sdg_pipeline.py) + per-cell ROI crop (usd2roi_crop.py)",
        environment=dict(GPU_ENV),
        inputs=assets(ctx),
        cookbooks=[
            ctx.cookbook("/tmp/pcba_target.yaml", "pcba_target"),
            ctx.cookbook("/tmp/day0_image.yaml", "day0_image", image),
            ctx.cookbook(
                "/tmp/day0_crop.yaml", "day0_crop", day0_crop(books["day0_crop"], k["crop_max_emit"])
            ),
        ],
        spec={
            "assets_dir": ref("assets_dir"),
            "output_dir": "{{output}}",
            "scene_filename": k["scene_filename"],
            "pcba_target": "/tmp/pcba_target.yaml",
            "image_config": "/tmp/day0_image.yaml",
            "crop_config": "/tmp/day0_crop.yaml",
        },
        output=ctx.out("usd2roi-components"),
    )


def sdg_and_crop(ctx: Context) -> Task:
    from dig_stages.structural import parse_defect_modes

    books, k = ctx.c["cookbooks"], ctx.k
    modes = parse_defect_modes(k["defect_modes"])
    book = defect_image(
        books["defect_image"], k["render_patches"], None if k["defect_modes"] == "all" else modes
    )
    enabled = [m for m, v in book.get("defects", {}).items() if v.get("enabled")]
    return Task(
        name="sdg-and-crop",
        group="isaac-render-defect",
        image=k["isaac_render_image"],
        resource="gpu-render",
        script="/tmp/run_render.sh",
        step="render-structural",
        summary="pose-defect render (Kit sdg_pipeline.py) + per-mode crops (crop_components.py)",
        environment={**GPU_ENV, "CROP_OFFSET": str(k["crop_offset"])},
        inputs=assets(ctx),
        cookbooks=[
            ctx.cookbook("/tmp/pcba_target.yaml", "pcba_target"),
            ctx.cookbook("/tmp/render_config.yaml", "defect_image", book),
        ],
        spec={
            "assets_dir": ref("assets_dir"),
            "output_dir": "{{output}}",
            "work_dir": "/tmp/work_out",
            "scene_filename": k["scene_filename"],
            "pcba_target": "/tmp/pcba_target.yaml",
            "render_config": "/tmp/render_config.yaml",
            "crop_offset": k["crop_offset"],
            "defect_modes": enabled,
        },
        sources={
            "crop_offset": "knobs.crop_offset",
            "scene_filename": "knobs.scene_filename",
            "defect_modes": "knobs.defect_modes",
        },
        output=ctx.out("structural_defect"),
    )


def usd2roi_day1(ctx: Context) -> Task:
    k = ctx.k
    return Task(
        name="usd2roi-day1",
        group="usd2roi-render-day1",
        image=k["usd2roi_image"],
        resource="gpu-render",
        script="/tmp/run.sh",
        step="render-day1",
        summary="ortho render -> MI registration to the real photo -> per-ROI crop (container tools)",
        environment=dict(GPU_ENV),
        inputs=assets(ctx),
        cookbooks=[ctx.cookbook("/tmp/usd2roi_day1.yaml", "usd2roi_nvpcb")],
        spec={
            "assets_dir": ref("assets_dir"),
            "output_dir": "{{output}}",
            "scene_filename": k["scene_filename"],
            "real_image_filename": k["real_image_filename"],
            "config": "/tmp/usd2roi_day1.yaml",
        },
        output=ctx.out("usd2roi-day1"),
    )


def _edit_sources(book: dict[str, Any]) -> dict[str, str]:
    return {
        "prompt": f"{COOKBOOK}.captioning.llm.text",
        "generation": f"{COOKBOOK}.augmentation.parameters",
        "max_retries": f"{COOKBOOK}.pipeline.retry",
        "endpoint": "endpoint.url",
        **{
            f"align_params.{key}": f"{COOKBOOK}.data_processing.alignment.{key}"
            for key in book["data_processing"]["alignment"]
        },
    }


def image_edit(ctx: Context, upstream: str, layout: str, stage: str) -> Task:
    """Restyle the crops of task `upstream` (laid out as `layout`) into the run's `stage` directory."""
    book = ctx.c["cookbooks"]["augmentation_config_ovsl2sl"]
    video = str(book["data"][0]["output"]["video"]) if book.get("data") else ""
    ext = "." + video.rsplit(".", 1)[-1] if "." in video.rsplit("/", 1)[-1] else ".png"
    endpoint = ctx.c["endpoint"]["url"]
    return Task(
        name="image-edit",
        group="augment-image-edit",
        image=ctx.k["augmentation_image"],
        resource="gpu-augment",
        script="/tmp/run_image_edit.sh",
        step="image-edit",
        python="uv run python",
        summary="OV -> solder-light restyling through the image-edit endpoint, aligned back by MI",
        credentials=HF_TOKEN,
        environment={"IMAGE_EDIT_ENDPOINT": endpoint, "IMAGE_EDIT_MODEL": MODEL_ID},
        inputs={"input_dir": {"task": upstream}},
        spec={
            "input_dir": ref("input_dir"),
            "output_dir": "{{output}}",
            "layout": layout,
            "endpoint": endpoint,
            "model": MODEL_ID,
            "prompt": book["captioning"]["llm"]["text"],
            "generation": dict(book["augmentation"]["parameters"]),
            "output_ext": ext,
            "concurrency": 4,
            "timeout_s": 300,
            "max_retries": int(book["pipeline"]["retry"]),
            "align": True,
            "align_params": dict(book["data_processing"]["alignment"]),
        },
        sources=_edit_sources(book),
        output=ctx.out(stage),
    )
