"""`workflow`: inputs, task-spec keys, run name and credentials derived from a compiled OSMO YAML."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dig_preflight.cli import main

FIXTURES = Path(__file__).parent / "fixtures"


def _spec_file(spec: dict) -> dict:
    return {"path": "/tmp/dig/spec.json", "contents": json.dumps(spec, indent=2)}


def day0_workflow(root: str, *, run: str = "{{ name }}", step: int = 14000, fresh: bool = False) -> str:
    """A Day 0 texture workflow shaped like the compiler's output (stage contract keys)."""
    import yaml

    infer_inputs = [
        {"task": "augment"},
        {"url": f"{root}/datasets/pcb/raw"},
        {"url": f"{root}/models/pretrained"},
    ]
    infer_spec = {
        "clean_in": "{{input:0}}",
        "mask_in": "{{input:0}}",
        "submask_base_in": "{{input:1}}",
        "pretrained_src_in": "{{input:2}}",
        "output_dir": "{{output}}",
        "anomaly_types": [
            ["IC", "bridge"],
            ["passive_component", "excess_solder"],
            ["passive_component", "missing"],
        ],
        "checkpoint_step": step,
        "fresh_checkpoint": fresh,
        "num_sdg": 30,
        "spatial_dependency": "cad",
    }
    if fresh:
        infer_inputs.append({"task": "finetune"})
        infer_spec["ckpt_dataset"] = "{{input:3}}"
    else:
        infer_inputs.append({"url": f"{root}/models/pcb"})
        infer_spec["ckpt_dataset"] = "{{input:3}}"
    groups = [
        {
            "name": "render",
            "tasks": [
                {
                    "name": "usd2roi-components",
                    "lead": True,
                    "image": "nvcr.io/nvidia/paidf-simulation:1.0.0",
                    "command": ["bash"],
                    "args": ["/tmp/run.sh"],
                    "inputs": [{"url": f"{root}/datasets/pcb/assets"}],
                    "outputs": [{"url": f"{root}/runs/{run}/usd2roi-components"}],
                    "files": [
                        _spec_file(
                            {
                                "assets_dir": "{{input:0}}",
                                "output_dir": "{{output}}",
                                "scene_filename": "spark_lighting.usd",
                            }
                        ),
                        {"path": "/tmp/run.sh", "contents": "exec python3 -m dig_stages render-day0"},
                    ],
                }
            ],
        },
        {
            "name": "augment",
            "tasks": [
                {
                    "name": "augment",
                    "lead": True,
                    "image": "nvcr.io/nvidia/paidf-augmentation:1.0.0",
                    "command": ["bash"],
                    "inputs": [{"task": "usd2roi-components"}],
                    "outputs": [{"url": f"{root}/runs/{run}/augment"}],
                }
            ],
        },
        {
            "name": "anomaly",
            "tasks": [
                {
                    "name": "infer-all-defects",
                    "lead": True,
                    "image": "nvcr.io/nvidia/paidf-anomalygen:1.0.0",
                    "command": ["bash"],
                    "credentials": {"hf-token": {"HF_TOKEN": "token"}},
                    "inputs": infer_inputs,
                    "outputs": [{"url": f"{root}/runs/{run}/anomaly"}],
                    "files": [_spec_file(infer_spec)],
                }
            ],
        },
    ]
    doc = {"workflow": {"name": "texture_defect_gen_day0", "groups": groups}}
    return yaml.safe_dump(doc, sort_keys=False, width=1000)


@pytest.fixture
def wf(tmp_path):
    def write(text: str) -> str:
        path = tmp_path / "wf.yaml"
        path.write_text(text)
        return str(path)

    return write


def run(capsys, *args: str) -> tuple[int, dict]:
    code = main(["workflow", *args, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_preflight_workflow_template_name_is_skipped_and_said(capsys, make_bucket, snapshot, wf, no_osmo):
    bucket = make_bucket()
    before = snapshot(bucket)
    path = wf(day0_workflow(f"s3://{bucket}/dig"))
    assert "{{ name }}" in Path(path).read_text()
    code, report = run(capsys, path)
    assert code == 0, report
    names = [c["name"] for c in report["checks"]]
    assert "checkpoint (infer-all-defects): step 14000" in names
    assert "raw dataset (infer-all-defects): mask IC/bridge" in names
    assert "USD assets (usd2roi-components): scene spark_lighting.usd" in names
    assert "pretrained models (infer-all-defects)" in names
    assert not any(n.startswith("run ") for n in names)
    assert any("{{ name }}" in n and "skipped" in n for n in report["notes"])
    cred = next(c for c in report["checks"] if c["name"] == "OSMO credential hf-token")
    assert cred["status"] == "skip" and cred["target"] == "keys token"
    assert snapshot(bucket) == before


@pytest.mark.parametrize(("name", "code"), [("old-run", 1), ("new-run", 0)])
def test_preflight_workflow_with_name(capsys, make_bucket, snapshot, wf, no_osmo, name, code):
    bucket = make_bucket()
    before = snapshot(bucket)
    rc, report = run(capsys, wf(day0_workflow(f"s3://{bucket}/dig")), "--name", name)
    assert rc == code
    row = next(c for c in report["checks"] if c["name"] == f"run {name!r} output")
    assert row["target"] == f"s3://{bucket}/dig/runs/{name}/"
    assert row["status"] == ("fail" if code else "ok")
    assert snapshot(bucket) == before


def test_preflight_workflow_concrete_run_name(capsys, make_bucket, snapshot, wf, no_osmo):
    bucket = make_bucket()
    before = snapshot(bucket)
    rc, report = run(capsys, wf(day0_workflow(f"s3://{bucket}/dig", run="old-run")))
    assert rc == 1
    assert [c["name"] for c in report["checks"] if c["status"] == "fail"] == ["run 'old-run' output"]
    assert snapshot(bucket) == before


def test_preflight_workflow_spec_step_is_checked(capsys, make_bucket, snapshot, wf, no_osmo):
    bucket = make_bucket()
    before = snapshot(bucket)
    rc, report = run(capsys, wf(day0_workflow(f"s3://{bucket}/dig", step=20000)))
    assert rc == 1
    (bad,) = [c for c in report["checks"] if c["status"] == "fail"]
    assert bad["name"] == "checkpoint (infer-all-defects): step 20000" and "14000" in bad["detail"]
    assert snapshot(bucket) == before


def test_preflight_workflow_fresh_checkpoint_needs_no_models_prefix(
    capsys, make_bucket, snapshot, wf, no_osmo
):
    bucket = make_bucket(drop=("models/pcb/",))
    before = snapshot(bucket)
    rc, report = run(capsys, wf(day0_workflow(f"s3://{bucket}/dig", fresh=True)))
    assert rc == 0, report
    assert not any("checkpoint" in c["name"] for c in report["checks"])
    assert snapshot(bucket) == before


def test_preflight_workflow_credentials_via_osmo(capsys, make_bucket, wf, osmo_stub):
    bucket = make_bucket()
    osmo_stub({"credential list": (0, (FIXTURES / "credential_list_no_hf.json").read_text(), "")})
    rc, report = run(capsys, wf(day0_workflow(f"s3://{bucket}/dig")))
    assert rc == 1
    row = next(c for c in report["checks"] if c["name"] == "OSMO credential hf-token")
    assert (
        row["status"] == "fail"
        and row["hint"] == "osmo credential set hf-token --type GENERIC --payload token=..."
    )
    osmo_stub({"credential list": (0, (FIXTURES / "credential_list_ok.json").read_text(), "")})
    rc, report = run(capsys, wf(day0_workflow(f"s3://{bucket}/dig")))
    assert rc == 0


@pytest.mark.parametrize("text", ["just: a mapping\n", "workflow: {groups: []}\n", "workflow: [unclosed\n"])
def test_preflight_workflow_not_a_workflow(capsys, s3_env, wf, text):
    rc, report = run(capsys, wf(text))
    assert rc == 2 and report["checks"][0]["name"] == "arguments"
