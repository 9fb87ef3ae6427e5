"""Setup steps: pretrained tree, model flatten, dataset prep, assets, count checks; pod-preflight CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from dig_stages import _common, sanity, setup


def test_flatten_nested_download(tmp_path):
    nest = tmp_path / "nvidia" / "Cosmos-AnomalyGen-PCB-2B"
    nest.mkdir(parents=True)
    (nest / "iter_000014000.pt").write_text("w")
    (nest / "ag_config.yaml").write_text("c")
    (nest / "README.md").write_text("r")
    assert setup.flatten_checkpoint(tmp_path) == nest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ag_config.yaml", "iter_000014000.pt"]


def test_flatten_depth2_never_deletes_output(tmp_path):
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "iter_000009000.pt").write_text("w")
    setup.flatten_checkpoint(tmp_path)
    assert tmp_path.is_dir() and [p.name for p in tmp_path.iterdir()] == ["iter_000009000.pt"]


def test_flatten_noop_when_flat(tmp_path):
    (tmp_path / "iter_000009000.pt").write_text("w")
    assert setup.flatten_checkpoint(tmp_path) is None


def test_count_check(tmp_path, capsys):
    with pytest.raises(_common.StageError, match="0 files in"):
        sanity.count_check(tmp_path, "models/pcb")
    (tmp_path / "a").write_bytes(b"12345")
    assert sanity.count_check(tmp_path, "models/pcb") == (1, 5)
    assert "[OK] models/pcb: 1 files, 5 bytes" in capsys.readouterr().out


def test_setup_model(stages_pod, tmp_path, capsys):
    opts = stages_pod.opts(output_dir=str(tmp_path / "out"), usecase="pcb", script_uc="pcb")
    assert setup.run_model(opts) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["ag_config.yaml", "iter_000014000.pt"]
    assert stages_pod.calls()[0]["argv"][:2] == ["--uc", "pcb"]
    assert "[OK] models/pcb: 2 files" in capsys.readouterr().out


def test_setup_model_bad_uc(stages_pod, tmp_path):
    with pytest.raises(
        _common.StageError, match="script_uc: got 'metal_surface'; allowed: pcb, metal, glass"
    ):
        setup.run_model(stages_pod.opts(output_dir=str(tmp_path), usecase="x", script_uc="metal_surface"))


def test_setup_pretrained(stages_pod, tmp_path, capsys):
    opts = stages_pod.opts(output_dir=str(tmp_path / "out"), model_sizes=["2B", "14B"])
    assert setup.run_pretrained(opts) == 0
    pre = tmp_path / "out" / "pretrained"
    assert (pre / "nvidia" / "C-RADIO-V3" / "model.safetensors").is_file()
    assert (pre / "nvidia" / "Cosmos-Predict2-2B-Text2Image" / "w.bin").is_file()
    assert (pre / "NVDINOV2" / "w.bin").is_file()
    dl = stages_pod.calls()[0]["argv"]
    assert dl[-2:] == ["2B", "14B"]
    logs = capsys.readouterr()
    assert "WARN: checkpoints/facebook not found — skipping" in logs.err


def test_setup_pretrained_download_failure_shows_log_tail(stages_pod, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_FAIL_DOWNLOAD", "3")
    with pytest.raises(_common.StageError) as err:
        setup.run_pretrained(stages_pod.opts(output_dir=str(tmp_path / "out"), model_sizes=["2B"]))
    assert (
        err.value.code == 3
        and "download_checkpoints failed" in str(err.value)
        and "downloading" in str(err.value)
    )


def test_setup_data_pcb_and_glass(stages_pod, tmp_path, capsys):
    out = tmp_path / "pcb"
    assert setup.run_data(stages_pod.opts(output_dir=str(out), usecase="pcb", zip_dir=None)) == 0
    assert not (out / ".gitattributes").exists() and (out / "defect_spec.jsonl").is_file()
    zips = tmp_path / "zips"
    zips.mkdir()
    (zips / "mobile_screen.zip").write_bytes(b"PK")
    glass = tmp_path / "glass"
    assert setup.run_data(stages_pod.opts(output_dir=str(glass), usecase="glass", zip_dir=str(zips))) == 0
    assert not (glass / ".cache").exists()
    uc3 = stages_pod.calls()[-1]["argv"]
    assert uc3[-3:] == ["--zip", str(stages_pod.tmp / "uc3_input.zip"), "--masks-from-hf"]
    assert "[OK] datasets/glass/raw: 2 files" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("usecase", "zip_dir", "fragment"),
    [
        (
            "glass",
            "empty",
            "uc3_input.zip not present — uc3_zip_url_root may be wrong or mobile_screen.zip missing",
        ),
        ("wood", None, "usecase: got 'wood'; setup-data prepares pcb, metal_surface, glass"),
    ],
)
def test_setup_data_errors(stages_pod, tmp_path, usecase, zip_dir, fragment):
    if zip_dir:
        (tmp_path / zip_dir).mkdir()
        zip_dir = str(tmp_path / zip_dir)
    with pytest.raises(_common.StageError) as err:
        setup.run_data(stages_pod.opts(output_dir=str(tmp_path / "o"), usecase=usecase, zip_dir=zip_dir))
    assert fragment in str(err.value)


def test_setup_assets_cleanup(stages_pod, tmp_path, capsys):
    out = tmp_path / "assets"
    assert setup.run_assets(stages_pod.opts(output_dir=str(out))) == 0
    assert sorted(p.name for p in out.iterdir()) == ["spark_lighting.usd"]
    assert "[OK] datasets/pcb/assets: 1 files" in capsys.readouterr().out


def test_cli_setup_steps(stages_pod, stages_run, tmp_path):
    t = stages_pod.tools
    cases = [
        ("setup-pretrained", {"output_dir": str(tmp_path / "p"), "model_sizes": ["2B"]}),
        ("setup-model", {"output_dir": str(tmp_path / "m"), "usecase": "pcb", "script_uc": "pcb"}),
        ("setup-data", {"output_dir": str(tmp_path / "d"), "usecase": "pcb"}),
        ("setup-assets", {"output_dir": str(tmp_path / "a")}),
    ]
    for step, spec in cases:
        res = stages_run(step, {**t, **spec}, tmp_path / f"{step}.json")
        assert res.returncode == 0, (step, res.stderr)
        assert "[OK] " in res.stdout


def test_cli_pod_preflight(stages_pod, stages_run, tmp_path):
    t = stages_pod.tools
    base = {"nvoptix_path": t["nvoptix_path"], "shm_path": t["shm_path"], "min_shm_gib": 0}
    res = stages_run("pod-preflight", base, tmp_path / "a.json")
    assert res.returncode == 0 and "preflight (render) OK" in res.stdout
    res = stages_run(
        "pod-preflight", {**base, "nvoptix_path": str(tmp_path / "none.bin")}, tmp_path / "b.json"
    )
    assert res.returncode == 1 and res.stderr.startswith(
        "ERROR: " + str(tmp_path / "none.bin") + " not mounted"
    )
    res = stages_run(
        "pod-preflight", {**base, "nvoptix_path": "/none"}, tmp_path / "c.json", "--checks", "train"
    )
    assert res.returncode == 0
    res = stages_run("pod-preflight", base, tmp_path / "d.json", "--checks", "gpu")
    assert res.returncode == 1 and "checks: got 'gpu'; allowed: render, train" in res.stderr


def test_cli_unknown_step_suggests(stages_run, tmp_path):
    res = stages_run("render-dya0", {}, tmp_path / "s.json")
    assert res.returncode == 2 and "did you mean 'render-day0'" in res.stderr


def test_every_owned_step_resolves():
    import importlib

    from dig_stages.__main__ import STEPS

    owned = [
        "pod-preflight",
        "render-day0",
        "render-structural",
        "render-day1",
        "infer-day0",
        "infer-day1",
        "infer-manual",
        "defect-spec",
        "pick-best-step",
        "finetune",
        "setup-pretrained",
        "setup-model",
        "setup-data",
        "setup-assets",
    ]
    for step in owned:
        module, func = STEPS[step]
        assert callable(getattr(importlib.import_module(module), func)), step
    assert Path(importlib.import_module("dig_stages").__file__).name == "__init__.py"
