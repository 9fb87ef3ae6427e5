"""The AnomalyGen tasks: finetune, and inference whose named inputs are its spec's path keys."""

from __future__ import annotations

import json

from compiler.rules import finetune_scheduled
from compiler.task import HF_TOKEN, Context, Input, Task, ref

VALIDATION_JSONL = "/tmp/validation/validation.jsonl"


def finetune(ctx: Context, dataset_usecase: str) -> Task:
    from dig_stages.finetune import render_training_config

    k, book = ctx.k, ctx.c["cookbooks"]["ag_config"]
    rendered = render_training_config(
        book, exp_name=ctx.run, dataset_dir=ref("dataset"), validation_jsonl=VALIDATION_JSONL
    )
    trainer = book.get("trainer", {})
    return Task(
        name="finetune",
        group="finetune-job",
        image=k["anomalygen_image"],
        resource="gpu-train",
        script="/tmp/finetune.sh",
        step="finetune",
        summary="AnomalyGen finetune (validate dataset, validation set, torchrun ag_train)",
        credentials=HF_TOKEN,
        environment={
            "NUM_GPUS": str(k["train_gpu"]),
            "EXP_NAME": ctx.run,
            "PRETRAINED_SRC": ref("pretrained") + "/pretrained",
            "DATASET_DIR": ref("dataset"),
        },
        inputs={
            "pretrained": {"url": ctx.url("models", "pretrained")},
            "dataset": {"url": ctx.url("datasets", dataset_usecase, "raw")},
        },
        cookbooks=[ctx.cookbook("/tmp/ag_config_template.yaml", "ag_config", rendered)],
        spec={
            "pretrained_src": ref("pretrained") + "/pretrained",
            "dataset_dir": ref("dataset"),
            "config": "/tmp/ag_config_template.yaml",
            "output_dir": "{{output}}",
            "results_dir": "{{output}}/results",
            "exp_name": ctx.run,
            "num_gpus": k["train_gpu"],
            "usecase": dataset_usecase,
            "max_iter": trainer.get("max_iter"),
            "save_iter": book.get("checkpoint", {}).get("save_iter"),
            "validation_iter": trainer.get("validation_iter"),
            "logging_iter": trainer.get("logging_iter"),
        },
        sources={
            "num_gpus": "knobs.train_gpu",
            "exp_name": "name",
            "max_iter": "cookbooks.ag_config.trainer.max_iter",
            "save_iter": "cookbooks.ag_config.checkpoint.save_iter",
            "validation_iter": "cookbooks.ag_config.trainer.validation_iter",
            "logging_iter": "cookbooks.ag_config.trainer.logging_iter",
        },
        output=ctx.out("finetune"),
    )


INFER_SOURCES = {
    "anomaly_types": "knobs.anomaly_types_json",
    "checkpoint_step": "knobs.checkpoint_step",
    "num_sdg": "knobs.num_sdg",
    "spatial_dependency": "knobs.default_spatial_dependency",
    "roi_prompt": "knobs.roi_prompt",
    "model_size": "knobs.model_size",
    "num_gpus": "knobs.infer_gpu",
    "exp_name": "name",
}


def _infer_env(ctx: Context, num_gpus: int | None) -> dict[str, str]:
    k = ctx.k
    env = {
        "ANOMALY_TYPES_JSON": json.dumps(k["anomaly_types_json"], separators=(",", ":"), allow_nan=False),
        "CHECKPOINT_STEP": str(k["checkpoint_step"]),
        "NUM_SDG": str(k["num_sdg"]),
    }
    if num_gpus is not None:
        env["NUM_GPUS"] = str(num_gpus)
    return env | {
        "DEFAULT_SPATIAL_DEPENDENCY": k["default_spatial_dependency"],
        "EXP_NAME": ctx.run,
        "MODEL_SIZE": k["model_size"],
    }


def infer(ctx: Context, step: str, inputs: dict[str, Input], num_gpus: int | None) -> Task:
    """Inference for `step`: each input's name is the spec key that holds its mounted path."""
    k = ctx.k
    return Task(
        name="infer-all-defects",
        group="anomaly-infer",
        image=k["anomalygen_image"],
        resource="gpu-infer",
        script="/tmp/run_infer.sh",
        step=step,
        summary="stage the dataset + defect spec, pick the checkpoint step, run AnomalyGen SDG with labels",
        credentials=HF_TOKEN,
        environment=_infer_env(ctx, num_gpus),
        inputs=inputs,
        spec={
            **{name: ref(name) for name in inputs},
            "output_dir": "{{output}}",
            "anomaly_types": k["anomaly_types_json"],
            "checkpoint_step": k["checkpoint_step"],
            "fresh_checkpoint": finetune_scheduled(ctx.c),
            "num_sdg": k["num_sdg"],
            "spatial_dependency": k["default_spatial_dependency"],
            "roi_prompt": k.get("roi_prompt"),
            "exp_name": ctx.run,
            "model_size": k["model_size"],
            "num_gpus": num_gpus,
        },
        sources=dict(INFER_SOURCES),
        output=ctx.out("anomaly"),
    )


def model_inputs(ctx: Context, usecase: str) -> dict[str, Input]:
    """The inputs every inference reads after its dataset: the pretrained tree and the checkpoint."""
    checkpoint = {"task": "finetune"} if finetune_scheduled(ctx.c) else {"url": ctx.url("models", usecase)}
    return {"pretrained_src_in": {"url": ctx.url("models", "pretrained")}, "ckpt_dataset": checkpoint}


def raw_dataset(ctx: Context, usecase: str) -> Input:
    return {"url": ctx.url("datasets", usecase, "raw")}


def manual_infer(ctx: Context) -> Task:
    inputs: dict[str, Input] = {"inference_dataset": raw_dataset(ctx, ctx.uc), **model_inputs(ctx, ctx.uc)}
    return infer(ctx, "infer-manual", inputs, ctx.k["infer_gpu"])
