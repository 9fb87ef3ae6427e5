"""Plan: a validated config -> the workflow model (groups, tasks, inputs, outputs, files), as in spec/flows.md."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from compiler import render
from compiler.contract import cookbook_owner
from compiler.flows import final_stage, resource_classes, takes_run_name
from compiler.inject import stage_files
from compiler.rules import MODEL_ID, finetune_scheduled

NAME_TOKEN = "{{ name }}"  # the one submit-time variable (osmo workflow submit --set name=...)
HF_TOKEN = {"hf-token": {"HF_TOKEN": "token"}}
VALIDATION_JSONL = "/tmp/validation/validation.jsonl"
SPEC_PATH = "/tmp/dig/spec.json"
COOKBOOK = "cookbooks.augmentation_config_ovsl2sl"


@dataclass
class Task:
    name: str
    group: str
    image: str
    resource: str
    script: str  # in-pod launcher path (upstream script path)
    step: str  # dig_stages step
    summary: str
    spec: dict[str, Any]
    output: str
    inputs: list[dict[str, str]] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)
    credentials: dict[str, Any] | None = None
    cookbooks: list[tuple[str, str]] = field(default_factory=list)  # (in-pod path, text)
    python: str = "python3"
    # spec key (or align_params.<key>) -> the config key its value came from, for error messages
    sources: dict[str, str] = field(default_factory=dict)

    def to_dict(self, *, placeholders: bool = False) -> dict[str, Any]:
        task: dict[str, Any] = {
            "name": self.name,
            "lead": True,
            "image": self.image,
            "resource": self.resource,
        }
        if self.credentials:
            task["credentials"] = self.credentials
        if self.environment:
            task["environment"] = {k: str(v) for k, v in self.environment.items()}
        if self.inputs:
            task["inputs"] = self.inputs
        task["command"] = ["bash"]
        task["args"] = [self.script]
        files = [{"path": p, "contents": t} for p, t in self.cookbooks]
        files.append(
            {
                "path": self.script,
                "contents": render.launcher(
                    task=self.name, summary=self.summary, step=self.step, python=self.python
                ),
            }
        )
        files.append({"path": SPEC_PATH, "contents": render.spec_json(self.spec)})
        files.extend(stage_files(self.step, placeholders=placeholders))
        task["files"] = files
        task["outputs"] = [{"url": self.output}]
        return task


class Planner:
    """Builds the task list of one compile; one method per task kind of spec/flows.md."""

    def __init__(self, config: dict[str, Any]):
        self.c = config
        self.k = config["knobs"]
        self.root = config["dig_url_root"]
        self.run = config["name"] or NAME_TOKEN
        self.uc = config["usecase"]["key"]

    # -- helpers ---------------------------------------------------------------------------------
    def url(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def out(self, stage: str) -> str:
        return self.url("runs", self.run, stage)

    def source(self, book: str) -> str:
        owner = cookbook_owner(book)
        return f"cookbooks.{book} (conf/{owner}/{self.c[owner]['key']}.yaml)"

    # -- render side -----------------------------------------------------------------------------
    def usd2roi_replicator(self) -> Task:
        books, k = self.c["cookbooks"], self.k
        return Task(
            name="usd2roi-replicator",
            group="usd2roi-render",
            image=k["usd2roi_image"],
            resource="gpu-render",
            script="/tmp/run.sh",
            step="render-day0",
            summary="scan-grid render (Kit sdg_pipeline.py) + per-cell ROI crop (usd2roi_crop.py)",
            environment={"NVIDIA_DRIVER_CAPABILITIES": "all"},
            inputs=[{"url": self.url("datasets", "pcb", "assets")}],
            cookbooks=[
                (
                    "/tmp/pcba_target.yaml",
                    render.cookbook_text(books["pcba_target"], self.source("pcba_target")),
                ),
                (
                    "/tmp/day0_image.yaml",
                    render.cookbook_text(
                        render.day0_image(books["day0_image"], books["pcba_target"], k["render_patches"]),
                        self.source("day0_image"),
                    ),
                ),
                (
                    "/tmp/day0_crop.yaml",
                    render.cookbook_text(
                        render.day0_crop(books["day0_crop"], k["crop_max_emit"]), self.source("day0_crop")
                    ),
                ),
            ],
            spec={
                "assets_dir": "{{input:0}}",
                "output_dir": "{{output}}",
                "scene_filename": k["scene_filename"],
                "pcba_target": "/tmp/pcba_target.yaml",
                "image_config": "/tmp/day0_image.yaml",
                "crop_config": "/tmp/day0_crop.yaml",
            },
            output=self.out("usd2roi-components"),
        )

    def sdg_and_crop(self) -> Task:
        from dig_stages.structural import parse_defect_modes

        books, k = self.c["cookbooks"], self.k
        modes = parse_defect_modes(k["defect_modes"])
        book = render.defect_image(
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
            environment={"NVIDIA_DRIVER_CAPABILITIES": "all", "CROP_OFFSET": str(k["crop_offset"])},
            inputs=[{"url": self.url("datasets", "pcb", "assets")}],
            cookbooks=[
                (
                    "/tmp/pcba_target.yaml",
                    render.cookbook_text(books["pcba_target"], self.source("pcba_target")),
                ),
                ("/tmp/render_config.yaml", render.cookbook_text(book, self.source("defect_image"))),
            ],
            spec={
                "assets_dir": "{{input:0}}",
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
            output=self.out("structural_defect"),
        )

    def usd2roi_day1(self) -> Task:
        books, k = self.c["cookbooks"], self.k
        return Task(
            name="usd2roi-day1",
            group="usd2roi-render-day1",
            image=k["usd2roi_image"],
            resource="gpu-render",
            script="/tmp/run.sh",
            step="render-day1",
            summary="ortho render -> MI registration to the real photo -> per-ROI crop (container tools)",
            environment={"NVIDIA_DRIVER_CAPABILITIES": "all"},
            inputs=[{"url": self.url("datasets", "pcb", "assets")}],
            cookbooks=[
                (
                    "/tmp/usd2roi_day1.yaml",
                    render.cookbook_text(books["usd2roi_nvpcb"], self.source("usd2roi_nvpcb")),
                )
            ],
            spec={
                "assets_dir": "{{input:0}}",
                "output_dir": "{{output}}",
                "scene_filename": k["scene_filename"],
                "real_image_filename": k["real_image_filename"],
                "config": "/tmp/usd2roi_day1.yaml",
            },
            output=self.out("usd2roi-day1"),
        )

    def image_edit(self, upstream: str, layout: str, stage: str) -> Task:
        book = self.c["cookbooks"]["augmentation_config_ovsl2sl"]
        video = str(book["data"][0]["output"]["video"]) if book.get("data") else ""
        ext = "." + video.rsplit(".", 1)[-1] if "." in video.rsplit("/", 1)[-1] else ".png"
        endpoint = self.c["endpoint"]["url"]
        return Task(
            name="image-edit",
            group="augment-image-edit",
            image=self.k["augmentation_image"],
            resource="gpu-augment",
            script="/tmp/run_image_edit.sh",
            step="image-edit",
            python="uv run python",
            summary="OV -> solder-light restyling through the image-edit endpoint, aligned back by MI",
            credentials=HF_TOKEN,
            environment={"IMAGE_EDIT_ENDPOINT": endpoint, "IMAGE_EDIT_MODEL": MODEL_ID},
            inputs=[{"task": upstream}],
            spec={
                "input_dir": "{{input:0}}",
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
            sources={
                "prompt": f"{COOKBOOK}.captioning.llm.text",
                "generation": f"{COOKBOOK}.augmentation.parameters",
                "max_retries": f"{COOKBOOK}.pipeline.retry",
                "endpoint": "endpoint.url",
                **{
                    f"align_params.{key}": f"{COOKBOOK}.data_processing.alignment.{key}"
                    for key in book["data_processing"]["alignment"]
                },
            },
            output=self.out(stage),
        )

    # -- AnomalyGen side -------------------------------------------------------------------------
    def finetune(self, dataset_usecase: str) -> Task:
        from dig_stages.finetune import render_training_config

        k, book = self.k, self.c["cookbooks"]["ag_config"]
        rendered = render_training_config(
            book, exp_name=self.run, dataset_dir="{{input:1}}", validation_jsonl=VALIDATION_JSONL
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
                "EXP_NAME": self.run,
                "PRETRAINED_SRC": "{{input:0}}/pretrained",
                "DATASET_DIR": "{{input:1}}",
            },
            inputs=[
                {"url": self.url("models", "pretrained")},
                {"url": self.url("datasets", dataset_usecase, "raw")},
            ],
            cookbooks=[
                ("/tmp/ag_config_template.yaml", render.cookbook_text(rendered, self.source("ag_config")))
            ],
            spec={
                "pretrained_src": "{{input:0}}/pretrained",
                "dataset_dir": "{{input:1}}",
                "config": "/tmp/ag_config_template.yaml",
                "output_dir": "{{output}}",
                "results_dir": "{{output}}/results",
                "exp_name": self.run,
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
            output=self.out("finetune"),
        )

    def infer(
        self, step: str, inputs: list[dict[str, str]], paths: dict[str, str], num_gpus: int | None
    ) -> Task:
        k = self.k
        pairs = k["anomaly_types_json"]
        env = {
            "ANOMALY_TYPES_JSON": json.dumps(pairs, separators=(",", ":"), allow_nan=False),
            "CHECKPOINT_STEP": str(k["checkpoint_step"]),
            "NUM_SDG": str(k["num_sdg"]),
        }
        if num_gpus is not None:
            env["NUM_GPUS"] = str(num_gpus)
        env |= {
            "DEFAULT_SPATIAL_DEPENDENCY": k["default_spatial_dependency"],
            "EXP_NAME": self.run,
            "MODEL_SIZE": k["model_size"],
        }
        return Task(
            name="infer-all-defects",
            group="anomaly-infer",
            image=k["anomalygen_image"],
            resource="gpu-infer",
            script="/tmp/run_infer.sh",
            step=step,
            summary="stage the dataset + defect spec, pick the checkpoint step, run AnomalyGen SDG with labels",
            credentials=HF_TOKEN,
            environment=env,
            inputs=inputs,
            spec={
                **paths,
                "output_dir": "{{output}}",
                "anomaly_types": pairs,
                "checkpoint_step": k["checkpoint_step"],
                "fresh_checkpoint": finetune_scheduled(self.c),
                "num_sdg": k["num_sdg"],
                "spatial_dependency": k["default_spatial_dependency"],
                "roi_prompt": k.get("roi_prompt"),
                "exp_name": self.run,
                "model_size": k["model_size"],
                "num_gpus": num_gpus,
            },
            sources={
                "anomaly_types": "knobs.anomaly_types_json",
                "checkpoint_step": "knobs.checkpoint_step",
                "num_sdg": "knobs.num_sdg",
                "spatial_dependency": "knobs.default_spatial_dependency",
                "roi_prompt": "knobs.roi_prompt",
                "model_size": "knobs.model_size",
                "num_gpus": "knobs.infer_gpu",
                "exp_name": "name",
            },
            output=self.out("anomaly"),
        )

    def checkpoint_input(self, usecase: str) -> dict[str, str]:
        return {"task": "finetune"} if finetune_scheduled(self.c) else {"url": self.url("models", usecase)}

    # -- setup -------------------------------------------------------------------------------------
    def setup_task(
        self,
        name: str,
        step: str,
        output: str,
        spec: dict[str, Any],
        *,
        hf: bool = True,
        inputs: list[dict[str, str]] | None = None,
        env: dict[str, str] | None = None,
        resource: str = "cpu-download",
        script: str = "/tmp/run.sh",
        summary: str = "",
    ) -> Task:
        # Upstream order: the task's own variables first for `pretrained` (MODEL_SIZES), after for glass-data.
        progress = {"HF_HUB_DISABLE_PROGRESS_BARS": "1"} if hf else {}
        environment = (env or {}) | progress if step == "setup-pretrained" else progress | (env or {})
        return Task(
            name=name,
            group=f"download-{name}",
            image=self.k["pretrained_image"],
            resource=resource,
            script=script,
            step=step,
            summary=summary,
            credentials=HF_TOKEN if hf else None,
            environment=environment,
            inputs=inputs or [],
            spec={"output_dir": "{{output}}", **spec},
            output=output,
        )

    # -- flows -------------------------------------------------------------------------------------
    def tasks(self) -> list[Task]:
        variant = self.c["flow"]["variant"]
        return getattr(self, f"flow_{variant}")()

    def flow_texture(self) -> list[Task]:
        tasks = [self.usd2roi_replicator(), self.image_edit("usd2roi-replicator", "cells", "augment")]
        if finetune_scheduled(self.c):
            tasks.append(self.finetune("pcb"))
        inputs = [
            {"task": "image-edit"},
            {"task": "usd2roi-replicator"},
            {"url": self.url("datasets", "pcb", "raw")},
            {"url": self.url("models", "pretrained")},
            self.checkpoint_input("pcb"),
        ]
        paths = {
            "clean_in": "{{input:0}}",
            "mask_in": "{{input:1}}",
            "submask_base_in": "{{input:2}}",
            "pretrained_src_in": "{{input:3}}",
            "ckpt_dataset": "{{input:4}}",
        }
        tasks.append(self.infer("infer-day0", inputs, paths, None))
        return tasks

    def flow_good(self) -> list[Task]:
        return [self.usd2roi_replicator(), self.image_edit("usd2roi-replicator", "cells", "augment")]

    def flow_structural(self) -> list[Task]:
        return [self.sdg_and_crop(), self.image_edit("sdg-and-crop", "modes", "structural_defect_edited")]

    def flow_real_alignment(self) -> list[Task]:
        k, uc = self.k, self.uc
        tasks = []
        if k["use_usd2roi_day1"]:
            tasks.append(self.usd2roi_day1())
        if finetune_scheduled(self.c):
            tasks.append(self.finetune(uc))
        common = [
            {"url": self.url("datasets", uc, "raw")},
            {"url": self.url("models", "pretrained")},
            self.checkpoint_input(uc),
        ]
        if k["use_usd2roi_day1"]:
            inputs = [{"task": "usd2roi-day1"}, *common]
            paths = {
                "usd2roi_in": "{{input:0}}",
                "submask_base_in": "{{input:1}}",
                "pretrained_src_in": "{{input:2}}",
                "ckpt_dataset": "{{input:3}}",
            }
            tasks.append(self.infer("infer-day1", inputs, paths, k["infer_gpu"]))
        else:
            tasks.append(self._manual_infer(common))
        return tasks

    def _manual_infer(self, inputs: list[dict[str, str]]) -> Task:
        paths = {
            "inference_dataset": "{{input:0}}",
            "pretrained_src_in": "{{input:1}}",
            "ckpt_dataset": "{{input:2}}",
        }
        return self.infer("infer-manual", inputs, paths, self.k["infer_gpu"])

    def flow_manual_roi(self) -> list[Task]:
        uc = self.uc
        tasks = [self.finetune(uc)] if finetune_scheduled(self.c) else []
        tasks.append(
            self._manual_infer(
                [
                    {"url": self.url("datasets", uc, "raw")},
                    {"url": self.url("models", "pretrained")},
                    self.checkpoint_input(uc),
                ]
            )
        )
        return tasks

    def flow_finetune(self) -> list[Task]:
        return [self.finetune(self.uc)]

    def _setup_model(self, uc: str) -> Task:
        return self.setup_task(
            f"{uc}-model",
            "setup-model",
            self.url("models", uc),
            {"usecase": uc, "script_uc": self.c["usecase"]["setup_uc"]},
            summary=f"download the shipped {uc} AnomalyGen checkpoint and flatten it",
        )

    def flow_setup_pcb(self) -> list[Task]:
        return [
            self._setup_model("pcb"),
            self.setup_task(
                "pcb-data",
                "setup-data",
                self.url("datasets", "pcb", "raw"),
                {"usecase": "pcb"},
                summary="prepare the PCB raw dataset (prepare_dataset_uc1)",
            ),
            self.setup_task(
                "pcb-assets",
                "setup-assets",
                self.url("datasets", "pcb", "assets"),
                {},
                summary="download the PCBA USD bundle (nvidia/Spark-AnomalyGen-USD)",
            ),
        ]

    def flow_setup_metal(self) -> list[Task]:
        return [
            self._setup_model("metal_surface"),
            self.setup_task(
                "metal_surface-data",
                "setup-data",
                self.url("datasets", "metal_surface", "raw"),
                {"usecase": "metal_surface"},
                hf=False,
                summary="prepare the magnetic-tile raw dataset (prepare_dataset_uc2, public GitHub)",
            ),
        ]

    def flow_setup_glass(self) -> list[Task]:
        from dig_stages.setup import GLASS_ZIP  # the file name the pod looks for, read by dig-preflight too

        return [
            self._setup_model("glass"),
            self.setup_task(
                "glass-data",
                "setup-data",
                self.url("datasets", "glass", "raw"),
                {"usecase": "glass", "zip_dir": "{{input:0}}", "zip_filename": GLASS_ZIP},
                inputs=[{"url": self.k["uc3_zip_url_root"]}],
                env={"UC3_ZIP_DIR": "{{input:0}}"},
                summary="prepare the glass raw dataset from mobile_screen.zip + HF masks",
            ),
        ]

    def flow_setup_pretrained(self) -> list[Task]:
        return [
            self.setup_task(
                "pretrained",
                "setup-pretrained",
                self.url("models", "pretrained"),
                {"model_sizes": self.k["pretrained_model_sizes"].split()},
                env={"MODEL_SIZES": self.k["pretrained_model_sizes"]},
                resource="cpu-download-large",
                script="/tmp/download_pretrained.sh",
                summary="download the shared pretrained tree into models/pretrained",
            )
        ]


_PREFIX = {"gpu-render": "render", "gpu-augment": "augment", "gpu-infer": "infer", "gpu-train": "train"}


def resources(config: dict[str, Any]) -> dict[str, Any]:
    k = config["knobs"]
    out: dict[str, Any] = {}
    for name in resource_classes(config):
        if name in _PREFIX:
            p = _PREFIX[name]
            out[name] = {
                "gpu": k[f"{p}_gpu"],
                "cpu": k[f"{p}_cpu"],
                "memory": k[f"{p}_memory"],
                "storage": k[f"{p}_storage"],
                "platform": k["platform"],
            }
        elif name == "cpu-download":
            out[name] = {
                "cpu": k["cpu"],
                "memory": k["memory"],
                "storage": k["storage"],
                "platform": k["platform"],
            }
        else:
            out[name] = {
                "cpu": k["cpu_large"],
                "memory": k["memory_large"],
                "storage": k["storage_large"],
                "platform": k["platform"],
            }
    return out


def plan_tasks(config: dict[str, Any]) -> list[Task]:
    tasks = Planner(config).tasks()
    # Facts the compiled file's readers need and its YAML does not otherwise say (dig_stages._common.CONTRACT_KEY).
    final = final_stage(config)
    facts = {
        "flow": config["flow"]["key"],
        "variant": config["flow"]["variant"],
        "takes_run_name": takes_run_name(config),
        "final_stage": list(final) if final else None,
    }
    for task in tasks:
        # stage: the directory under runs/<name>/ the task writes (setup tasks write fixed URLs: None)
        stage = task.output.rsplit("/", 1)[-1] if facts["takes_run_name"] else None
        task.spec["contract"] = {**facts, "stage": stage}
    return tasks


def build_workflow(
    config: dict[str, Any], tasks: list[Task] | None = None, *, placeholders: bool = False
) -> dict[str, Any]:
    """The OSMO v2 document of one compile, as plain dicts in canonical key order."""
    k = config["knobs"]
    tasks = plan_tasks(config) if tasks is None else tasks
    return {
        "version": 2,
        "workflow": {
            "name": k["workflow_name"],
            "timeout": {"exec_timeout": k["exec_timeout"], "queue_timeout": k["queue_timeout"]},
            "resources": resources(config),
            "groups": [{"name": t.group, "tasks": [t.to_dict(placeholders=placeholders)]} for t in tasks],
        },
    }
