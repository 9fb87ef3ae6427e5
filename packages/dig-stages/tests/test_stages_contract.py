"""The three functions the compiler imports at compile time (docs/stage-contract.md), and the
defect-spec writer the pod runs on the pairs the compiler validated."""

from __future__ import annotations

import copy
import json

import pytest
from dig_stages.defect_spec import render_defect_spec
from dig_stages.finetune import iteration_hygiene, render_training_config
from dig_stages.structural import parse_defect_modes

COOKBOOK = {
    "job": {"group": "old", "name": "old_job", "project": "p"},
    "trainer": {"max_iter": 2000, "save_iter": 2000, "early_stop": {"patience": 3}, "logging_iter": 10},
    "dataloader_train": {"dataset": {"dataset_dir": "/old", "seed": 1}},
    "dataloader_val": {"dataset": {"input_data_path": "/old.jsonl"}, "batch_size": 32},
    "model": {
        "config": {"ag_config": {"mask_encoder": {"encoder_config": {"init_cfg": {"checkpoint": "x"}}}}}
    },
    "optimizer": {"lr": 0.02},
}


def test_render_training_config_patches_five_fields_and_drops_early_stop():
    before = copy.deepcopy(COOKBOOK)
    out = render_training_config(
        COOKBOOK, exp_name="run1", dataset_dir="/in/1", validation_jsonl="/tmp/v.jsonl"
    )
    assert COOKBOOK == before  # pure
    assert out["job"] == {
        "group": "run1",
        "name": "run1_training_FP32_lr0.02_bs=2_2b_512x512",
        "project": "p",
    }
    assert out["dataloader_train"]["dataset"] == {"dataset_dir": "/in/1", "seed": 1}
    assert out["dataloader_val"]["dataset"]["input_data_path"] == "/tmp/v.jsonl"
    assert out["dataloader_val"]["batch_size"] == 32
    ckpt = out["model"]["config"]["ag_config"]["mask_encoder"]["encoder_config"]["init_cfg"]["checkpoint"]
    assert ckpt == "checkpoints/NVDINOV2/nv_dinov2_classification_model.ckpt"
    assert "early_stop" not in out["trainer"]
    assert out["trainer"]["max_iter"] == 2000
    assert out["optimizer"] == {"lr": 0.02}
    assert list(out) == list(COOKBOOK)  # key order kept


def test_render_training_config_creates_missing_maps_and_keeps_run_name_token():
    out = render_training_config({}, exp_name="{" + "{ name }}", dataset_dir="d", validation_jsonl="v")
    assert out["job"]["group"] == "{" + "{ name }}"
    assert out["model"]["config"]["ag_config"]["mask_encoder"]["encoder_config"]["init_cfg"]["checkpoint"]
    assert "trainer" not in out


def test_render_training_config_rejects_non_mapping():
    with pytest.raises(TypeError):
        render_training_config([], exp_name="a", dataset_dir="b", validation_jsonl="c")


@pytest.mark.parametrize(
    ("trainer", "expected"),
    [
        ({"max_iter": 2000, "save_iter": 2000, "validation_iter": 2000, "logging_iter": 10}, []),
        ({"max_iter": 10000, "save_iter": 3000, "validation_iter": 3000}, []),
        ({}, []),
        ({"max_iter": 0, "save_iter": 5000}, []),
        ({"max_iter": 100, "save_iter": 0}, []),
        ({"max_iter": 1000, "save_iter": 2000}, [("error", "no checkpoint will be saved")]),
        ({"max_iter": 1000, "validation_iter": 1500}, [("warning", "fall back to the latest")]),
        ({"max_iter": 5, "logging_iter": 10}, [("warning", "no progress logs")]),
        ({"max_iter": "1000", "save_iter": "2000"}, [("error", "no checkpoint")]),
        ({"max_iter": 1000, "save_iter": "soon"}, [("error", "trainer.save_iter must be an integer")]),
        ({"max_iter": 1000, "save_iter": True}, [("error", "must be an integer")]),
    ],
)
def test_iteration_hygiene(trainer, expected):
    got = iteration_hygiene(trainer)
    assert [s for s, _ in got] == [s for s, _ in expected]
    for (_, msg), (_, frag) in zip(got, expected, strict=True):
        assert frag in msg


def test_iteration_hygiene_error_message_names_values_and_fix():
    [(sev, msg)] = iteration_hygiene({"max_iter": 1000, "save_iter": 2000})
    assert sev == "error"
    assert "trainer.save_iter (2000) > trainer.max_iter (1000)" in msg
    assert "save_iter <= max_iter" in msg


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("all", ["shift", "tombstone", "sideflip"]),
        ("shift", ["shift"]),
        ("sideflip,shift", ["shift", "sideflip"]),
        ("tombstone,sideflip,shift", ["shift", "tombstone", "sideflip"]),
    ],
)
def test_parse_defect_modes_ok(value, expected):
    assert parse_defect_modes(value) == expected


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("", "empty value"),
        ("shift, tombstone", "contains spaces"),
        ("shift,", "empty entry"),
        (",shift", "empty entry"),
        ("shift,,tombstone", "empty entry"),
        ("shfit", "unknown mode 'shfit' (did you mean 'shift'?)"),
        ("ALL", "unknown mode 'ALL'"),
        ("shift,shift", "duplicate mode shift"),
        ("missing", "unknown mode 'missing'"),
    ],
)
def test_parse_defect_modes_rejects(value, fragment):
    with pytest.raises(ValueError) as err:
        parse_defect_modes(value)
    msg = str(err.value)
    assert fragment in msg
    assert msg.startswith("defect_modes: ")
    assert "allowed: all, or a comma-separated subset of shift,tombstone,sideflip" in msg


def test_parse_defect_modes_rejects_non_string():
    with pytest.raises(ValueError, match="a list"):
        parse_defect_modes(["shift"])  # type: ignore[arg-type]


def test_render_defect_spec_format():
    text = render_defect_spec([["passive_component", "missing"], ["IC", "bridge"]], "free")
    assert text == (
        '{"defect_type": "passive_component+missing", "spatial_dependency": "free", '
        '"roi_prompt_defect_location": ""}\n'
        '{"defect_type": "IC+bridge", "spatial_dependency": "free", "roi_prompt_defect_location": ""}\n'
    )
    rows = [json.loads(line) for line in text.splitlines()]
    assert list(rows[0]) == ["defect_type", "spatial_dependency", "roi_prompt_defect_location"]


def test_render_defect_spec_text_and_cad_and_json_input():
    text = render_defect_spec('[["Phone","oil"]]', "text", roi_prompt="the screen glass")
    assert json.loads(text) == {
        "defect_type": "Phone+oil",
        "spatial_dependency": "text",
        "roi_prompt_defect_location": "the screen glass",
    }
    assert '"spatial_dependency": "cad"' in render_defect_spec([("IC", "bridge")], "cad")


@pytest.mark.parametrize(
    ("pairs", "mode", "prompt", "fragment"),
    [
        ([["IC", "bridge"]], "text", None, "spatial_dependency=text needs a non-empty roi_prompt"),
        ([["IC", "bridge"]], "text", "  ", "needs a non-empty roi_prompt"),
        ([["IC", "bridge"]], "box", None, "spatial_dependency: got 'box'; allowed: free, text, cad"),
        ("not json", "free", None, "not valid JSON"),
        ([], "free", None, "non-empty JSON list"),
        ({"IC": "bridge"}, "free", None, "non-empty JSON list"),
        ([["IC", "bridge"], ["IC"]], "free", None, "entry 1 must be a list of exactly two"),
        ([["IC", 3]], "free", None, "entry 0 must be"),
        ([["IC", ""]], "free", None, "entry 0 must be"),
    ],
)
def test_render_defect_spec_rejects(pairs, mode, prompt, fragment):
    with pytest.raises(ValueError) as err:
        render_defect_spec(pairs, mode, prompt)
    assert fragment in str(err.value)
