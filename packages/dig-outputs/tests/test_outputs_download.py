"""`download` against moto's S3 server: contents, zip listing, logs, overwrite refusal, missing stages."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from dig_outputs.__main__ import main
from dig_outputs.flows import FLOWS


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


RUN_NAMES = {
    "day0": "texture_defect_gen_day0-1a2b3c4d",
    "good_image": "good_image_gen-2b3c4d5e",
    "structural": "structural_defect_gen-3c4d5e6f",
    "day1": "texture_defect_gen_day1_real_alignment-4d5e6f70",
    "day1_manual_roi": "texture_defect_gen_day1_manual_roi-5e6f7081",
    "finetune": "finetune-6f708192",
}
DAY0_NO_ANOMALY = "texture_defect_gen_day0-deadbeef"


def _download(s3_root: str, flow: str, dest: Path, *extra: str) -> int:
    return main(["download", "--root", s3_root, "--name", RUN_NAMES[flow], "--flow", flow, "--dest", str(dest),
                 *extra])


def test_outputs_run_names_match_fixture(runs):
    # The names are repeated here because conftest is not importable under --import-mode=importlib.
    assert {f: runs[f].run_dir.name for f in RUN_NAMES} == RUN_NAMES
    assert runs["day0_no_anomaly"].run_dir.name == DAY0_NO_ANOMALY


@pytest.mark.parametrize("flow", list(FLOWS))
def test_outputs_download_every_flow_matches_storage(flow, s3_root, runs, tmp_path, capsys):
    dest = tmp_path / "out"
    assert _download(s3_root, flow, dest) == 0
    out = capsys.readouterr().out.strip().splitlines()
    name = RUN_NAMES[flow]
    zip_path = dest.resolve() / f"{name}.zip"
    # The absolute zip path is the last line printed.
    assert out[-1] == str(zip_path)
    assert Path(out[-1]).is_absolute()
    assert _files(dest / "download" / "runs") == runs[flow].files
    for rel in runs[flow].files:
        assert (dest / "download" / "runs" / rel).read_bytes() == (runs[flow].run_dir / rel).read_bytes()
    with zipfile.ZipFile(zip_path) as zf:
        assert sorted(zf.namelist()) == [f"{name}/runs/{rel}" for rel in runs[flow].files]
        assert zf.testzip() is None


def test_outputs_download_day0_stage_dirs_and_logs(s3_root, tmp_path, capsys, osmo_bin):
    dest = tmp_path / "d0"
    assert _download(s3_root, "day0", dest, "--workflow-id", "wf-123") == 0
    err = capsys.readouterr().err
    runs_dir = dest / "download" / "runs"
    assert sorted(p.name for p in runs_dir.iterdir()) == ["anomaly", "augment", "finetune", "usd2roi-components"]
    # Exact upstream form: osmo workflow logs <id> -t <task> -n 5000, one call per task that ran.
    calls = osmo_bin.read_text().splitlines()
    assert calls == [
        f"workflow logs wf-123 -t {task} -n 5000"
        for task in ("usd2roi-replicator", "image-edit", "finetune", "infer-all-defects")
    ]
    logs = dest / "download" / "logs"
    assert sorted(p.name for p in logs.iterdir()) == ["image-edit.log", "infer-all-defects.log",
                                                      "usd2roi-replicator.log"]
    assert (logs / "image-edit.log").read_text() == "[recorded] workflow wf-123 task image-edit (lines 5000)\nINFO: done\n"
    # The stand-in fails for finetune: reported, not fatal.
    assert "log of task finetune: osmo exited 1 (task finetune not found)" in err
    with zipfile.ZipFile(dest / f"{RUN_NAMES['day0']}.zip") as zf:
        names = zf.namelist()
    assert f"{RUN_NAMES['day0']}/logs/infer-all-defects.log" in names


def test_outputs_download_only_anomaly_keeps_all_logs(s3_root, runs, tmp_path, capsys, osmo_bin):
    dest = tmp_path / "only"
    assert _download(s3_root, "day0", dest, "--only", "anomaly", "--workflow-id", "wf-9") == 0
    assert _files(dest / "download" / "runs") == [f for f in runs["day0"].files if f.startswith("anomaly/")]
    assert (dest / "download" / "logs" / "usd2roi-replicator.log").is_file()


def test_outputs_download_only_unknown_stage(s3_root, tmp_path, capsys):
    assert _download(s3_root, "good_image", tmp_path / "x", "--only", "anomaly") == 2
    err = capsys.readouterr().err
    assert "--only anomaly: not a stage of flow good_image" in err
    assert "usd2roi-components, augment" in err


def test_outputs_download_refuses_to_overwrite(s3_root, tmp_path, capsys):
    dest = tmp_path / "again"
    assert _download(s3_root, "good_image", dest) == 0
    marker = dest / "download" / "runs" / "augment" / "extra.txt"
    marker.write_text("user file")
    capsys.readouterr()
    assert _download(s3_root, "good_image", dest) == 2
    err = capsys.readouterr().err
    assert "refusing to overwrite" in err and "--force" in err
    assert marker.exists()
    assert _download(s3_root, "good_image", dest, "--force") == 0
    assert not marker.exists()


def test_outputs_download_missing_required_stage(s3_root, tmp_path, capsys):
    dest = tmp_path / "missing"
    rc = main(["download", "--root", s3_root, "--name", DAY0_NO_ANOMALY, "--flow", "day0", "--dest", str(dest)])
    assert rc == 2
    err = capsys.readouterr().err
    assert f"run '{DAY0_NO_ANOMALY}' at s3://osmo-workflows/dig/runs/{DAY0_NO_ANOMALY}/ is missing stage(s) anomaly/" in err
    assert "present: augment, usd2roi-components" in err
    assert not dest.exists()


def test_outputs_download_allow_missing_fetches_the_rest(s3_root, runs, tmp_path, capsys, osmo_bin):
    dest = tmp_path / "partial"
    rc = main(["download", "--root", s3_root, "--name", DAY0_NO_ANOMALY, "--flow", "day0", "--dest", str(dest),
               "--allow-missing", "--workflow-id", "wf-7"])
    assert rc == 0
    assert "note: anomaly/ missing (required by flow day0); fetching the rest" in capsys.readouterr().err
    assert _files(dest / "download" / "runs") == runs["day0_no_anomaly"].files
    # The task that left no stage (likely the failed one) still gets its log.
    assert sorted(p.name for p in (dest / "download" / "logs").iterdir()) == [
        "image-edit.log", "infer-all-defects.log", "usd2roi-replicator.log"]


def test_outputs_download_optional_finetune_absent_is_a_note(s3_root, runs, tmp_path, capsys):
    assert _download(s3_root, "day1", tmp_path / "d1") == 0
    assert "note: finetune/ not present (only written when scheduled)" in capsys.readouterr().err


def test_outputs_download_unknown_run_lists_runs(s3_root, tmp_path, capsys):
    rc = main(["download", "--root", s3_root, "--name", "nope-00000000", "--flow", "day0", "--dest", str(tmp_path)])
    assert rc == 2
    err = capsys.readouterr().err
    assert "no run named 'nope-00000000' at s3://osmo-workflows/dig/runs/nope-00000000/" in err
    assert RUN_NAMES["structural"] in err


def test_outputs_download_without_osmo_skips_logs(s3_root, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    assert _download(s3_root, "finetune", tmp_path / "ft", "--workflow-id", "wf-1") == 0
    assert "osmo CLI not found on PATH" in capsys.readouterr().err
    assert not (tmp_path / "ft" / "download" / "logs").exists()


def test_outputs_download_missing_bucket_is_reported(moto_endpoint, tmp_path, capsys):
    rc = main(["download", "--root", "s3://no-such-bucket/dig", "--name", "r", "--flow", "day0",
               "--dest", str(tmp_path)])
    assert rc == 3
    assert "bucket 'no-such-bucket' does not exist" in capsys.readouterr().err


def test_outputs_download_root_must_be_s3(tmp_path, capsys):
    assert main(["download", "--root", str(tmp_path), "--name", "r", "--flow", "day0"]) == 2
    assert "for a run already on disk use --local DIR" in capsys.readouterr().err


def test_outputs_download_skips_keys_that_escape(moto_endpoint, s3_root, tmp_path, capsys):
    import boto3

    client = boto3.client("s3")
    name = "escape-00000001"
    client.put_object(Bucket="osmo-workflows", Key=f"dig/runs/{name}/finetune/ok.txt", Body=b"ok")
    client.put_object(Bucket="osmo-workflows", Key=f"dig/runs/{name}/finetune/../../../evil.txt", Body=b"x")
    dest = tmp_path / "esc"
    assert main(["download", "--root", s3_root, "--name", name, "--flow", "finetune", "--dest", str(dest)]) == 0
    assert _files(dest / "download") == ["runs/finetune/ok.txt"]
    assert not list(tmp_path.rglob("evil.txt"))
    assert "skipped 1 key(s) with unsafe paths" in capsys.readouterr().err


def test_outputs_download_from_local_dir(runs, storage_dir, tmp_path, capsys):
    name = RUN_NAMES["structural"]
    dest = tmp_path / "loc"
    assert main(["download", "--local", str(storage_dir), "--name", name, "--flow", "structural",
                 "--dest", str(dest)]) == 0
    assert _files(dest / "download" / "runs") == runs["structural"].files


@pytest.mark.slow
def test_outputs_cli_subprocess_prints_absolute_path_last(runs, tmp_path):
    run_dir = runs["good_image"].run_dir
    proc = subprocess.run(
        [sys.executable, "-m", "dig_outputs", "download", "--local", str(run_dir), "--flow", "good_image",
         "--dest", "rel-dest"],
        cwd=tmp_path, capture_output=True, text=True, check=True,
    )
    last = proc.stdout.strip().splitlines()[-1]
    assert last == str(tmp_path / "rel-dest" / f"{run_dir.name}.zip")


def test_outputs_download_only_absent_optional_stage(s3_root, tmp_path, capsys):
    assert _download(s3_root, "day1", tmp_path / "x", "--only", "finetune") == 2
    assert "nothing to download: finetune/ of run" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_outputs_local_storage_root_needs_name(storage_dir, tmp_path, capsys):
    assert main(["preview", "--local", str(storage_dir), "--flow", "day0", "--dest", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert "looks like a storage root (it has runs/) but no --name was given" in err
    assert "texture_defect_gen_day0-1a2b3c4d" in err
