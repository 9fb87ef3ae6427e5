"""`urls` preflight against a real moto S3 server over HTTP: present, missing, empty, faults."""

from __future__ import annotations

import json
import re

import pytest
from dig_preflight.cli import main


def run(capsys, *args: str) -> tuple[int, dict]:
    args = list(args)
    if "setup" in args and "--root" in args:  # setup glass reads the zip prefix the user names
        args.append(f"knobs.uc3_zip_url_root={args[args.index('--root') + 1]}/uploads/glass-zip")
    code = main(["urls", *args, "--json"])
    out = capsys.readouterr().out
    report = json.loads(out)
    for c in report["checks"]:
        c["name"] = plain(c["name"])
    return code, report


def plain(name: str) -> str:
    """A check name without the reading tasks: `checkpoint (infer-all-defects): step 1` -> `checkpoint: step 1`."""
    return re.sub(r" \([a-z0-9, -]+\)", "", name)


def failed(report: dict) -> list[dict]:
    return [c for c in report["checks"] if c["status"] in ("fail", "error")]


ALL_PRESENT = [
    ("day0", "pcb", []),
    ("good_image", "pcb", []),
    ("structural", "pcb", []),
    ("day1", "pcb", []),
    ("day1", "metal_surface", []),
    ("day1", "glass", []),
    ("day1_manual_roi", "glass", []),
    ("day1_manual_roi", "metal_surface", []),
    ("finetune", "metal_surface", []),
    ("finetune", "pcb", []),
    ("setup", "glass", []),
    ("day0", "pcb", ["--board", "1152819000"]),
    ("day1", "pcb", ["--board", "1152819000"]),
    ("day0", "pcb", ["knobs.use_pretrained_checkpoint=false"]),
]


@pytest.mark.parametrize(("flow", "usecase", "extra"), ALL_PRESENT)
def test_preflight_everything_present(capsys, make_bucket, snapshot, flow, usecase, extra):
    bucket = make_bucket()
    before = snapshot(bucket)
    code, report = run(
        capsys,
        "--flow",
        flow,
        "--usecase",
        usecase,
        "--root",
        f"s3://{bucket}/dig",
        "--name",
        "fresh-run",
        *extra,
    )
    assert failed(report) == [] and code == 0
    assert report["ok"] is True
    assert snapshot(bucket) == before


def test_preflight_day0_checks_the_files_inside(capsys, make_bucket, snapshot):
    bucket = make_bucket()
    before = snapshot(bucket)
    code, report = run(
        capsys, "--flow", "day0", "--usecase", "pcb", "--root", f"s3://{bucket}/dig", "--name", "r1"
    )
    names = {c["name"] for c in report["checks"] if c["status"] == "ok"}
    assert code == 0
    assert {
        "pretrained models",
        "checkpoint",
        "checkpoint: ag_config.yaml",
        "checkpoint: step 14000",
        "raw dataset: defect_spec.jsonl",
        "raw dataset: mask IC/bridge",
        "raw dataset: mask passive_component/excess_solder",
        "raw dataset: mask passive_component/missing",
        "USD assets: scene spark_lighting.usd",
        "run 'r1' output",
    } <= names
    # Day 0 reads no real photo (only the Day 1 real-alignment variant does).
    assert not any("real photo" in c["name"] for c in report["checks"])
    # The pcb masks live under the one wrapper folder PCB/.
    mask = next(c for c in report["checks"] if c["name"] == "raw dataset: mask IC/bridge")
    assert mask["target"].endswith("/dig/datasets/pcb/raw/PCB/IC/mask/bridge/")
    assert snapshot(bucket) == before


MISSING = [
    # (flow, usecase, dropped key prefix under dig/, check name that must fail)
    ("day0", "pcb", "models/pretrained/", "pretrained models"),
    ("day0", "pcb", "models/pcb/", "checkpoint"),
    ("day0", "pcb", "models/pcb/ag_config.yaml", "checkpoint: ag_config.yaml"),
    ("day0", "pcb", "models/pcb/iter_000014000.pt", "checkpoint: step 14000"),
    ("day0", "pcb", "datasets/pcb/raw/", "raw dataset"),
    ("day0", "pcb", "datasets/pcb/raw/defect_spec.jsonl", "raw dataset: defect_spec.jsonl"),
    ("day0", "pcb", "datasets/pcb/raw/PCB/IC/mask/bridge/", "raw dataset: mask IC/bridge"),
    (
        "day0",
        "pcb",
        "datasets/pcb/raw/PCB/passive_component/mask/missing/",
        "raw dataset: mask passive_component/missing",
    ),
    ("day0", "pcb", "datasets/pcb/assets/", "USD assets"),
    ("day0", "pcb", "datasets/pcb/assets/spark_lighting.usd", "USD assets: scene spark_lighting.usd"),
    ("structural", "pcb", "datasets/pcb/assets/materials/", "USD assets: USD tree"),
    ("good_image", "pcb", "datasets/pcb/assets/pcba_base.usd", "USD assets: USD tree"),
    (
        "day1",
        "pcb",
        "datasets/pcb/assets/input_real_image/0603_H100.jpg",
        "USD assets: real photo 0603_H100.jpg",
    ),
    ("day1", "metal_surface", "models/metal_surface/iter_000010000.pt", "checkpoint: step 10000"),
    (
        "day1",
        "metal_surface",
        "datasets/metal_surface/raw/metal_surface/mask/MT_Fray/",
        "raw dataset: mask metal_surface/MT_Fray",
    ),
    ("day1", "glass", "datasets/glass/raw/Phone/mask/stain/", "raw dataset: mask Phone/stain"),
    ("finetune", "glass", "datasets/glass/raw/defect_spec.jsonl", "raw dataset: defect_spec.jsonl"),
    ("good_image", "pcb", "datasets/pcb/assets/", "USD assets"),
    ("setup", "glass", "uploads/glass-zip/", "zip upload: mobile_screen.zip"),
]


@pytest.mark.parametrize(
    ("flow", "usecase", "drop", "check"), MISSING, ids=[m[2] + "-" + m[0] for m in MISSING]
)
def test_preflight_each_missing_artifact_fails_alone(
    capsys, make_bucket, snapshot, flow, usecase, drop, check
):
    bucket = make_bucket(drop=(drop,))
    before = snapshot(bucket)
    code, report = run(capsys, "--flow", flow, "--usecase", usecase, "--root", f"s3://{bucket}/dig")
    assert code == 1
    bad = failed(report)
    assert [c["name"] for c in bad] == [check], bad
    assert bad[0]["status"] == "fail" and bad[0]["hint"]
    assert snapshot(bucket) == before


MALFORMED = [
    # (flow, usecase, dropped prefix, replacement objects, failing check, text in its detail)
    (
        "finetune",
        "pcb",
        "models/pretrained/",
        {"models/pretrained/nvidia/x.safetensors": b"w"},
        "pretrained models: pretrained/",
        "no pretrained/ tree",
    ),
    (
        "setup",
        "glass",
        "uploads/glass-zip/",
        {"uploads/glass-zip/mobile_screen.zip/part-0": b"zip"},
        "zip upload: mobile_screen.zip",
        "is a directory",
    ),
    (
        "day1",
        "pcb",
        "models/pcb/ag_config.yaml",
        {"models/pcb/ag_config.yaml": b"anomaly_types: [IC+bridge]\n"},
        "checkpoint: anomaly types",
        "passive_component+missing not in the checkpoint's anomaly_types",
    ),
    (
        "day0",
        "pcb",
        "models/pcb/ag_config.yaml",
        {"models/pcb/ag_config.yaml": b""},
        "checkpoint: ag_config.yaml",
        "0 bytes",
    ),
]


@pytest.mark.parametrize(
    ("flow", "usecase", "drop", "extra", "check", "text"),
    MALFORMED,
    ids=["pretrained-tree", "zip-dir", "taxonomy", "empty-config"],
)
def test_preflight_malformed_artifacts(
    capsys, make_bucket, snapshot, flow, usecase, drop, extra, check, text
):
    bucket = make_bucket(drop=(drop,), extra=extra)
    before = snapshot(bucket)
    code, report = run(capsys, "--flow", flow, "--usecase", usecase, "--root", f"s3://{bucket}/dig")
    assert code == 1
    (bad,) = failed(report)
    assert bad["name"] == check and text in bad["detail"], bad
    assert snapshot(bucket) == before


def test_preflight_empty_prefix_is_not_present(capsys, make_bucket, snapshot):
    # Only a directory marker and a zero-byte object: the upstream CLI-text check passed this.
    bucket = make_bucket(
        drop=("models/pretrained/",),
        extra={"models/pretrained/": b"", "models/pretrained/pretrained/empty.bin": b""},
    )
    before = snapshot(bucket)
    code, report = run(capsys, "--flow", "finetune", "--usecase", "pcb", "--root", f"s3://{bucket}/dig")
    assert code == 1
    (bad,) = failed(report)
    assert bad["name"] == "pretrained models" and "empty" in bad["detail"]
    assert snapshot(bucket) == before


def test_preflight_checkpoint_step_absent_lists_present_steps(capsys, make_bucket, snapshot):
    bucket = make_bucket(extra={"models/pcb/iter_000012000.pt": b"w"})
    before = snapshot(bucket)
    code, report = run(
        capsys,
        "--flow",
        "day1_manual_roi",
        "--usecase",
        "pcb",
        "--root",
        f"s3://{bucket}/dig",
        "knobs.checkpoint_step=13000",
    )
    assert code == 1
    (bad,) = failed(report)
    assert bad["name"] == "checkpoint: step 13000"
    assert bad["target"].endswith("/models/pcb/iter_000013000.pt")
    assert "12000, 14000" in bad["detail"] and bad["hint"] == "compile with knobs.checkpoint_step=14000"
    assert snapshot(bucket) == before


def test_preflight_prefix_is_a_directory_not_a_string_prefix(capsys, make_bucket, snapshot):
    # models/pcb2/... must not satisfy models/pcb.
    bucket = make_bucket(drop=("models/pcb/",), extra={"models/pcb2/iter_000014000.pt": b"w"})
    before = snapshot(bucket)
    code, report = run(capsys, "--flow", "day0", "--usecase", "pcb", "--root", f"s3://{bucket}/dig")
    assert code == 1 and [c["name"] for c in failed(report)] == ["checkpoint"]
    assert snapshot(bucket) == before


def test_preflight_missing_bucket(capsys, s3_env):
    code, report = run(capsys, "--flow", "day0", "--usecase", "pcb", "--root", "s3://no-such-dig-bucket/dig")
    assert code == 1
    bucket_row = report["checks"][0]
    assert bucket_row["name"] == "bucket" and bucket_row["status"] == "fail"
    assert "'no-such-dig-bucket' does not exist" in bucket_row["detail"]
    # The artifacts in it are reported as not checked rather than as four separate misses.
    assert {c["status"] for c in report["checks"][1:]} == {"skip"}


def test_preflight_existing_run_name(capsys, make_bucket, snapshot):
    bucket = make_bucket()
    before = snapshot(bucket)
    code, report = run(
        capsys, "--flow", "day1", "--usecase", "glass", "--root", f"s3://{bucket}/dig", "--name", "old-run"
    )
    assert code == 1
    (bad,) = failed(report)
    assert bad["name"] == "run 'old-run' output" and "overwrite" in bad["detail"]
    # A name that only shares a prefix with an existing run is free.
    code, report = run(
        capsys, "--flow", "day1", "--usecase", "glass", "--root", f"s3://{bucket}/dig", "--name", "old"
    )
    assert code == 0
    assert snapshot(bucket) == before


def test_preflight_custom_taxonomy_flat_masks_and_wrong_files(capsys, make_bucket, snapshot):
    extra = {
        "datasets/pcb/raw/dent/a.png": b"png",  # flat custom upload
        "datasets/pcb/raw/widget/mask/scuff/readme.txt": b"no images here",
    }
    bucket = make_bucket(extra=extra)
    before = snapshot(bucket)
    code, report = run(
        capsys,
        "--flow",
        "day1_manual_roi",
        "--usecase",
        "pcb",
        "--root",
        f"s3://{bucket}/dig",
        'knobs.anomaly_types_json=[["widget","dent"],["widget","scuff"]]',
        "knobs.use_pretrained_checkpoint=false",
    )  # a new taxonomy: finetune first
    assert code == 1
    (bad,) = failed(report)
    assert bad["name"] == "raw dataset: mask widget/scuff"
    assert "readme.txt" in bad["detail"]
    ok = next(c for c in report["checks"] if c["name"] == "raw dataset: mask widget/dent")
    assert ok["status"] == "ok" and ok["target"].endswith("/raw/dent/")
    assert snapshot(bucket) == before


def test_preflight_scene_found_by_basename_search(capsys, make_bucket, snapshot):
    bucket = make_bucket(
        drop=("datasets/pcb/assets/spark_lighting.usd",),
        extra={"datasets/pcb/assets/scenes/spark_lighting.usd": b"#usda"},
    )
    before = snapshot(bucket)
    code, report = run(capsys, "--flow", "structural", "--usecase", "pcb", "--root", f"s3://{bucket}/dig")
    assert code == 0
    row = next(c for c in report["checks"] if "scene" in c["name"])
    assert row["target"].endswith("assets/scenes/spark_lighting.usd") and "basename search" in row["detail"]
    assert snapshot(bucket) == before


def test_preflight_malformed_defect_spec(capsys, make_bucket, snapshot):
    bucket = make_bucket(
        extra={"datasets/pcb/raw/defect_spec.jsonl": b'{"defect_type": "IC+bridge"}\nnot json\n'}
    )
    before = snapshot(bucket)
    code, report = run(capsys, "--flow", "day0", "--usecase", "pcb", "--root", f"s3://{bucket}/dig")
    assert code == 1
    (bad,) = failed(report)
    assert bad["name"] == "raw dataset: defect_spec.jsonl" and "line 2" in bad["detail"]
    assert snapshot(bucket) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--flow", "day0", "--usecase", "glass"], "flow 'day0' does not apply to use case 'glass'"),
        (["--flow", "day1", "knobs.anomaly_types_json=[[IC]]"], "knobs.anomaly_types_json[0]"),
        (["--flow", "day1", "knobs.anomaly_types_json=not json"], "knobs.anomaly_types_json"),
        (["--flow", "day1", "--root", "gs://bkt/dig"], "s3:// storage only"),
        (["--flow", "day1", "--board", "../../etc"], "board: has no option '../../etc'"),
        (["--flow", "nope"], "flow: has no option 'nope'"),
        (["--flow", "day1", "knobs.no_such_knob=1"], "knobs.no_such_knob"),
    ],
)
def test_preflight_usage_errors_exit_2(capsys, s3_env, args, message):
    code, report = run(capsys, *args)
    assert code == 2 and message in report["checks"][0]["detail"]


def test_preflight_request_count_is_flat_in_bucket_size(capsys, make_bucket, bulk_put):
    """Requests grow with the required artifacts, never with the objects stored beside them."""
    bucket = make_bucket(fresh=True)
    _, small = run(
        capsys, "--flow", "day0", "--usecase", "pcb", "--root", f"s3://{bucket}/dig", "--name", "n"
    )
    # 1,200 objects of clutter inside every prefix the check lists (more than one 1,000-key page).
    bulk_put(
        bucket,
        {
            f"dig/{where}/{i:05d}.bin": b"x"
            for i in range(1200)
            for where in (
                "models/pretrained/pretrained/a",
                "datasets/pcb/raw/PCB/IC/clean_image",
                "runs/other",
                "datasets/pcb/assets/materials",
                "models/pcb/a",
            )
        },
    )
    _, big = run(capsys, "--flow", "day0", "--usecase", "pcb", "--root", f"s3://{bucket}/dig", "--name", "n")
    assert big["ok"] and small["ok"]
    assert big["s3_requests"] == small["s3_requests"] <= 16


def test_preflight_table_output(capsys, make_bucket):
    bucket = make_bucket(drop=("models/pcb/iter_000014000.pt",))
    code = main(["urls", "--flow", "day0", "--root", f"s3://{bucket}/dig"])  # the table keeps the task names
    out = capsys.readouterr().out
    assert code == 1
    assert out.splitlines()[0].startswith("STATUS")
    assert "FAIL    checkpoint (infer-all-defects): step 14000" in out
    assert "-> upload ag_config.yaml and" in out and "iter_000014000.pt" in out
    assert out.rstrip().endswith("exit 1")


def test_preflight_day1_board_taxonomy_comes_from_the_compiled_workflow(capsys, make_bucket):
    """Issue 11: board 1152819000's Day 1 taxonomy is [[IC, bridge]]; the old table checked passive_component/missing."""
    bucket = make_bucket(drop=("datasets/pcb/raw/PCB/passive_component/mask/missing/",))
    code, report = run(
        capsys, "--flow", "day1", "--usecase", "pcb", "--board", "1152819000", "--root", f"s3://{bucket}/dig"
    )
    names = [c["name"] for c in report["checks"]]
    assert code == 0, failed(report)
    assert "raw dataset: mask IC/bridge" in names
    assert not any("passive_component" in n for n in names)
    assert "USD assets: real photo 115_2819_000.jpg" in names


def test_preflight_day1_without_render_needs_no_assets(capsys, make_bucket):
    """Issue 11: use_usd2roi_day1=false drops the render task, so assets and the real photo are not read."""
    bucket = make_bucket(drop=("datasets/pcb/assets/",))
    code, report = run(
        capsys,
        "--flow",
        "day1",
        "--usecase",
        "pcb",
        "--root",
        f"s3://{bucket}/dig",
        "knobs.use_usd2roi_day1=false",
    )
    assert code == 0, failed(report)
    assert not any("assets" in c["target"] for c in report["checks"])


@pytest.mark.parametrize(
    ("args", "argument"),
    [
        (["--endpoint-url", "file:///etc"], "--endpoint-url"),
        (["--endpoint-url", "http://h:99999"], "--endpoint-url"),
        (["--max-attempts", "0"], "--max-attempts"),
        (["--max-attempts", "-5"], "--max-attempts"),
        (["--name", "../../x"], "--name"),
        (["--name", "a b;rm"], "--name"),
    ],
)
def test_preflight_bad_arguments_are_usage_errors(args, argument):
    """Issue 12: exit 2 with the argument named, no traceback (through the real CLI process)."""
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "dig_preflight", "urls", "--flow", "day0", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert argument in proc.stderr and "Traceback" not in proc.stderr


def test_preflight_non_utf8_files_are_clean_errors(tmp_path, capsys):
    bad = tmp_path / "wf.yaml"
    bad.write_bytes(b"workflow:\n  name: \xff\xfe\n")
    assert main(["workflow", str(bad)]) == 2
    assert "not UTF-8" in capsys.readouterr().err
    assert main(["pod-template", "--file", str(bad)]) == 4  # pod-template's documented "unreadable template"
    assert "cannot read" in capsys.readouterr().out
