"""Planning: a validated config -> the task list of its flow variant (spec/flows.md), inputs numbered.

One `flow_<variant>` function per variant of conf/flow/; the task builders live in tasks_render
(render, image-edit), tasks_anomalygen (finetune, inference) and tasks_setup (downloads).
compiler.render turns the planned tasks into the OSMO document.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from compiler.flows import final_stage, takes_run_name
from compiler.rules import finetune_scheduled
from compiler.task import Context, Task, assign_inputs
from compiler.tasks_anomalygen import finetune, infer, manual_infer, model_inputs, raw_dataset
from compiler.tasks_render import image_edit, sdg_and_crop, usd2roi_day1, usd2roi_replicator
from compiler.tasks_setup import FLOWS as SETUP_FLOWS

__all__ = ["Task", "plan_tasks"]


def flow_texture(ctx: Context) -> list[Task]:
    tasks = [usd2roi_replicator(ctx), image_edit(ctx, "usd2roi-replicator", "cells", "augment")]
    if finetune_scheduled(ctx.c):
        tasks.append(finetune(ctx, "pcb"))
    inputs = {
        "clean_in": {"task": "image-edit"},
        "mask_in": {"task": "usd2roi-replicator"},
        "submask_base_in": raw_dataset(ctx, "pcb"),
        **model_inputs(ctx, "pcb"),
    }
    tasks.append(infer(ctx, "infer-day0", inputs, None))
    return tasks


def flow_good(ctx: Context) -> list[Task]:
    return [usd2roi_replicator(ctx), image_edit(ctx, "usd2roi-replicator", "cells", "augment")]


def flow_structural(ctx: Context) -> list[Task]:
    return [sdg_and_crop(ctx), image_edit(ctx, "sdg-and-crop", "modes", "structural_defect_edited")]


def flow_real_alignment(ctx: Context) -> list[Task]:
    render = bool(ctx.k["use_usd2roi_day1"])
    tasks = [usd2roi_day1(ctx)] if render else []
    if finetune_scheduled(ctx.c):
        tasks.append(finetune(ctx, ctx.uc))
    if not render:
        return [*tasks, manual_infer(ctx)]
    inputs = {
        "usd2roi_in": {"task": "usd2roi-day1"},
        "submask_base_in": raw_dataset(ctx, ctx.uc),
        **model_inputs(ctx, ctx.uc),
    }
    return [*tasks, infer(ctx, "infer-day1", inputs, ctx.k["infer_gpu"])]


def flow_manual_roi(ctx: Context) -> list[Task]:
    tasks = [finetune(ctx, ctx.uc)] if finetune_scheduled(ctx.c) else []
    return [*tasks, manual_infer(ctx)]


def flow_finetune(ctx: Context) -> list[Task]:
    return [finetune(ctx, ctx.uc)]


FLOWS: dict[str, Callable[[Context], list[Task]]] = {
    "texture": flow_texture,
    "good": flow_good,
    "structural": flow_structural,
    "real_alignment": flow_real_alignment,
    "manual_roi": flow_manual_roi,
    "finetune": flow_finetune,
    **SETUP_FLOWS,
}


def plan_tasks(config: dict[str, Any]) -> list[Task]:
    """The flow variant's tasks, inputs numbered, each spec carrying the flow facts its pod checks."""
    tasks = FLOWS[config["flow"]["variant"]](Context(config))
    # Facts the compiled file's readers need and its YAML does not otherwise say (dig_stages._common.CONTRACT_KEY).
    final = final_stage(config)
    facts = {
        "flow": config["flow"]["key"],
        "variant": config["flow"]["variant"],
        "takes_run_name": takes_run_name(config),
        "final_stage": list(final) if final else None,
    }
    planned = []
    for task in tasks:
        # stage: the directory under runs/<name>/ the task writes (setup tasks write fixed URLs: None)
        stage = task.output.rsplit("/", 1)[-1] if facts["takes_run_name"] else None
        planned.append(
            assign_inputs(replace(task, spec={**task.spec, "contract": {**facts, "stage": stage}}))
        )
    return planned
