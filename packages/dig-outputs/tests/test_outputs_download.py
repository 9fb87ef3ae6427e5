"""`download` against moto's S3 server: contents, zip listing, logs, overwrite refusal, missing stages."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from dig_outputs.__main__ import main
from dig_outputs.synthetic import GOLDEN_WORKFLOWS, golden_workflow


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
DAY0_PRETRAINED = str(golden_workflow("day0").parent / "pcb__0603_H100__pretrained.yaml")  # no finetune task


def _download(s3_root: str, flow: str, dest: Path, *extra: str) -> int:
    return main(
        [
            "download",
            "--root",
            s3_root,
            "--name",
            RUN_NAMES[flow],
            "--workflow",
            str(golden_workflow(flow)),
            "--dest",
            str(dest),
            *extra,
        ]
    )


def test_outputs_run_names_match_fixture(runs):
    # The names are repeated here because conftest is not importable under --import-mode=importlib.
    assert {f: runs[f].run_dir.name for f in RUN_NAMES} == RUN_NAMES
    assert runs["day0_no_anomaly"].run_dir.name == DAY0_NO_ANOMALY


@pytest.mark.parametrize("flow", list(GOLDEN_WORKFLOWS))
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
    assert sorted(p.name for p in runs_dir.iterdir()) == [
        "anomaly",
        "augment",
        "finetune",
        "usd2roi-components",
    ]
    # Exact upstream form: osmo workflow logs <id> -t <task> -n 5000, one call per task that ran.
    calls = osmo_bin.read_text().splitlines()
    assert calls == [
        f"workflow logs wf-123 -t {task} -n 5000"
        for task in ("usd2roi-replicator", "image-edit", "finetune", "infer-all-defects")
    ]
    logs = dest / "download" / "logs"
    assert sorted(p.name for p in logs.iterdir()) == [
        "image-edit.log",
        "infer-all-defects.log",
        "usd2roi-replicator.log",
    ]
    assert (
        logs / "image-edit.log"
    ).read_text() == "[recorded] workflow wf-123 task image-edit (lines 5000)\nINFO: done\n"
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
    assert "--only anomaly: not a stage workflow good_image_gen writes" in err
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
    rc = main(
        [
            "download",
            "--root",
            s3_root,
            "--name",
            DAY0_NO_ANOMALY,
            "--workflow",
            DAY0_PRETRAINED,
            "--dest",
            str(dest),
        ]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert (
        f"run '{DAY0_NO_ANOMALY}' at s3://osmo-workflows/dig/runs/{DAY0_NO_ANOMALY}/ is missing stage(s) anomaly/"
        in err
    )
    assert "present: augment, usd2roi-components" in err
    assert not dest.exists()


def test_outputs_download_allow_missing_fetches_the_rest(s3_root, runs, tmp_path, capsys, osmo_bin):
    dest = tmp_path / "partial"
    rc = main(
        [
            "download",
            "--root",
            s3_root,
            "--name",
            DAY0_NO_ANOMALY,
            "--workflow",
            DAY0_PRETRAINED,
            "--dest",
            str(dest),
            "--allow-missing",
            "--workflow-id",
            "wf-7",
        ]
    )
    assert rc == 0
    assert (
        "note: anomaly/ missing (written by task infer-all-defects); fetching the rest"
        in capsys.readouterr().err
    )
    assert _files(dest / "download" / "runs") == runs["day0_no_anomaly"].files
    # The task that left no stage (likely the failed one) still gets its log.
    assert sorted(p.name for p in (dest / "download" / "logs").iterdir()) == [
        "image-edit.log",
        "infer-all-defects.log",
        "usd2roi-replicator.log",
    ]


def test_outputs_download_stages_come_from_the_workflow(s3_root, runs, tmp_path, capsys):
    # The pretrained Day 1 workflow schedules no finetune task: finetune/ is not a stage of it at all.
    assert _download(s3_root, "day1", tmp_path / "d1") == 0
    err = capsys.readouterr().err
    assert "from usd2roi-day1, anomaly;" in err and "finetune" not in err


def test_outputs_download_unknown_run_lists_runs(s3_root, tmp_path, capsys):
    rc = main(
        [
            "download",
            "--root",
            s3_root,
            "--name",
            "nope-00000000",
            "--workflow",
            str(golden_workflow("day0")),
            "--dest",
            str(tmp_path),
        ]
    )
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
    rc = main(
        [
            "download",
            "--root",
            "s3://no-such-bucket/dig",
            "--name",
            "r",
            "--workflow",
            str(golden_workflow("day0")),
            "--dest",
            str(tmp_path),
        ]
    )
    assert rc == 3
    assert "bucket 'no-such-bucket' does not exist" in capsys.readouterr().err


def test_outputs_download_root_must_be_s3(tmp_path, capsys):
    assert (
        main(["download", "--root", str(tmp_path), "--name", "r", "--workflow", str(golden_workflow("day0"))])
        == 2
    )
    assert "for a run already on disk use --local DIR" in capsys.readouterr().err


def test_outputs_download_skips_keys_that_escape(moto_endpoint, s3_root, tmp_path, capsys):
    import boto3

    client = boto3.client("s3")
    name = "escape-00000001"
    client.put_object(Bucket="osmo-workflows", Key=f"dig/runs/{name}/finetune/ok.txt", Body=b"ok")
    client.put_object(Bucket="osmo-workflows", Key=f"dig/runs/{name}/finetune/../../../evil.txt", Body=b"x")
    dest = tmp_path / "esc"
    assert (
        main(
            [
                "download",
                "--root",
                s3_root,
                "--name",
                name,
                "--workflow",
                str(golden_workflow("finetune")),
                "--dest",
                str(dest),
            ]
        )
        == 0
    )
    assert _files(dest / "download") == ["runs/finetune/ok.txt"]
    assert not list(tmp_path.rglob("evil.txt"))
    assert "skipped 1 key(s) with unsafe paths" in capsys.readouterr().err


def test_outputs_download_from_local_dir(runs, storage_dir, tmp_path, capsys):
    name = RUN_NAMES["structural"]
    dest = tmp_path / "loc"
    assert (
        main(
            [
                "download",
                "--local",
                str(storage_dir),
                "--name",
                name,
                "--workflow",
                str(golden_workflow("structural")),
                "--dest",
                str(dest),
            ]
        )
        == 0
    )
    assert _files(dest / "download" / "runs") == runs["structural"].files


@pytest.mark.slow
def test_outputs_cli_subprocess_prints_absolute_path_last(runs, tmp_path):
    run_dir = runs["good_image"].run_dir
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "dig_outputs",
            "download",
            "--local",
            str(run_dir),
            "--workflow",
            str(golden_workflow("good_image")),
            "--dest",
            "rel-dest",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    last = proc.stdout.strip().splitlines()[-1]
    assert last == str(tmp_path / "rel-dest" / f"{run_dir.name}.zip")


def test_outputs_download_only_a_stage_the_workflow_does_not_write(s3_root, tmp_path, capsys):
    assert _download(s3_root, "day1", tmp_path / "x", "--only", "finetune") == 2
    assert "--only finetune: not a stage workflow texture_defect_gen_day1_real_alignment writes" in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "x").exists()


def test_outputs_local_storage_root_needs_name(storage_dir, tmp_path, capsys):
    assert (
        main(
            [
                "preview",
                "--local",
                str(storage_dir),
                "--workflow",
                str(golden_workflow("day0")),
                "--dest",
                str(tmp_path / "p"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "looks like a storage root (it has runs/) but no --name was given" in err
    assert "texture_defect_gen_day0-1a2b3c4d" in err


def test_outputs_day1_glass_manual_roi_previews_from_its_workflow(runs, tmp_path, capsys):
    """Issue 11: flow=day1 usecase=glass compiles to manual ROI (only anomaly/); the old --flow day1
    table demanded usd2roi-day1/ and failed with "missing stage usd2roi-day1"."""
    glass = golden_workflow("day1").parent / "glass__pretrained.yaml"
    run_dir = runs["day1_manual_roi"].run_dir
    rc = main(["preview", "--workflow", str(glass), "--local", str(run_dir), "--dest", str(tmp_path / "p")])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "usd2roi-day1" not in err and "sample row(s)" in err


@pytest.mark.parametrize("name", ["../../../escape", "a b;rm", "x/y", ".."])
def test_outputs_hostile_run_names_are_refused_with_local(name, runs, tmp_path, capsys, monkeypatch):
    """Issue 12: --local with --name '../../../escape' wrote outside ./outputs; the compiler's run-name rule refuses it."""
    work = tmp_path / "a" / "b" / "c"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    before = sorted(p for p in tmp_path.rglob("*"))
    rc = main(
        [
            "download",
            "--workflow",
            str(golden_workflow("good_image")),
            "--local",
            str(runs["good_image"].run_dir),
            "--name",
            name,
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "--name" in err and "Traceback" not in err
    assert sorted(p for p in tmp_path.rglob("*")) == before


@pytest.mark.parametrize("force", [[], ["--force"]])
@pytest.mark.parametrize("command", ["download", "preview"])
def test_outputs_dest_an_existing_file_is_a_clean_error(command, force, runs, tmp_path, capsys):
    dest = tmp_path / "taken"
    dest.write_text("mine")
    for target in (dest, dest / "below"):
        rc = main(
            [
                command,
                "--workflow",
                str(golden_workflow("good_image")),
                "--local",
                str(runs["good_image"].run_dir),
                "--dest",
                str(target),
                *force,
            ]
        )
        err = capsys.readouterr().err
        assert rc == 2 and "--dest" in err and "not a directory" in err, err
    assert dest.read_text() == "mine"


def test_outputs_preview_without_a_complete_sample_fails_and_says_why(tmp_path, capsys):
    run_dir = tmp_path / "runs" / "manual-1"
    (run_dir / "anomaly" / "inference" / "original_image").mkdir(parents=True)
    (run_dir / "anomaly" / "inference" / "original_image" / "a.png").write_bytes(b"x")
    manual = golden_workflow("day1_manual_roi")
    rc = main(["preview", "--workflow", str(manual), "--local", str(run_dir), "--dest", str(tmp_path / "p")])
    err = capsys.readouterr().err
    assert rc == 1
    assert (
        "no complete samples" in err and "original_mask/<file>" in err and "reconstructed_image/<file>" in err
    )


def test_outputs_workflow_file_errors_are_clean(tmp_path, capsys):
    bad = tmp_path / "wf.yaml"
    for body in (b"\xff\xfe", b"a: [", b"workflow: {name: x, groups: []}\n"):
        bad.write_bytes(body)
        rc = main(["preview", "--workflow", str(bad), "--local", str(tmp_path)])
        err = capsys.readouterr().err
        assert rc == 2 and "--workflow" in err and "Traceback" not in err, err
    setup = golden_workflow("day0").parents[1] / "setup" / "pcb.yaml"
    assert main(["download", "--workflow", str(setup), "--local", str(tmp_path)]) == 2
    assert "writes no runs/<name>/<stage> output" in capsys.readouterr().err
