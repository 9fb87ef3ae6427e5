"""Fidelity: each compiled workflow keeps the upstream task contract of spec/flows.md (written out here by hand).

Workflow name and timeouts, groups and tasks in order, images, resource classes and sizes,
credentials, inputs in order, output URLs and the environment keys the pods still read.
"""

from __future__ import annotations

import json

import pytest
import yaml

R = "s3://osmo-workflows/dig"
N = "{{ name }}"
SIM, AUG, AG = (
    "nvcr.io/nvidia/paidf-simulation:1.0.0",
    "nvcr.io/nvidia/paidf-augmentation:1.0.0",
    "nvcr.io/nvidia/paidf-anomalygen:1.0.0",
)
HF = {"hf-token": {"HF_TOKEN": "token"}}
RENDER = {"gpu": 1, "cpu": 4, "memory": "32Gi", "storage": "50Gi", "platform": "default"}
AUGMENT = {"gpu": 1, "cpu": 1, "memory": "32Gi", "storage": "25Gi", "platform": "default"}
INFER = {"gpu": 1, "cpu": 4, "memory": "64Gi", "storage": "200Gi", "platform": "default"}
TRAIN = {"gpu": 1, "cpu": 16, "memory": "64Gi", "storage": "300Gi", "platform": "default"}
DL = {"cpu": 1, "memory": "2Gi", "storage": "10Gi", "platform": "default"}
INFER_ENV = [
    "ANOMALY_TYPES_JSON",
    "CHECKPOINT_STEP",
    "NUM_SDG",
    "DEFAULT_SPATIAL_DEPENDENCY",
    "EXP_NAME",
    "MODEL_SIZE",
]
INFER_ENV_D1 = [
    "ANOMALY_TYPES_JSON",
    "CHECKPOINT_STEP",
    "NUM_SDG",
    "NUM_GPUS",
    "DEFAULT_SPATIAL_DEPENDENCY",
    "EXP_NAME",
    "MODEL_SIZE",
]
FT_ENV = ["NUM_GPUS", "EXP_NAME", "PRETRAINED_SRC", "DATASET_DIR"]


def t(group, task, image, resource, inputs, output, creds=None, env=()):
    return (group, task, image, resource, inputs, output, creds, list(env))


def render_task():
    return t(
        "usd2roi-render",
        "usd2roi-replicator",
        SIM,
        "gpu-render",
        [{"url": f"{R}/datasets/pcb/assets"}],
        f"{R}/runs/{N}/usd2roi-components",
        None,
        ["NVIDIA_DRIVER_CAPABILITIES"],
    )


def edit_task(upstream, out):
    return t(
        "augment-image-edit",
        "image-edit",
        AUG,
        "gpu-augment",
        [{"task": upstream}],
        f"{R}/runs/{N}/{out}",
        HF,
        ["IMAGE_EDIT_ENDPOINT", "IMAGE_EDIT_MODEL"],
    )


def finetune_task(uc):
    return t(
        "finetune-job",
        "finetune",
        AG,
        "gpu-train",
        [{"url": f"{R}/models/pretrained"}, {"url": f"{R}/datasets/{uc}/raw"}],
        f"{R}/runs/{N}/finetune",
        HF,
        FT_ENV,
    )


def ckpt(uc, fresh):
    return {"task": "finetune"} if fresh else {"url": f"{R}/models/{uc}"}


def day0(fresh):
    tasks = [render_task(), edit_task("usd2roi-replicator", "augment")]
    if fresh:
        tasks.append(finetune_task("pcb"))
    tasks.append(
        t(
            "anomaly-infer",
            "infer-all-defects",
            AG,
            "gpu-infer",
            [
                {"task": "image-edit"},
                {"task": "usd2roi-replicator"},
                {"url": f"{R}/datasets/pcb/raw"},
                {"url": f"{R}/models/pretrained"},
                ckpt("pcb", fresh),
            ],
            f"{R}/runs/{N}/anomaly",
            HF,
            INFER_ENV,
        )
    )
    return (
        "texture_defect_gen_day0",
        "28h",
        "2h",
        {"gpu-render": RENDER, "gpu-augment": AUGMENT, "gpu-infer": INFER, "gpu-train": TRAIN},
        tasks,
    )


def day1_real(fresh):
    tasks = [
        t(
            "usd2roi-render-day1",
            "usd2roi-day1",
            SIM,
            "gpu-render",
            [{"url": f"{R}/datasets/pcb/assets"}],
            f"{R}/runs/{N}/usd2roi-day1",
            None,
            ["NVIDIA_DRIVER_CAPABILITIES"],
        )
    ]
    if fresh:
        tasks.append(finetune_task("pcb"))
    tasks.append(
        t(
            "anomaly-infer",
            "infer-all-defects",
            AG,
            "gpu-infer",
            [
                {"task": "usd2roi-day1"},
                {"url": f"{R}/datasets/pcb/raw"},
                {"url": f"{R}/models/pretrained"},
                ckpt("pcb", fresh),
            ],
            f"{R}/runs/{N}/anomaly",
            HF,
            INFER_ENV_D1,
        )
    )
    return (
        "texture_defect_gen_day1_real_alignment",
        "20h",
        "2h",
        {"gpu-render": RENDER, "gpu-infer": INFER, "gpu-train": TRAIN},
        tasks,
    )


def manual(uc, fresh):
    tasks = [finetune_task(uc)] if fresh else []
    tasks.append(
        t(
            "anomaly-infer",
            "infer-all-defects",
            AG,
            "gpu-infer",
            [{"url": f"{R}/datasets/{uc}/raw"}, {"url": f"{R}/models/pretrained"}, ckpt(uc, fresh)],
            f"{R}/runs/{N}/anomaly",
            HF,
            INFER_ENV_D1,
        )
    )
    return (
        "texture_defect_gen_day1_manual_roi",
        "20h",
        "2h",
        {"gpu-infer": INFER, "gpu-train": TRAIN},
        tasks,
    )


def setup_model(uc):
    return t(
        f"download-{uc}-model",
        f"{uc}-model",
        AG,
        "cpu-download",
        [],
        f"{R}/models/{uc}",
        HF,
        ["HF_HUB_DISABLE_PROGRESS_BARS"],
    )


EXPECTED = {
    "day0/pcb__0603_H100__pretrained": day0(False),
    "day0/pcb__1152819000__finetune": day0(True),
    "good_image/pcb__0603_H100": (
        "good_image_gen",
        "4h",
        "2h",
        {"gpu-render": RENDER, "gpu-augment": AUGMENT},
        [render_task(), edit_task("usd2roi-replicator", "augment")],
    ),
    "structural/pcb__0603_H100": (
        "structural_defect_gen",
        "4h",
        "4h",
        {"gpu-render": RENDER, "gpu-augment": AUGMENT},
        [
            t(
                "isaac-render-defect",
                "sdg-and-crop",
                SIM,
                "gpu-render",
                [{"url": f"{R}/datasets/pcb/assets"}],
                f"{R}/runs/{N}/structural_defect",
                None,
                ["NVIDIA_DRIVER_CAPABILITIES", "CROP_OFFSET"],
            ),
            edit_task("sdg-and-crop", "structural_defect_edited"),
        ],
    ),
    "day1/pcb__0603_H100__pretrained": day1_real(False),
    "day1/pcb__1152819000__finetune": day1_real(True),
    "day1/glass__pretrained": manual("glass", False),
    "day1/metal_surface__finetune": manual("metal_surface", True),
    "day1_manual_roi/pcb__finetune": manual("pcb", True),
    "finetune/glass": ("finetune", "28h", "2h", {"gpu-train": TRAIN}, [finetune_task("glass")]),
    "setup/pcb": (
        "setup_pcb",
        "1h",
        "1h",
        {"cpu-download": DL},
        [
            setup_model("pcb"),
            t(
                "download-pcb-data",
                "pcb-data",
                AG,
                "cpu-download",
                [],
                f"{R}/datasets/pcb/raw",
                HF,
                ["HF_HUB_DISABLE_PROGRESS_BARS"],
            ),
            t(
                "download-pcb-assets",
                "pcb-assets",
                AG,
                "cpu-download",
                [],
                f"{R}/datasets/pcb/assets",
                HF,
                ["HF_HUB_DISABLE_PROGRESS_BARS"],
            ),
        ],
    ),
    "setup/metal_surface": (
        "setup_metal",
        "1h",
        "1h",
        {"cpu-download": DL},
        [
            setup_model("metal_surface"),
            t(
                "download-metal_surface-data",
                "metal_surface-data",
                AG,
                "cpu-download",
                [],
                f"{R}/datasets/metal_surface/raw",
                None,
                [],
            ),
        ],
    ),
    "setup/glass": (
        "setup_glass",
        "1h",
        "1h",
        {"cpu-download": DL},
        [
            setup_model("glass"),
            t(
                "download-glass-data",
                "glass-data",
                AG,
                "cpu-download",
                [{"url": f"{R}/uploads/glass-zip"}],
                f"{R}/datasets/glass/raw",
                HF,
                ["HF_HUB_DISABLE_PROGRESS_BARS", "UC3_ZIP_DIR"],
            ),
        ],
    ),
    "setup_pretrained/shared": (
        "setup_pretrained",
        "1h",
        "1h",
        {"cpu-download-large": {"cpu": 1, "memory": "16Gi", "storage": "220Gi", "platform": "default"}},
        [
            t(
                "download-pretrained",
                "pretrained",
                AG,
                "cpu-download-large",
                [],
                f"{R}/models/pretrained",
                HF,
                ["MODEL_SIZES", "HF_HUB_DISABLE_PROGRESS_BARS"],
            )
        ],
    ),
}


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_task_contract_matches_upstream(key, matrix_texts):
    name, exec_t, queue_t, resources, tasks = EXPECTED[key]
    wf = yaml.load(matrix_texts[f"{key}.yaml"], Loader=yaml.CSafeLoader)["workflow"]
    assert wf["name"] == name
    assert wf["timeout"] == {"exec_timeout": exec_t, "queue_timeout": queue_t}
    assert wf["resources"] == resources
    got = []
    for group in wf["groups"]:
        assert len(group["tasks"]) == 1 and group["tasks"][0]["lead"] is True
        task = group["tasks"][0]
        assert task["command"] == ["bash"]
        got.append(
            (
                group["name"],
                task["name"],
                task["image"],
                task["resource"],
                task.get("inputs", []),
                task["outputs"][0]["url"],
                task.get("credentials"),
                list(task.get("environment", {})),
            )
        )
    assert got == tasks


ENV_VALUES = {
    "day0/pcb__0603_H100__finetune": {
        "usd2roi-replicator": {"NVIDIA_DRIVER_CAPABILITIES": "all"},
        "image-edit": {
            "IMAGE_EDIT_ENDPOINT": "http://qwen-image-edit-nvpcb-ovsl2sl.osmo-nims.svc.cluster.local:8000/v1",
            "IMAGE_EDIT_MODEL": "nvidia/Qwen-Image-Edit-NVPCB-OVSL2SL",
        },
        "finetune": {
            "NUM_GPUS": "1",
            "EXP_NAME": N,
            "PRETRAINED_SRC": "{{input:0}}/pretrained",
            "DATASET_DIR": "{{input:1}}",
        },
        "infer-all-defects": {
            "ANOMALY_TYPES_JSON": '[["IC","bridge"],["passive_component","excess_solder"],'
            '["passive_component","missing"]]',
            "CHECKPOINT_STEP": "14000",
            "NUM_SDG": "30",
            "DEFAULT_SPATIAL_DEPENDENCY": "cad",
            "EXP_NAME": N,
            "MODEL_SIZE": "2b",
        },
    },
    "structural/pcb__0603_H100": {"sdg-and-crop": {"NVIDIA_DRIVER_CAPABILITIES": "all", "CROP_OFFSET": "10"}},
    "day1/metal_surface__pretrained": {
        "infer-all-defects": {
            "ANOMALY_TYPES_JSON": '[["metal_surface","MT_Blowhole"],["metal_surface","MT_Break"],'
            '["metal_surface","MT_Crack"],["metal_surface","MT_Fray"],["metal_surface","MT_Uneven"]]',
            "CHECKPOINT_STEP": "10000",
            "NUM_SDG": "30",
            "NUM_GPUS": "1",
            "DEFAULT_SPATIAL_DEPENDENCY": "cad",
            "EXP_NAME": N,
            "MODEL_SIZE": "2b",
        }
    },
    "setup/glass": {"glass-data": {"HF_HUB_DISABLE_PROGRESS_BARS": "1", "UC3_ZIP_DIR": "{{input:0}}"}},
    "setup_pretrained/shared": {"pretrained": {"MODEL_SIZES": "2B", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}},
}


@pytest.mark.parametrize("key", sorted(ENV_VALUES))
def test_environment_values_match_upstream(key, matrix_texts):
    wf = yaml.load(matrix_texts[f"{key}.yaml"], Loader=yaml.CSafeLoader)["workflow"]
    tasks = {t["name"]: t for g in wf["groups"] for t in g["tasks"]}
    for name, env in ENV_VALUES[key].items():
        assert tasks[name]["environment"] == env, name


def test_day1_without_usd2roi_render_uses_manual_roi_wiring(compile_args):
    wf = yaml.safe_load(compile_args("flow=day1", "knobs.use_usd2roi_day1=false").text)["workflow"]
    assert wf["name"] == "texture_defect_gen_day1_real_alignment"
    assert [g["name"] for g in wf["groups"]] == ["anomaly-infer"]
    assert "gpu-render" in wf["resources"]  # the class list is not gated upstream either
    infer = wf["groups"][0]["tasks"][0]
    assert infer["inputs"] == [
        {"url": f"{R}/datasets/pcb/raw"},
        {"url": f"{R}/models/pretrained"},
        {"url": f"{R}/models/pcb"},
    ]
    assert "-m dig_stages infer-manual" in _file(infer, "/tmp/run_infer.sh")


def _task(text, name):
    wf = yaml.load(text, Loader=yaml.CSafeLoader)["workflow"]
    return next(t for g in wf["groups"] for t in g["tasks"] if t["name"] == name)


def _file(task, path):
    return next(f["contents"] for f in task["files"] if f["path"] == path)


def test_day1_per_usecase_defaults_are_compiled_in(matrix_texts):
    glass = _task(matrix_texts["day1/glass__pretrained.yaml"], "infer-all-defects")
    metal = _task(matrix_texts["day1/metal_surface__pretrained.yaml"], "infer-all-defects")
    pcb = _task(matrix_texts["day1/pcb__0603_H100__pretrained.yaml"], "infer-all-defects")
    assert glass["environment"]["CHECKPOINT_STEP"] == "9000"
    assert json.loads(glass["environment"]["ANOMALY_TYPES_JSON"]) == [
        ["Phone", "oil"],
        ["Phone", "scratch"],
        ["Phone", "stain"],
    ]
    assert metal["environment"]["CHECKPOINT_STEP"] == "10000"
    assert len(json.loads(metal["environment"]["ANOMALY_TYPES_JSON"])) == 5
    assert pcb["environment"]["CHECKPOINT_STEP"] == "14000"
    assert json.loads(pcb["environment"]["ANOMALY_TYPES_JSON"]) == [["passive_component", "missing"]]
    spec = json.loads(_file(glass, "/tmp/dig/spec.json"))
    assert spec["checkpoint_step"] == 9000 and spec["num_gpus"] == 1 and spec["fresh_checkpoint"] is False


def test_day0_has_no_num_gpus_and_uses_the_three_pcb_pairs(matrix_texts):
    infer = _task(matrix_texts["day0/pcb__0603_H100__pretrained.yaml"], "infer-all-defects")
    spec = json.loads(_file(infer, "/tmp/dig/spec.json"))
    assert "NUM_GPUS" not in infer["environment"] and spec["num_gpus"] is None
    assert spec["anomaly_types"] == [
        ["IC", "bridge"],
        ["passive_component", "excess_solder"],
        ["passive_component", "missing"],
    ]


def test_cookbooks_are_rendered_with_knobs_applied(compile_args):
    text = compile_args("flow=day0", "knobs.render_patches=7", "knobs.crop_max_emit=null").text
    render = _task(text, "usd2roi-replicator")
    image = yaml.safe_load(_file(render, "/tmp/day0_image.yaml"))
    crop = yaml.safe_load(_file(render, "/tmp/day0_crop.yaml"))
    assert image["max_image_count"] == 7 and image["horizontal_aperture"] == 200.0
    assert image["output"] == "__OUTPUT__" and crop["output"]["dir"] == "__OUTPUT__"
    assert "max_emit" in crop["crop"] and crop["crop"]["max_emit"] is None
    assert "MAX_IMAGE_COUNT" not in render["environment"] and "CROP_MAX_EMIT" not in render["environment"]


@pytest.mark.parametrize("value, expected", [("''", 10), ("null", None), ("3", 3)])
def test_crop_max_emit_three_states(compile_args, value, expected):
    render = _task(compile_args("flow=good_image", f"knobs.crop_max_emit={value}").text, "usd2roi-replicator")
    assert yaml.safe_load(_file(render, "/tmp/day0_crop.yaml"))["crop"]["max_emit"] == expected


def test_structural_defect_modes_and_board_default_patches(compile_args):
    task = _task(compile_args("flow=structural", "knobs.defect_modes=shift").text, "sdg-and-crop")
    cfg = yaml.safe_load(_file(task, "/tmp/render_config.yaml"))
    assert {m: v["enabled"] for m, v in cfg["defects"].items()} == {
        "shift": True,
        "tombstone": False,
        "sideflip": False,
    }
    assert cfg["max_image_count"] == 5 and cfg["output"] == "__OUTPUT__"
    ic = _task(compile_args("flow=structural", "board=1152819000").text, "sdg-and-crop")
    assert yaml.safe_load(_file(ic, "/tmp/render_config.yaml"))["max_image_count"] == -1
    subset = _task(
        compile_args("flow=structural", "board=1152819000", "knobs.defect_modes=tombstone").text,
        "sdg-and-crop",
    )
    assert yaml.safe_load(_file(subset, "/tmp/render_config.yaml"))["defects"]["tombstone"]["enabled"] is True


def test_finetune_config_patched_at_compile_time(matrix_texts):
    ft = _task(matrix_texts["finetune/glass.yaml"], "finetune")
    cfg = yaml.safe_load(_file(ft, "/tmp/ag_config_template.yaml"))
    assert cfg["job"]["group"] == N and cfg["job"]["name"] == f"{N}_training_FP32_lr0.02_bs=2_2b_512x512"
    assert cfg["dataloader_train"]["dataset"]["dataset_dir"] == "{{input:1}}"
    assert cfg["dataloader_val"]["dataset"]["input_data_path"] == "/tmp/validation/validation.jsonl"
    assert "early_stop" not in cfg["trainer"] and cfg["trainer"]["max_iter"] == 10000
    assert cfg["dataloader_train"]["dataset"]["anomaly_types"] == [
        ["Phone", "oil"],
        ["Phone", "scratch"],
        ["Phone", "stain"],
    ]


def test_day0_finetune_mode_uses_pcb_not_an_undefined_usecase(matrix_texts):
    text = matrix_texts["day0/pcb__0603_H100__finetune.yaml"]
    assert "{{ usecase }}" not in text
    ft = _task(text, "finetune")
    assert ft["inputs"][1] == {"url": f"{R}/datasets/pcb/raw"}


def test_image_edit_model_is_pinned(matrix_texts):
    for key in ("day0/pcb__0603_H100__pretrained.yaml", "structural/pcb__1152819000.yaml"):
        task = _task(matrix_texts[key], "image-edit")
        assert task["environment"]["IMAGE_EDIT_MODEL"] == "nvidia/Qwen-Image-Edit-NVPCB-OVSL2SL"
        spec = json.loads(_file(task, "/tmp/dig/spec.json"))
        assert spec["model"] == "nvidia/Qwen-Image-Edit-NVPCB-OVSL2SL" and spec["output_ext"] == ".jpg"
        assert spec["layout"] == ("modes" if key.startswith("structural") else "cells")


def test_name_baked_in_when_given(compile_args):
    text = compile_args("flow=finetune", "name=ft-1a2b3c4d").text
    assert "{{ name }}" not in text
    assert _task(text, "finetune")["outputs"] == [{"url": f"{R}/runs/ft-1a2b3c4d/finetune"}]
