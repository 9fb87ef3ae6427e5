"""Finetune driver: dataset checks, mask count, validation prep, config copy, torchrun command."""

from __future__ import annotations

from pathlib import Path

import pytest
from dig_stages import _common, finetune


def _opts(pod, root: Path, png, **extra) -> dict:
    pre = root / "pretrained"
    (pre / "NVDINOV2").mkdir(parents=True)
    ds = root / "raw"
    png(ds / "PCB" / "IC" / "mask" / "bridge" / "0.png")
    png(ds / "PCB" / "passive_component" / "mask" / "missing" / "0.jpg")
    png(ds / "PCB" / "passive_component" / "mask" / "missing" / "1.png")
    (ds / "PCB" / "passive_component" / "mask" / "missing" / "notes.txt").write_text("x")
    png(ds / "PCB" / "IC" / "clean_image" / "c.png")
    (ds / "defect_spec.jsonl").write_text("{}\n")
    cfg = root / "ag_config_template.yaml"
    cfg.write_text("job:\n  group: run1\n")
    base = dict(
        pretrained_src=str(pre),
        dataset_dir=str(ds),
        config=str(cfg),
        output_dir=str(root / "out"),
        results_dir=str(root / "out" / "results"),
        exp_name="run1",
        num_gpus=2,
        usecase="pcb",
        max_iter=2000,
        save_iter=2000,
        validation_iter=2000,
        logging_iter=10,
    )
    return pod.opts(**{**base, **extra})


def test_count_training_masks(tmp_path, stages_png_writer):
    stages_png_writer(tmp_path / "M" / "mask" / "d" / "a.png")
    stages_png_writer(tmp_path / "W" / "M" / "mask" / "d" / "b.JPEG")
    stages_png_writer(tmp_path / "M" / "mask" / "flat.png")  # not under a defect dir
    stages_png_writer(tmp_path / "M" / "clean_image" / "c.png")
    assert finetune.count_training_masks(tmp_path) == 2


def test_finetune_happy_path(stages_pod, tmp_path, stages_png_writer, capsys):
    opts = _opts(stages_pod, tmp_path, stages_png_writer)
    assert finetune._run(opts) == 0
    ag = Path(opts["ag_root"])
    assert (ag / "ag_configs" / "run1.yaml").read_text() == "job:\n  group: run1\n"
    calls = {c["tool"]: c for c in stages_pod.calls()}
    prep = calls["prep_testcase"]["argv"]
    assert prep[prep.index("--num-sdg") + 1] == "3" and prep[prep.index("--name") + 1] == "validation_run1"
    assert prep[prep.index("--output-jsonl") + 1] == str(stages_pod.tmp / "validation" / "validation.jsonl")
    assert calls["torchrun"]["argv"] == [
        "--nproc_per_node=2",
        "--master_port=12341",
        "-m",
        "scripts.anomaly_gen.ag_train",
        "--config=cosmos_predict2/configs/base/ag_config.py",
        "--ag_config=ag_configs/run1.yaml",
        "--",
        "experiment=predict2_anomaly_gen_ddp_2b",
    ]
    assert calls["torchrun"]["extra"] == str(tmp_path / "out" / "results")
    out = capsys.readouterr().out
    assert "NUM_SDG=3" in out and "validation.jsonl: 3 rows; amp files: 1" in out
    assert "training done: 1 model checkpoint(s)" in out


@pytest.mark.parametrize(
    ("mutate", "fragment", "code"),
    [
        (
            lambda o, t: o.update(config=str(t / "nope.yaml")),
            "nope.yaml not mounted — cookbook upload failed.",
            1,
        ),
        (lambda o, t: o.update(pretrained_src=str(t / "nope")), "pretrained tree not at", 1),
        (lambda o, t: o.update(dataset_dir=str(t / "nope")), "training dataset not at", 1),
        (
            lambda o, t: (t / "raw" / "defect_spec.jsonl").unlink(),
            "defect_spec.jsonl missing in raw dataset",
            1,
        ),
        (
            lambda o, t: o.update(save_iter=5000),
            "Set save_iter <= max_iter in assets/cookbooks/pcb/ag_config.yaml",
            1,
        ),
        (lambda o, t: [p.unlink() for p in (t / "raw").rglob("mask/*/*")], "no training masks under", 1),
        (lambda o, t: o.update(min_shm_gib=10**9), "for torchrun shared-memory.", 1),
        (lambda o, t: o.update(ag_root=str(t / "nope")), "prep_testcase.sh not in image", 1),
    ],
)
def test_finetune_errors(stages_pod, tmp_path, stages_png_writer, mutate, fragment, code):
    opts = _opts(stages_pod, tmp_path, stages_png_writer)
    mutate(opts, tmp_path)
    with pytest.raises(_common.StageError) as err:
        finetune._run(opts)
    assert fragment in str(err.value) and err.value.code == code
    assert "torchrun" not in stages_pod.tools_called()


@pytest.mark.parametrize(
    ("env", "fragment", "code"),
    [
        ({"FAKE_EMPTY_JSONL": "1"}, "prep_testcase.sh produced an empty validation.jsonl", 1),
        ({"FAKE_FAIL_VALIDATE_DATASET": "4"}, "validate_dataset.py failed (exit 4)", 4),
        ({"FAKE_FAIL_TORCHRUN": "137"}, "torchrun ag_train exited 137", 137),
    ],
)
def test_finetune_tool_failures(stages_pod, tmp_path, stages_png_writer, monkeypatch, env, fragment, code):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(_common.StageError) as err:
        finetune._run(_opts(stages_pod, tmp_path, stages_png_writer))
    assert fragment in str(err.value) and err.value.code == code


def test_finetune_warns_validation_after_max(stages_pod, tmp_path, stages_png_writer, capsys):
    finetune._run(_opts(stages_pod, tmp_path, stages_png_writer, validation_iter=3000))
    assert "WARN: trainer.validation_iter (3000) > trainer.max_iter (2000)" in capsys.readouterr().err


def test_cli_finetune(stages_pod, stages_run, tmp_path, stages_png_writer):
    res = stages_run("finetune", _opts(stages_pod, tmp_path, stages_png_writer), tmp_path / "s.json")
    assert res.returncode == 0, res.stderr
    res = stages_run("finetune", {"dataset_dir": "x"}, tmp_path / "t.json")
    assert res.returncode == 1 and "missing required option(s) pretrained_src, exp_name" in res.stderr
