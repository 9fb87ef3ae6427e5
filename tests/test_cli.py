"""The CLI contract of `python -m compiler` (subprocesses: few, marked slow)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def run(*args: str, cwd: Path = REPO, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    base = {
        **os.environ,
        "DIG_PREFERENCES": str(cwd / "no-prefs.yaml"),
        # keep the caller's path (dig_stages is a dependency, found there or installed)
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    return subprocess.run(
        [sys.executable, "-m", "compiler", *args],
        cwd=cwd,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_default_compile_writes_one_file_and_prints_its_path_last(tmp_path):
    out = tmp_path / "wf.yaml"
    res = run("flow=day0", "usecase=pcb", f"out={out}", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == str(out)
    doc = yaml.safe_load(out.read_text())
    assert doc["workflow"]["name"] == "texture_defect_gen_day0"
    # One command, one file: no Hydra run dirs, .hydra copies or logs.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wf.yaml"]
    assert "unconfirmed storage root" in res.stderr


def test_without_out_it_writes_under_build_named_after_the_compile_key(tmp_path):
    res = run("flow=finetune", "usecase=glass")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().endswith("build/finetune/glass.yaml")
    res2 = run("flow=finetune", "usecase=glass", "knobs.train_gpu=2")
    assert "build/finetune/glass__" in res2.stdout.strip().splitlines()[-1]
    assert res2.stdout.strip() != res.stdout.strip()


@pytest.mark.parametrize(
    "args, first_line",
    [
        (["flow=day0", "usecase=glass"], "ERROR: usecase: flow 'day0' does not apply to use case 'glass'"),
        (["flow=nope"], "ERROR: flow: has no option 'nope'"),
        (["flow=structural", "knobs.crop_max_emit=5"], "ERROR: knobs.crop_max_emit: flow 'structural'"),
    ],
)
def test_errors_exit_nonzero_write_nothing_and_keep_the_old_file(tmp_path, args, first_line):
    out = tmp_path / "keep.yaml"
    out.write_text("previous content\n")
    res = run(*args, f"out={out}", cwd=tmp_path)
    assert res.returncode == 1
    assert res.stderr.splitlines()[0].startswith(first_line), res.stderr
    assert "Traceback" not in res.stderr and "DIG_FULL_ERROR=1" in res.stderr
    assert out.read_text() == "previous content\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.yaml"]


def test_full_traceback_only_on_request(tmp_path):
    res = run("flow=nope", cwd=tmp_path, env={"DIG_FULL_ERROR": "1"})
    assert res.returncode != 0 and "Traceback" in res.stderr


def test_run_name_is_the_one_submit_time_value(tmp_path):
    out = tmp_path / "wf.yaml"
    assert run("flow=good_image", f"out={out}", cwd=tmp_path).returncode == 0
    text = out.read_text()
    assert "runs/{{ name }}/augment" in text and "--set name=good_image-$STAMP" in text
    assert run("flow=good_image", "name=gi-1a2b3c4d", f"out={out}", cwd=tmp_path).returncode == 0
    assert "{{ name }}" not in out.read_text() and "runs/gi-1a2b3c4d/augment" in out.read_text()


def test_preferences_apply_silently_and_the_command_line_wins(tmp_path):
    prefs = tmp_path / "prefs.yaml"
    prefs.write_text("dig_url_root: s3://team-bucket/dig\npool: gpu-pool\ndefault_board: '1152819000'\n")
    out = tmp_path / "wf.yaml"
    res = run("flow=good_image", f"out={out}", cwd=tmp_path, env={"DIG_PREFERENCES": str(prefs)})
    assert res.returncode == 0, res.stderr
    text = out.read_text()
    assert "s3://team-bucket/dig/datasets/pcb/assets" in text and "unconfirmed" not in res.stderr
    assert "board=1152819000" in text.splitlines()[0]
    res = run(
        "flow=good_image",
        "dig_url_root=s3://other/x",
        "board=0603_H100",
        f"out={out}",
        cwd=tmp_path,
        env={"DIG_PREFERENCES": str(prefs)},
    )
    assert "s3://other/x/datasets" in out.read_text() and "board=0603_H100" in out.read_text().splitlines()[0]


def test_sweep_cli_reports_failures_and_exit_code(tmp_path):
    res = run("-m", "flow=day0", "knobs.crop_max_emit=1,0", cwd=REPO)
    assert res.returncode == 1
    assert "FAILED [flow=day0 knobs.crop_max_emit=0]" in res.stderr
    assert "1 of 2 variants compiled, 1 failed" in res.stderr
    index = Path(res.stdout.strip().splitlines()[-1])
    assert index.name == "sweep.json"


def test_validator_accepts_what_the_compiler_writes(tmp_path):
    out = tmp_path / "wf.yaml"
    assert run("flow=day1", "usecase=glass", f"out={out}", cwd=tmp_path).returncode == 0
    res = subprocess.run(
        [sys.executable, "-m", "compiler.validate", str(out)], capture_output=True, text=True, cwd=REPO
    )
    assert res.returncode == 0, res.stdout + res.stderr
