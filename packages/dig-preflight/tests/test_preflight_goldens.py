"""`workflow` on the compiler's real output: every golden of the pcb matrix passes against a full bucket."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dig_preflight.cli import main

GOLDEN = Path(__file__).resolve().parents[3] / "golden"
KEYS = [
    "day0/pcb__0603_H100__pretrained",
    "day0/pcb__0603_H100__finetune",
    "good_image/pcb__0603_H100",
    "structural/pcb__0603_H100",
    "day1/pcb__0603_H100__pretrained",
    "day1_manual_roi/pcb__pretrained",
    "finetune/pcb",
]


@pytest.mark.parametrize("key", KEYS)
def test_preflight_workflow_accepts_compiled_goldens(key, capsys, tmp_path, make_bucket, snapshot, no_osmo):
    bucket = make_bucket()
    before = snapshot(bucket)
    text = (GOLDEN / f"{key}.yaml").read_text().replace("s3://osmo-workflows/dig", f"s3://{bucket}/dig")
    path = tmp_path / "wf.yaml"
    path.write_text(text)
    code = main(["workflow", str(path), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0, [c for c in report["checks"] if c["status"] not in ("ok", "skip")]
    names = " ".join(c["name"] for c in report["checks"])
    if "pretrained" in key and not key.startswith(("good", "structural")):
        assert "step 14000" in names
    assert snapshot(bucket) == before


def test_preflight_workflow_golden_reports_a_missing_checkpoint(capsys, tmp_path, make_bucket, no_osmo):
    bucket = make_bucket(drop=("models/pcb/iter_",))
    text = (
        (GOLDEN / "day1/pcb__0603_H100__pretrained.yaml")
        .read_text()
        .replace("s3://osmo-workflows/dig", f"s3://{bucket}/dig")
    )
    path = tmp_path / "wf.yaml"
    path.write_text(text)
    assert main(["workflow", str(path), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    failed = [c["name"] for c in report["checks"] if c["status"] == "fail"]
    assert any("14000" in n for n in failed), failed
