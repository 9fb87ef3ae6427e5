"""Render drivers (render-day0, render-structural, render-day1) against fake container tools."""

from __future__ import annotations

from pathlib import Path

import pytest
from dig_stages import _common, render


def _assets(root: Path) -> Path:
    assets = root / "assets"
    (assets / "sub").mkdir(parents=True)
    (assets / "sub" / "spark_lighting.usd").write_text("#usda 1.0\n")
    (assets / "input_real_image").mkdir()
    (assets / "input_real_image" / "0603_H100.jpg").write_bytes(b"jpg")
    return assets


def _day0_opts(pod, tmp_path: Path) -> dict:
    cb = tmp_path / "cookbooks"
    cb.mkdir()
    (cb / "pcba_target.yaml").write_text("scene: __SCENE__\npcba_root: /World\n")
    (cb / "day0_image.yaml").write_text(
        "output: __OUTPUT__\nmax_image_count: 2\nhorizontal_aperture: 200.0\n"
    )
    (cb / "day0_crop.yaml").write_text("output:\n  dir: __OUTPUT__\ncrop:\n  max_emit: 10\n")
    return pod.opts(
        assets_dir=str(_assets(tmp_path)),
        output_dir=str(tmp_path / "out"),
        scene_filename="spark_lighting.usd",
        pcba_target=str(cb / "pcba_target.yaml"),
        image_config=str(cb / "day0_image.yaml"),
        crop_config=str(cb / "day0_crop.yaml"),
    )


def test_day0_happy_path(stages_pod, tmp_path, capsys):
    opts = _day0_opts(stages_pod, tmp_path)
    assert render.run_day0(opts) == 0
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == [
        "crop",
        "day0_crop.yaml",
        "day0_image.yaml",
        "pcba_target.yaml",
        "trigger_0000",
    ]
    assert f'output: "{out}"' in (out / "day0_image.yaml").read_text()
    assert f'dir: "{out}"' in (out / "day0_crop.yaml").read_text()
    scene = (tmp_path / "assets" / "sub" / "spark_lighting.usd").resolve()
    assert (out / "pcba_target.yaml").read_text().startswith(f'scene: "{scene}"')
    assert stages_pod.tools_called() == ["kit", "sdg_pipeline", "usd2roi_crop"]
    kit = stages_pod.calls()[0]["argv"]
    assert kit[:2] == ["--no-window", "--exec"]
    assert kit[2].endswith(
        "sdg_pipeline.py --config "
        + str(stages_pod.tmp / "day0_image_resolved.yaml")
        + " --pcba-config "
        + str(stages_pod.tmp / "pcba_target_patched.yaml")
    )
    stdout = capsys.readouterr().out
    assert "crop: 2 ROI image(s); materials: passive_component" in stdout
    assert "crop: 2 cell dir(s)" in stdout


@pytest.mark.parametrize(
    ("env", "mutate", "fragment", "code"),
    [
        ({"FAKE_NO_ROI": "1"}, None, "0 ROI pairs emitted under", 1),
        ({"FAKE_NO_FRAMES": "1"}, None, "sdg_pipeline.py produced no frames under", 1),
        ({"FAKE_FAIL_SDG": "9"}, None, "Kit sdg_pipeline.py failed (exit 9)", 9),
        ({"FAKE_FAIL_CROP": "3"}, None, "usd2roi_crop.py failed (exit 3)", 3),
        ({}, {"scene_filename": "other.usd"}, "scene_filename=other.usd not found under", 1),
        ({}, {"nvoptix_path": "/nonexistent/nvoptix.bin"}, "/nonexistent/nvoptix.bin not mounted", 1),
        ({}, {"min_shm_gib": 10**9}, "GiB; need >= 1000000000 GiB", 1),
        ({}, {"pcba_target": "/nonexistent/pcba_target.yaml"}, "pcba_target.yaml not mounted", 1),
    ],
    ids=[
        "no-roi",
        "no-frames",
        "kit-fails",
        "roi-tool-fails",
        "no-scene",
        "no-nvoptix",
        "small-shm",
        "no-target",
    ],
)
def test_day0_failures(stages_pod, tmp_path, monkeypatch, env, mutate, fragment, code):
    opts = _day0_opts(stages_pod, tmp_path)
    opts.update(mutate or {})
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(_common.StageError) as err:
        render.run_day0(opts)
    assert fragment in str(err.value)
    assert err.value.code == code


def test_day0_config_without_sentinel_is_refused(stages_pod, tmp_path):
    opts = _day0_opts(stages_pod, tmp_path)
    Path(opts["image_config"]).write_text("output: /somewhere\n")
    with pytest.raises(_common.StageError, match="day0_image.yaml: config has no __OUTPUT__ placeholder"):
        render.run_day0(opts)


def _structural_opts(pod, tmp_path: Path, modes=("shift", "tombstone", "sideflip")) -> dict:
    cb = tmp_path / "cookbooks"
    cb.mkdir()
    (cb / "pcba_target.yaml").write_text("scene: __SCENE__\n")
    (cb / "render_config.yaml").write_text("output: __OUTPUT__\npipeline_type: defect\n")
    return pod.opts(
        assets_dir=str(_assets(tmp_path)),
        output_dir=str(tmp_path / "out"),
        work_dir=str(tmp_path / "work"),
        scene_filename="spark_lighting.usd",
        pcba_target=str(cb / "pcba_target.yaml"),
        render_config=str(cb / "render_config.yaml"),
        crop_offset=12,
        defect_modes=list(modes),
    )


def test_structural_happy_path_mirrors_work_dir(stages_pod, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_MODES", "shift,tombstone")
    opts = _structural_opts(stages_pod, tmp_path, ("shift", "tombstone"))
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "stale.txt").write_text("old run")
    assert render.run_structural(opts) == 0
    out = tmp_path / "out"
    assert not (out / "stale.txt").exists()  # work dir wiped first
    assert (out / "cropped" / "shift" / "rgb" / "0000.png").is_file()
    assert (out / "cropped" / "tombstone" / "component_instance" / "0000.png").is_file()
    assert f'output: "{tmp_path / "work"}"' in (out / "render_config.yaml").read_text()
    crop_call = stages_pod.calls()[-1]["argv"]
    assert crop_call[-2:] == ["--offset", "12"]
    assert crop_call[crop_call.index("--crops") + 1 : crop_call.index("--offset")] == [
        "rgb",
        "semantic_segmentation",
        "component_instance",
    ]
    logs = capsys.readouterr()
    assert "defect modes enabled: shift, tombstone; disabled: sideflip" in logs.out
    assert "crops per mode: shift=1, tombstone=1" in logs.out


@pytest.mark.parametrize(
    ("modes_env", "fragment"),
    [
        ("", "crop_components.py produced no per-mode rgb crops under"),
        ("FLAT", "found a flat cropped/rgb/ without a <mode> level"),
    ],
    ids=["none", "flat"],
)
def test_structural_mode_tree_check(stages_pod, tmp_path, monkeypatch, modes_env, fragment):
    monkeypatch.setenv("FAKE_MODES", modes_env)
    with pytest.raises(_common.StageError) as err:
        render.run_structural(_structural_opts(stages_pod, tmp_path))
    assert fragment in str(err.value)
    assert not (tmp_path / "out").exists()  # nothing mirrored on failure


def test_structural_warns_for_silent_mode(stages_pod, tmp_path, capsys):
    render.run_structural(_structural_opts(stages_pod, tmp_path, ("shift", "sideflip")))
    assert "WARN: no crops for enabled mode(s) sideflip" in capsys.readouterr().err


@pytest.mark.parametrize("modes", [[], ["twist"], "shift"])
def test_structural_bad_modes(stages_pod, tmp_path, modes):
    opts = _structural_opts(stages_pod, tmp_path)
    opts["defect_modes"] = modes
    with pytest.raises(_common.StageError, match="defect_modes: got"):
        render.run_structural(opts)


def _day1_opts(pod, tmp_path: Path) -> dict:
    cfg = tmp_path / "usd2roi_day1.yaml"
    cfg.write_text(
        "scene: __SCENE__\nreal_image: __REAL_IMAGE__\noutput:\n  dir: __OUTPUT__\nfake_layout: day1\n"
    )
    return pod.opts(
        assets_dir=str(_assets(tmp_path)),
        output_dir=str(tmp_path / "out"),
        scene_filename="spark_lighting.usd",
        real_image_filename="input_real_image/0603_H100.jpg",
        config=str(cfg),
    )


def test_day1_happy_path(stages_pod, tmp_path, capsys):
    assert render.run_day1(_day1_opts(stages_pod, tmp_path)) == 0
    out = tmp_path / "out"
    snap = (out / "usd2roi_day1.yaml").read_text()
    assert "__" not in snap and "0603_H100.jpg" in snap
    assert stages_pod.tools_called() == ["kit", "usd2roi_render", "usd2roi_register", "usd2roi_crop"]
    logs = capsys.readouterr().out
    assert '"rotation": 0.0' in logs and "crop: 1 ROI image(s); materials: IC" in logs


def test_day1_register_exit_code_passthrough(stages_pod, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_FAIL_REGISTER", "2")
    with pytest.raises(_common.StageError) as err:
        render.run_day1(_day1_opts(stages_pod, tmp_path))
    assert err.value.code == 2
    msg = str(err.value)
    assert msg.startswith("usd2roi_register.py exited 2 (likely MI < min_mi).")
    assert "min_mi" in msg and "sx_range" in msg and "horizontal_aperture" in msg
    assert "usd2roi_crop" not in stages_pod.tools_called()


def test_day1_no_roi_images(stages_pod, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_NO_ROI", "1")
    with pytest.raises(_common.StageError, match="0 ROI crops emitted under"):
        render.run_day1(_day1_opts(stages_pod, tmp_path))


def test_cli_render_steps(stages_pod, stages_run, tmp_path):
    (tmp_path / "d0").mkdir()
    spec = _day0_opts(stages_pod, tmp_path / "d0")
    res = stages_run("render-day0", spec, tmp_path / "d0.json")
    assert res.returncode == 0, res.stderr
    (tmp_path / "s").mkdir()
    spec = _structural_opts(stages_pod, tmp_path / "s")
    res = stages_run("render-structural", spec, tmp_path / "s.json")
    assert res.returncode == 0, res.stderr
    (tmp_path / "d1").mkdir()
    spec = _day1_opts(stages_pod, tmp_path / "d1")
    res = stages_run("render-day1", spec, tmp_path / "d1.json", env={"FAKE_FAIL_REGISTER": "2"})
    assert res.returncode == 2
    assert "ERROR: usd2roi_register.py exited 2 (likely MI < min_mi)." in res.stderr
