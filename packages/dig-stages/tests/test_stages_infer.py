"""Inference staging (Day 0, Day 1 real-align, Day 1 manual) and the AnomalyGen script chain."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dig_stages import _common, infer

PAIRS = [["passive_component", "missing"], ["IC", "bridge"]]


def _models(root: Path, png) -> tuple[Path, Path]:
    pre = root / "models_pretrained" / "pretrained"
    (pre / "NVDINOV2").mkdir(parents=True)
    ck = root / "models_pcb"
    ck.mkdir()
    (ck / "ag_config.yaml").write_text("anomaly_types: []\n")
    (ck / "iter_000014000.pt").write_text("w")
    return pre.parent, ck


def _raw(root: Path, png, wrapper: bool = True) -> Path:
    raw = root / "raw"
    base = raw / "PCB" if wrapper else raw
    png(base / "passive_component" / "mask" / "missing" / "m0.png")
    png(base / "passive_component" / "mask" / "missing" / "m1.png")
    png(base / "IC" / "mask" / "bridge" / "b0.png")
    (raw / "defect_spec.jsonl").write_text("{}\n")
    return raw


def _common_opts(pod, root: Path, png, **extra) -> dict:
    pre, ck = _models(root, png)
    base = dict(
        pretrained_src_in=str(pre),
        ckpt_dataset=str(ck),
        output_dir=str(root / "anomaly"),
        anomaly_types=PAIRS,
        checkpoint_step=14000,
        fresh_checkpoint=False,
        num_sdg=4,
        spatial_dependency="free",
        roi_prompt=None,
        exp_name="run1",
        model_size="2b",
        num_gpus=None,
    )
    return pod.opts(**{**base, **extra})


def _day0_opts(pod, root: Path, png) -> dict:
    clean = root / "augment"
    usd = root / "usd2roi"
    for mat in ("passive_component", "IC"):
        for cell in ("x0_y0", "x3_y1"):
            png(clean / "crop" / mat / cell / "0000.jpg")
            png(usd / "crop" / mat / cell / "normal_img" / "0000.png")
            png(usd / "crop" / mat / cell / "cad_mask" / "0000_cad_mask.png")
    (usd / "crop" / "semantic_segmentation_labels.json").write_text('{"1": "x"}')
    return _common_opts(
        pod, root, png, clean_in=str(clean), mask_in=str(usd), submask_base_in=str(_raw(root, png))
    )


def test_day0_stage_and_chain(stages_pod, tmp_path, stages_png_writer, capsys):
    opts = _day0_opts(stages_pod, tmp_path, stages_png_writer)
    assert infer.run_inference(opts, infer.stage_day0) == 0
    stage = stages_pod.tmp / "inference_stage"
    assert sorted(p.name for p in (stage / "IC" / "clean_image").iterdir()) == [
        "x0_y0__0000.jpg",
        "x3_y1__0000.jpg",
    ]
    assert sorted(p.name for p in (stage / "IC" / "cad_mask").iterdir()) == [
        "x0_y0__0000.png",
        "x3_y1__0000.png",
    ]
    assert sorted(p.name for p in (stage / "passive_component" / "mask" / "missing").iterdir()) == [
        "m0.png",
        "m1.png",
    ]
    spec = [json.loads(line) for line in (stage / "defect_spec.jsonl").read_text().splitlines()]
    assert [r["defect_type"] for r in spec] == ["passive_component+missing", "IC+bridge"]
    assert not (stage / "semantic_segmentation_labels.json").exists()  # only in cad mode
    tools = stages_pod.tools_called()
    assert tools == ["validate_checkpoint", "prep_testcase", "validate_jsonl", "run_sdg", "verify_output"]
    calls = {c["tool"]: c for c in stages_pod.calls()}
    prep = calls["prep_testcase"]["argv"]
    assert (
        prep[prep.index("--name") + 1] == "run1_infer" and "--seeds" not in prep and "--clean-dir" not in prep
    )
    sdg = calls["run_sdg"]["argv"]
    assert "--num_gpus" not in sdg and sdg[-2:] == ["--seed", "0"]
    assert sdg[sdg.index("--output_dir") + 1] == str(tmp_path / "anomaly" / "inference")
    assert calls["run_sdg"]["extra"] == str(tmp_path / "anomaly" / "inference" / "results")
    assert sdg[sdg.index("--step") + 1] == "14000"
    assert (Path(opts["ag_root"]) / "checkpoints" / "NVDINOV2").is_symlink()
    assert "reconstructed images: 1" in capsys.readouterr().out


def test_day0_cad_copies_labels_or_fails(stages_pod, tmp_path, stages_png_writer):
    opts = _day0_opts(stages_pod, tmp_path, stages_png_writer)
    opts["spatial_dependency"] = "cad"
    infer.run_inference(opts, infer.stage_day0)
    assert (
        stages_pod.tmp / "inference_stage" / "semantic_segmentation_labels.json"
    ).read_text() == '{"1": "x"}'
    (tmp_path / "usd2roi" / "crop" / "semantic_segmentation_labels.json").unlink()
    with pytest.raises(
        _common.StageError, match="spatial_dependency=cad but no semantic_segmentation_labels.json"
    ):
        infer.run_inference(opts, infer.stage_day0)


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda o, t: o.update(clean_in=str(t / "nothing")), "clean crop/<MAT>/<cell>/ tree not found under"),
        (
            lambda o, t: o.update(mask_in=str(t / "nothing")),
            "cad_mask crop/<MAT>/<cell>/ tree not found under",
        ),
        (
            lambda o, t: o.update(anomaly_types=[["IC", "scratch"]]),
            "submask dir not found for IC+scratch (tried",
        ),
        (lambda o, t: o.update(anomaly_types=[["IC"]]), "anomaly_types: anomaly types entry 0 must be"),
        (
            lambda o, t: o.update(spatial_dependency="text"),
            "spatial_dependency=text needs a non-empty roi_prompt",
        ),
        (lambda o, t: o.update(checkpoint_step=9000), "checkpoint_step=9000"),
        (lambda o, t: o.update(pretrained_src_in=str(t / "augment")), "pretrained/ not found"),
        (lambda o, t: o.update(ag_root=str(t / "nothing")), "prep_testcase.sh not in image"),
    ],
    ids=[
        "no-clean",
        "no-masks",
        "no-submask-dir",
        "bad-pair",
        "text-no-prompt",
        "bad-step",
        "no-pretrained",
        "no-ag-scripts",
    ],
)
def test_day0_errors(stages_pod, tmp_path, stages_png_writer, mutate, fragment):
    opts = _day0_opts(stages_pod, tmp_path, stages_png_writer)
    mutate(opts, tmp_path)
    with pytest.raises(_common.StageError) as err:
        infer.run_inference(opts, infer.stage_day0)
    assert fragment in str(err.value)


def test_day0_no_clean_images_and_empty_submasks(stages_pod, tmp_path, stages_png_writer):
    opts = _day0_opts(stages_pod, tmp_path, stages_png_writer)
    for p in (tmp_path / "augment").rglob("*.jpg"):
        p.unlink()
    with pytest.raises(_common.StageError, match="no clean images staged"):
        infer.run_inference(opts, infer.stage_day0)
    opts = _day0_opts(stages_pod, tmp_path / "b", stages_png_writer)
    for p in (tmp_path / "b" / "raw" / "PCB" / "IC" / "mask" / "bridge").iterdir():
        p.unlink()
    with pytest.raises(_common.StageError, match="no submask files in"):
        infer.run_inference(opts, infer.stage_day0)


@pytest.mark.parametrize(
    ("env", "fragment", "code"),
    [
        ({"FAKE_EMPTY_JSONL": "1"}, "prep_testcase.sh produced an empty", 1),
        (
            {"FAKE_FAIL_VALIDATE_JSONL": "1"},
            "validate_jsonl.py (anomaly_types vs the checkpoint's taxonomy) failed",
            1,
        ),
        ({"FAKE_FAIL_RUN_SDG": "5"}, "run_sdg.sh failed (exit 5)", 5),
        ({"FAKE_NO_IMAGES": "1"}, "run_sdg.sh wrote no images", 1),
    ],
)
def test_chain_failures(stages_pod, tmp_path, stages_png_writer, monkeypatch, env, fragment, code):
    opts = _day0_opts(stages_pod, tmp_path, stages_png_writer)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(_common.StageError) as err:
        infer.run_inference(opts, infer.stage_day0)
    assert fragment in str(err.value) and err.value.code == code


def test_day0_warns_taxonomy_material_not_on_disk(stages_pod, tmp_path, stages_png_writer, capsys):
    opts = _day0_opts(stages_pod, tmp_path, stages_png_writer)
    stages_png_writer(tmp_path / "raw" / "PCB" / "Cap" / "mask" / "crack" / "c.png")
    opts["anomaly_types"] = PAIRS + [["Cap", "crack"]]
    infer.run_inference(opts, infer.stage_day0)
    assert "WARN: anomaly_types material 'Cap' missing from" in capsys.readouterr().err


def _day1_opts(pod, root: Path, png) -> dict:
    usd = root / "usd2roi-day1"
    png(usd / "crop" / "IC" / "normal_img" / "0000.png")
    png(usd / "crop" / "IC" / "cad_mask" / "0000_cad_mask.png")
    png(usd / "crop" / "IC" / "normal_img" / "0001.png")
    png(usd / "crop" / "IC" / "seg" / "0001.png")
    png(usd / "crop" / "IC" / "normal_img" / "0002.jpg")
    raw = _raw(root, png, wrapper=False)
    return _common_opts(
        pod,
        root,
        png,
        usd2roi_in=str(usd),
        submask_base_in=str(raw),
        anomaly_types=[["IC", "bridge"]],
        num_gpus=2,
    )


def test_day1_stage_plain_stems_and_mask_candidates(stages_pod, tmp_path, stages_png_writer, capsys):
    opts = _day1_opts(stages_pod, tmp_path, stages_png_writer)
    infer.run_inference(opts, infer.stage_day1)
    stage = stages_pod.tmp / "usd2roi_day1_stage"
    assert sorted(p.name for p in (stage / "IC" / "clean_image").iterdir()) == [
        "0000.png",
        "0001.png",
        "0002.jpg",
    ]
    masks = {p.name: p.resolve().parent.name for p in (stage / "IC" / "cad_mask").iterdir()}
    assert masks == {"0000.png": "cad_mask", "0001.png": "seg"}
    calls = {c["tool"]: c["argv"] for c in stages_pod.calls()}
    assert calls["prep_testcase"][calls["prep_testcase"].index("--dataset-dir") + 1] == str(stage)
    assert "--clean-dir" not in calls["prep_testcase"]
    assert calls["run_sdg"][calls["run_sdg"].index("--num_gpus") + 1] == "2"
    assert "Real-alignment submasks IC+bridge: 1" in capsys.readouterr().out


def test_day1_cad_without_labels_only_warns(stages_pod, tmp_path, stages_png_writer, capsys):
    opts = _day1_opts(stages_pod, tmp_path, stages_png_writer)
    opts["spatial_dependency"] = "cad"
    assert infer.run_inference(opts, infer.stage_day1) == 0
    assert "Switch to default_spatial_dependency=free." in capsys.readouterr().err


def test_day1_no_materials(stages_pod, tmp_path, stages_png_writer):
    opts = _day1_opts(stages_pod, tmp_path, stages_png_writer)
    opts["usd2roi_in"] = str(tmp_path / "empty")
    with pytest.raises(_common.StageError, match="no material dirs under"):
        infer.run_inference(opts, infer.stage_day1)


def test_manual_mode_a_uses_shipped_spec(stages_pod, tmp_path, stages_png_writer, capsys):
    ds = tmp_path / "metal_raw"
    stages_png_writer(ds / "metal_surface" / "clean_image" / "c.png")
    stages_png_writer(ds / "metal_surface" / "mask" / "MT_Break" / "m.png")
    (ds / "defect_spec.jsonl").write_text('{"defect_type": "metal_surface+MT_Break"}\n')
    opts = _common_opts(stages_pod, tmp_path, stages_png_writer, inference_dataset=str(ds), num_gpus=1)
    infer.run_inference(opts, infer.stage_manual)
    prep = {c["tool"]: c["argv"] for c in stages_pod.calls()}["prep_testcase"]
    assert prep[prep.index("--dataset-dir") + 1] == str(ds)
    assert prep[prep.index("--defect-spec") + 1] == str(ds / "defect_spec.jsonl")
    assert "--clean-dir" not in prep
    assert "Mode A (prepared dataset)" in capsys.readouterr().out


def test_manual_mode_b_stages_submasks(stages_pod, tmp_path, stages_png_writer, capsys):
    ds = tmp_path / "custom"
    stages_png_writer(ds / "Phone" / "clean_image" / "c.png")
    stages_png_writer(ds / "submasks" / "Phone" / "mask" / "oil" / "o.png")
    opts = _common_opts(
        stages_pod,
        tmp_path,
        stages_png_writer,
        inference_dataset=str(ds),
        anomaly_types=[["Phone", "oil"]],
        spatial_dependency="text",
        roi_prompt="the glass",
    )
    infer.run_inference(opts, infer.stage_manual)
    stage = stages_pod.tmp / "inference_stage"
    assert [p.name for p in (stage / "Phone" / "mask" / "oil").iterdir()] == ["o.png"]
    assert json.loads((stage / "defect_spec.jsonl").read_text())["roi_prompt_defect_location"] == "the glass"
    prep = {c["tool"]: c["argv"] for c in stages_pod.calls()}["prep_testcase"]
    assert prep[prep.index("--clean-dir") + 1] == str(ds / "Phone" / "clean_image")
    assert "Mode B (staged)" in capsys.readouterr().out


def test_cli_infer_steps(stages_pod, stages_run, tmp_path, stages_png_writer):
    (tmp_path / "a").mkdir()
    res = stages_run(
        "infer-day0", _day0_opts(stages_pod, tmp_path / "a", stages_png_writer), tmp_path / "a.json"
    )
    assert res.returncode == 0, res.stderr
    (tmp_path / "b").mkdir()
    res = stages_run(
        "infer-day1", _day1_opts(stages_pod, tmp_path / "b", stages_png_writer), tmp_path / "b.json"
    )
    assert res.returncode == 0, res.stderr
    (tmp_path / "c").mkdir()
    opts = _common_opts(
        stages_pod, tmp_path / "c", stages_png_writer, inference_dataset=str(tmp_path / "c" / "none")
    )
    res = stages_run("infer-manual", opts, tmp_path / "c.json")
    assert res.returncode == 1 and "ERROR: inference dataset not at" in res.stderr
    (tmp_path / "e").mkdir()
    spec = _day0_opts(stages_pod, tmp_path / "e", stages_png_writer)
    del spec["exp_name"]
    res = stages_run("infer-day0", spec, tmp_path / "d.json")
    assert res.returncode == 1 and "missing required option(s) exp_name" in res.stderr


def test_cli_defect_spec_step(stages_run, tmp_path):
    out = tmp_path / "spec.jsonl"
    res = stages_run(
        "defect-spec",
        {"output": str(out), "material": "Phone", "defects": '["oil","stain"]'},
        tmp_path / "s.json",
    )
    assert res.returncode == 0 and "wrote 2 entries to" in res.stderr
    assert [json.loads(line)["defect_type"] for line in out.read_text().splitlines()] == [
        "Phone+oil",
        "Phone+stain",
    ]
    res = stages_run(
        "defect-spec",
        {"output": str(out), "pairs": '[["a","b"]]'},
        tmp_path / "t.json",
        "--spatial-dependency",
        "text",
    )
    assert res.returncode == 2 and res.stderr.startswith("ERROR: spatial_dependency=text needs")
    res = stages_run("defect-spec", {"output": str(out)}, tmp_path / "u.json")
    assert res.returncode == 2 and "give --pairs JSON" in res.stderr
