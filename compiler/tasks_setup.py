"""The setup flows' download tasks: checkpoints, raw datasets, the USD bundle, the pretrained tree."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from compiler.task import HF_TOKEN, Context, Input, Task, ref


@dataclass(frozen=True)
class Download:
    """What one setup task differs in; everything else is the same for all of them."""

    name: str
    step: str
    output: str
    spec: dict[str, Any]
    summary: str
    hf: bool = True  # reads from Hugging Face: the token, and no progress bars in the log
    inputs: dict[str, Input] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    resource: str = "cpu-download"
    script: str = "/tmp/run.sh"


def setup_task(ctx: Context, job: Download) -> Task:
    # Upstream order: the task's own variables first for `pretrained` (MODEL_SIZES), after for glass-data.
    progress = {"HF_HUB_DISABLE_PROGRESS_BARS": "1"} if job.hf else {}
    environment = job.env | progress if job.step == "setup-pretrained" else progress | job.env
    return Task(
        name=job.name,
        group=f"download-{job.name}",
        image=ctx.k["pretrained_image"],
        resource=job.resource,
        script=job.script,
        step=job.step,
        summary=job.summary,
        credentials=HF_TOKEN if job.hf else None,
        environment=environment,
        inputs=job.inputs,
        spec={"output_dir": "{{output}}", **job.spec},
        output=job.output,
    )


def _model(ctx: Context, uc: str) -> Task:
    return setup_task(
        ctx,
        Download(
            f"{uc}-model",
            "setup-model",
            ctx.url("models", uc),
            {"usecase": uc, "script_uc": ctx.c["usecase"]["setup_uc"]},
            summary=f"download the shipped {uc} AnomalyGen checkpoint and flatten it",
        ),
    )


def _data(ctx: Context, uc: str, summary: str) -> Download:
    return Download(f"{uc}-data", "setup-data", ctx.url("datasets", uc, "raw"), {"usecase": uc}, summary)


def flow_setup_pcb(ctx: Context) -> list[Task]:
    assets = Download(
        "pcb-assets",
        "setup-assets",
        ctx.url("datasets", "pcb", "assets"),
        {},
        summary="download the PCBA USD bundle (nvidia/Spark-AnomalyGen-USD)",
    )
    data = _data(ctx, "pcb", "prepare the PCB raw dataset (prepare_dataset_uc1)")
    return [_model(ctx, "pcb"), setup_task(ctx, data), setup_task(ctx, assets)]


def flow_setup_metal(ctx: Context) -> list[Task]:
    data = _data(
        ctx, "metal_surface", "prepare the magnetic-tile raw dataset (prepare_dataset_uc2, public GitHub)"
    )
    return [_model(ctx, "metal_surface"), setup_task(ctx, replace(data, hf=False))]


def flow_setup_glass(ctx: Context) -> list[Task]:
    from dig_stages.setup import GLASS_ZIP  # the file name the pod looks for, read by dig-preflight too

    data = _data(ctx, "glass", "prepare the glass raw dataset from mobile_screen.zip + HF masks")
    data = replace(
        data,
        spec={**data.spec, "zip_dir": ref("zip_dir"), "zip_filename": GLASS_ZIP},
        inputs={"zip_dir": {"url": ctx.k["uc3_zip_url_root"]}},
        env={"UC3_ZIP_DIR": ref("zip_dir")},
    )
    return [_model(ctx, "glass"), setup_task(ctx, data)]


def flow_setup_pretrained(ctx: Context) -> list[Task]:
    sizes = ctx.k["pretrained_model_sizes"]
    job = Download(
        "pretrained",
        "setup-pretrained",
        ctx.url("models", "pretrained"),
        {"model_sizes": sizes.split()},
        summary="download the shared pretrained tree into models/pretrained",
        env={"MODEL_SIZES": sizes},
        resource="cpu-download-large",
        script="/tmp/download_pretrained.sh",
    )
    return [setup_task(ctx, job)]


FLOWS: dict[str, Callable[[Context], list[Task]]] = {
    "setup_pcb": flow_setup_pcb,
    "setup_metal": flow_setup_metal,
    "setup_glass": flow_setup_glass,
    "setup_pretrained": flow_setup_pretrained,
}
