"""`dig` through its CLI: help, introspection, completion, verbs, list knobs, output names, --images, sweeps."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from compiler.cli import EXIT_ENV, EXIT_USAGE, VERBS, main
from compiler.completion import complete, install_script
from compiler.paths import CONF_DIR, group_options

REPO = Path(__file__).resolve().parents[1]


def dig(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_app_help_lists_groups_options_settings_and_verbs(capsys):
    code, out, _ = dig(capsys, "--help")
    assert code == 0
    for group in ("flow", "usecase", "board", "endpoint", "knobs"):
        assert f"\n{group}:\n" in out
        for option in group_options(group):  # derived from conf/, every option listed
            assert f"  {option} " in out
    assert "structural" in out and "[usecases: pcb]" in out and "[boards: 0603_H100, 1152819000;" in out
    for key in ("name", "dig_url_root", "pool", "out", "strict"):
        assert f"  {key} " in out
    for verb in VERBS:
        assert f"  {verb} " in out


def test_help_anywhere_and_flow_help_lists_knobs_types_defaults_cookbooks(capsys):
    code, out, _ = dig(capsys, "flow=structural", "--help")
    assert code == 0
    assert "defect_modes" in out and "default all; string" in out and "comma list of shift" in out
    assert "render_patches" in out and "default 5; integer; allowed -1 | integer 1..10000" in out
    assert "crop_max_emit" not in out  # not a structural knob
    assert "defect_image:" in out  # cookbooks it reads
    code, out, _ = dig(capsys, "flow=day1", "usecase=glass", "-h")
    assert (
        "checkpoint_step" in out
        and "default 9000" in out
        and "model_size" in out
        and "allowed 2b, 14b" in out
    )


def test_cfg_job_package_and_all(capsys):
    code, out, _ = dig(capsys, "--cfg", "job", "flow=day1", "usecase=glass")
    doc = yaml.safe_load(out)
    assert code == 0 and doc["knobs"]["checkpoint_step"] == 9000 and "hydra" not in doc
    code, out, _ = dig(capsys, "flow=day0", "-c", "job", "-p", "knobs", "--resolve")
    assert yaml.safe_load(out)["num_sdg"] == 30
    code, out, _ = dig(capsys, "--cfg", "all", "-p", "hydra.runtime.choices", "flow=structural")
    assert yaml.safe_load(out)["board"] == "0603_H100"
    code, _, err = dig(capsys, "--cfg", "job", "-p", "knobs.nope")
    assert code == EXIT_USAGE and "no node 'nope'" in err


def test_info_names_the_file_of_each_value(capsys, tmp_path, monkeypatch):
    prefs = tmp_path / "prefs.yaml"
    prefs.write_text("dig_url_root: s3://bkt/dig\n")
    monkeypatch.setenv("DIG_PREFERENCES", str(prefs))
    code, out, _ = dig(capsys, "--info", "config", "flow=day0", "knobs=smoke", "knobs.num_sdg=7")
    assert code == 0
    assert "num_sdg: 7  <- command line" in out
    assert "crop_max_emit: 1  <- knobs_flow/smoke_day0.yaml" in out
    assert "exec_timeout: '28h'  <- flow/day0.yaml" in out
    assert "render_gpu: 1  <- resources/render.yaml" in out
    assert (
        "anomaly_types_json: [['IC', 'bridge']," in out
        and "<- usecase/pcb.yaml (via ${usecase.anomaly_types}" in out
    )
    code, out, _ = dig(capsys, "--info", "config", "flow=day1", "usecase=pcb")
    assert "workflow_name: 'texture_defect_gen_day1_real_alignment'  <- flow_usecase/day1_pcb.yaml" in out
    assert f"dig_url_root: 's3://bkt/dig'  <- preferences ({prefs})" in out
    code, out, _ = dig(capsys, "--info", "defaults-tree", "flow=structural")
    assert (
        "board: board/0603_H100.yaml  [use case pcb default]" in out
        and "command line: flow=structural" in out
    )
    code, out, _ = dig(capsys, "--info", "defaults")
    assert "usecase/pcb.yaml" in out and str(prefs) in out
    code, out, _ = dig(capsys, "--info", "searchpath")
    assert f"file://{CONF_DIR}" in out


def test_hydra_settings_say_what_dig_uses(capsys):
    code, _, err = dig(capsys, "hydra.verbose=true")
    assert code == EXIT_USAGE and "hydra.verbose" in err and "does not use Hydra's app runner" in err
    code, _, err = dig(capsys, "--cfg", "hydra")
    assert code == EXIT_USAGE
    code, _, err = dig(capsys, "--bogus")
    assert code == EXIT_USAGE and "unknown option '--bogus'" in err


def test_config_dir_is_checked(capsys, tmp_path):
    code, _, err = dig(capsys, "--config-dir", str(tmp_path / "missing"), "--cfg", "job")
    assert code == EXIT_USAGE and "not a directory" in err


def test_version(capsys):
    code, out, _ = dig(capsys, "--version")
    assert code == 0 and out.startswith("dig 0.")


def test_verbs_dispatch_with_their_argv(capsys, monkeypatch):
    code, out, _ = dig(capsys, "schema", "--check")
    assert code == 0
    seen = {}
    import compiler.plan

    monkeypatch.setattr(compiler.plan, "main", lambda argv: seen.setdefault("plan", argv) and 0)
    dig(capsys, "plan", "flow=day0", "--json")
    assert seen["plan"] == ["flow=day0", "--json"]


def test_missing_verb_package_is_a_clean_not_installed(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "dig_runs", None)  # import of dig_runs fails as if absent
    code, _, err = dig(capsys, "submit", "x.yaml")
    assert code == EXIT_ENV and "dig submit: not installed: module dig_runs.cli is missing" in err


def test_verb_gets_argv_starting_with_verb(capsys, monkeypatch):
    import types

    pkg, mod = types.ModuleType("dig_runs"), types.ModuleType("dig_runs.cli")
    mod.main = lambda argv: print("ARGV", argv) or 3  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "dig_runs", pkg)
    monkeypatch.setitem(sys.modules, "dig_runs.cli", mod)
    code, out, _ = dig(capsys, "watch", "run-1", "--json")
    assert code == 3 and "ARGV ['watch', 'run-1', '--json']" in out


@pytest.mark.parametrize("value", ["tombstone,shift", "[tombstone,shift]", "'tombstone,shift'"])
def test_comma_list_knob_spellings(capsys, tmp_path, value):
    out = tmp_path / "wf.yaml"
    code, _, err = dig(capsys, "flow=structural", f"knobs.defect_modes={value}", f"out={out}")
    assert code == 0, err
    ref = tmp_path / "ref.yaml"
    assert dig(capsys, "flow=structural", "knobs.defect_modes='tombstone,shift'", f"out={ref}")[0] == 0

    def body(p: Path) -> str:  # the header names the spelling given; the workflow is the same
        return "".join(line for line in p.read_text().splitlines(True) if not line.startswith("#"))

    assert body(out) == body(ref) and "tombstone" in body(out)


def test_sweep_message_shows_spellings_that_work(capsys):
    code, _, err = dig(capsys, "knobs.num_sdg=1,2")
    assert code == 1
    assert "dig -m knobs.num_sdg=1,2 | knobs.num_sdg='1,2' | knobs.num_sdg=[1,2]" in err


def test_output_names_say_what_changed(capsys, tmp_path, monkeypatch):
    code, out, _ = dig(capsys, "knobs.num_sdg=15")
    assert out.strip().endswith("build/day0/pcb__0603_H100__pretrained__num_sdg=15.yaml")
    text = Path(out.strip().splitlines()[-1]).read_text()
    assert "# Overrides: knobs.num_sdg=15\n" in text
    code, out, _ = dig(capsys, "knobs.use_pretrained_checkpoint=false")
    assert out.strip().endswith("build/day0/pcb__0603_H100__finetune.yaml")
    code, out, _ = dig(capsys, 'knobs.roi_prompt="a very long prompt about the solder joints of the chips"')
    name = Path(out.strip()).name
    assert name.startswith("pcb__0603_H100__pretrained__") and len(name.split("__")[-1]) == len(
        "12345678.yaml"
    )
    prefs = tmp_path / "prefs.yaml"
    prefs.write_text("dig_url_root: s3://mine/dig\n")
    monkeypatch.setenv("DIG_PREFERENCES", str(prefs))
    code, out, _ = dig(capsys, "flow=good_image")
    path = Path(out.strip())
    assert "__root-" in path.name and "# Preferences: dig_url_root=s3://mine/dig\n" in path.read_text()


def test_images_sizes_the_compile(capsys):
    code, out, err = dig(capsys, "flow=structural", "--images", "100")
    assert code == 0, err
    assert "set knobs.render_patches=5 -> expected ~120 crops" in err and "board 0603_H100 calibration" in err
    assert "nearest: ~120 (render_patches=5); ~75 (render_patches=3)" in err
    assert out.strip().endswith("structural/pcb__0603_H100__render_patches=5.yaml")
    code, out, err = dig(capsys, "flow=good_image", "--images", "250")
    assert "knobs.render_patches=84 knobs.crop_max_emit=3" in err and "84 x 1 x 3" in err
    assert "nearest: 252 (this setting); 249 (render_patches=83)" in err
    assert out.strip().endswith("good_image/pcb__0603_H100__render_patches=84__crop_max_emit=3.yaml")
    code, out, err = dig(capsys, "flow=day1", "--images", "40")
    assert "knobs.num_sdg=40" in err and out.strip().endswith("__num_sdg=40.yaml")
    code, out, err = dig(capsys, "flow=structural", "board=1152819000", "--images", "50")
    assert "knobs.render_patches=-1" in err and "no structural calibration" in err
    code, _, err = dig(capsys, "flow=finetune", "--images", "4")
    assert code == EXIT_USAGE and "produces no images" in err
    code, _, err = dig(capsys, "flow=day1", "knobs.num_sdg=3", "--images", "4")
    assert code == EXIT_USAGE and "drop knobs.num_sdg" in err


def test_completion_candidates():
    assert "flow=structural" in complete("dig flow=")
    assert complete("dig flow=structural knobs.de") == ["knobs.defect_modes="]
    assert complete("dig -m flow=day0 knobs.model_size=") == ["knobs.model_size=2b", "knobs.model_size=14b"]
    assert complete("dig flow=day0 cookbooks.ag_config.trainer.max") == [
        "cookbooks.ag_config.trainer.max_iter="
    ]
    assert "plan" in complete("dig ") and "knobs." in complete("dig ")
    assert complete("dig plan flow=day1 knobs.num") == ["knobs.num_sdg="]
    assert complete("dig --info ") == ["defaults", "defaults-tree", "config", "searchpath"]
    assert complete("dig -m flow=structural knobs.model") == []  # not a structural knob


def test_bash_completion_script_runs(tmp_path):
    script = install_script("bash")
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "dig").write_text(f'#!/bin/sh\nexec {sys.executable} -m compiler "$@"\n')
    (bin_dir / "dig").chmod(0o755)
    probe = (
        script + 'COMP_LINE="dig flow=day0 knobs.num_s"; COMP_POINT=${#COMP_LINE}; _dig_completion; '
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    pythonpath = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")]))
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHONPATH": pythonpath}
    res = subprocess.run(["bash", "-c", probe], env=env, text=True, capture_output=True, timeout=60)
    assert res.stdout.split() == ["knobs.num_sdg="], res.stderr


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_other_shell_scripts_parse(shell):
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} not installed")
    assert subprocess.run([shell, "-n"], input=install_script(shell), text=True).returncode == 0


def test_sweep_progress_starts_at_first_variant_and_summary_names_the_directory(capsys):
    values = ",".join(str(i) for i in range(1, 27))
    code, out, err = dig(
        capsys, "-m", "flow=day1", "usecase=glass", f"knobs.num_sdg={values}", "knobs.model_size=2b,14b"
    )
    assert code == 0, err
    frames = err.replace("\r", "\n").splitlines()
    bars = [f for f in frames if f.startswith("sweep ")]
    assert bars[0].split("|")[2].strip().startswith("1/52")  # opened at the first finished variant
    assert "variant/s" in bars[-1] and "52/52" in bars[-1]
    sweep_dir = Path(out.strip()).parent
    assert "52 of 52 variants compiled, 0 failed; files in " in err
    assert f"sweeps/{sweep_dir.name}/ (index: sweep.json)" in err
