"""The run-book (`python -m compiler.plan`, compiler.runbook*): every section per flow, the real preflight argparse, DAG edges, submit line, CLI errors."""

from __future__ import annotations

import json
import re
import shlex

import pytest

from compiler import plan as plan_cli
from compiler import runbook
from compiler.runbook_build import SECTIONS, STAMP_LINE, build_runbook

GLASS_ZIP = "knobs.uc3_zip_url_root=s3://bkt/dig/uploads/glass-zip"
CASES = {
    "day0": ("flow=day0", "usecase=pcb"),
    "good_image": ("flow=good_image",),
    "structural": ("flow=structural",),
    "day1-pcb-real-align": ("flow=day1", "usecase=pcb"),
    "day1-glass-manual": ("flow=day1", "usecase=glass"),
    "finetune": ("flow=finetune",),
    "setup-glass": ("flow=setup", "usecase=glass", GLASS_ZIP),
    "setup_pretrained": ("flow=setup_pretrained",),
}
FILE = "build/example.yaml"


@pytest.fixture(scope="module")
def plans(compile_args):
    out = {}
    for case, args in CASES.items():
        compiled = compile_args(*args)
        out[case] = (compiled, build_runbook(compiled, FILE))
    return out


def _preflight_parser():
    try:
        from dig_preflight.cli import build_parser
    except ImportError as exc:  # the preflight package is another engineer's; say why we cannot check
        pytest.skip(f"dig_preflight CLI not importable ({exc}); preflight argparse check skipped")
    return build_parser()


@pytest.mark.parametrize("case", CASES)
def test_every_section_in_order_markdown_and_json(plans, case):
    _, plan = plans[case]
    md = runbook.to_markdown(plan)
    headings = re.findall(r"^## (.+)$", md, flags=re.M)
    assert headings == list(SECTIONS.values())
    doc = json.loads(runbook.to_json(plan))
    assert list(doc["sections"]) == list(SECTIONS)
    assert doc["headings"] == SECTIONS
    assert doc["sections"]["workflow"]["file"] == FILE
    assert FILE in md


@pytest.mark.parametrize("case", CASES)
def test_preflight_commands_parse_with_the_real_argparse(plans, case):
    parser = _preflight_parser()
    compiled, plan = plans[case]
    commands = [p["command"] for p in plan["preflights"]]
    subs = []
    for command in commands:
        argv = shlex.split(command)
        assert argv[:3] == ["python", "-m", "dig_preflight"]
        ns = parser.parse_args(argv[3:])
        subs.append(ns.command)
        if ns.command == "workflow":
            assert str(ns.file) == FILE
    assert subs[0] == "credentials" and subs[-1] == "workflow" and "urls" not in subs
    kit_or_train = any(t.step.startswith("render-") or t.step == "finetune" for t in compiled.tasks)
    assert ("pod-template" in subs) == kit_or_train


@pytest.mark.parametrize("case", CASES)
def test_artifacts_match_what_dig_preflight_checks(plans, case):
    """The plan's artifact list is the preflight's requirements of the same compiled text, item for item."""
    import yaml
    from dig_preflight.requirements import requirements

    compiled, plan = plans[case]
    theirs = [
        (r.url, r.read_by, r.contains() if r.kind != "run_absent" else [])
        for r in requirements(yaml.safe_load(compiled.text))
    ]
    ours = [(a["url"], a["read_by"], a["contains"]) for a in plan["required_url_artifacts"]]
    assert ours == theirs


def test_artifacts_name_the_files_inside(plans):
    arts = {a["path"]: a["contains"] for a in plans["day1-pcb-real-align"][1]["required_url_artifacts"]}
    assert arts["models/pcb"][1] == "iter_000014000.pt"
    assert arts["models/pcb"][0].startswith("ag_config.yaml")
    assert any("input_real_image/0603_H100.jpg" in c for c in arts["datasets/pcb/assets"])
    assert "passive_component/mask/missing/ (at least one image)" in arts["datasets/pcb/raw"]
    assert arts["models/pretrained"][0].startswith("pretrained/")
    glass = {a["path"]: a["contains"] for a in plans["day1-glass-manual"][1]["required_url_artifacts"]}
    assert glass["models/glass"][1] == "iter_000009000.pt"
    assert "datasets/pcb/assets" not in glass
    zip_arts = plans["setup-glass"][1]["required_url_artifacts"]
    assert [a["url"] for a in zip_arts] == ["s3://bkt/dig/uploads/glass-zip"]
    assert zip_arts[0]["contains"][0].startswith("mobile_screen.zip")
    assert plans["setup_pretrained"][1]["required_url_artifacts"] == []


@pytest.mark.parametrize("case", CASES)
def test_mermaid_has_every_task_edge_and_no_other(plans, case):
    compiled, plan = plans[case]
    mermaid = plan["group_order"]["mermaid"]
    assert mermaid.startswith("flowchart LR\n")
    ids = dict((name, node) for node, name in re.findall(r'(t\d+)\["[^"<]+<br/>([^"]+)"\]', mermaid))
    expected = {
        (ids[i["task"]], ids[t.name]) for t in compiled.tasks for i in t.inputs.values() if "task" in i
    }
    assert set(re.findall(r"(t\d+) --> (t\d+)", mermaid)) == expected
    assert len(plan["group_order"]["lines"]) == len(compiled.tasks)


def test_group_order_text_day0(plans):
    lines = plans["day0"][1]["group_order"]["lines"]
    assert lines == [
        "usd2roi-render (usd2roi-replicator) <- (no upstream: URL inputs only)",
        "augment-image-edit (image-edit) <- usd2roi-replicator",
        "anomaly-infer (infer-all-defects) <- image-edit, usd2roi-replicator",
    ]


def test_submit_command_day0_names_file_and_fresh_stamp(plans):
    sub = plans["day0"][1]["submit_command"]
    assert sub["lines"] == [STAMP_LINE, f"osmo workflow submit {FILE} --pool <pool> --set name=day0-$STAMP"]
    assert "already compiled in" in sub["note"]


def test_submit_with_name_and_pool_compiled_in(compile_args):
    plan = build_runbook(compile_args("flow=day0", "name=day0-1a2b3c4d", "pool=my-pool"), FILE)
    sub = plan["submit_command"]
    assert sub["lines"] == [f"osmo workflow submit {FILE} --pool my-pool"]
    assert "compiled in" in sub["note"] and "--set name" in sub["note"]
    assert plan["output_location"]["run_root"].endswith("/runs/day0-1a2b3c4d/")
    # The name is compiled in: the workflow check finds runs/day0-1a2b3c4d/ in the file, no --name needed.
    (wf,) = [p for p in plan["preflights"] if p["args"][0] == "workflow"]
    assert wf["args"] == ["workflow", FILE]
    assert any(a["path"] == "runs/day0-1a2b3c4d" for a in plan["required_url_artifacts"])


@pytest.mark.parametrize("case", ["setup-glass", "setup_pretrained"])
def test_setup_has_no_run_name(plans, case):
    plan = plans[case][1]
    assert plan["submit_command"]["lines"] == [f"osmo workflow submit {FILE} --pool <pool>"]
    assert "no run name" in plan["submit_command"]["note"].lower()
    assert "$STAMP" not in runbook.to_markdown(plan)


def test_pool_from_preferences(compile_args):
    plan = build_runbook(compile_args("flow=good_image", prefs={"pool": "saved-pool"}), FILE)
    assert plan["submit_command"]["lines"][-1].endswith("--pool saved-pool --set name=good_image-$STAMP")


def test_output_locations(plans):
    day0 = plans["day0"][1]["output_location"]
    assert day0["final"].endswith("/runs/day0-$STAMP/anomaly/inference/reconstructed_image/")
    assert plans["good_image"][1]["output_location"]["final"].endswith("/augment/crop/")
    assert plans["structural"][1]["output_location"]["final"].endswith(
        "/structural_defect_edited/<mode>/rgb/"
    )
    ft = plans["finetune"][1]["output_location"]
    assert "finetune/results/anomaly_gen/" in ft["final"] and "models/pcb" in ft["reuse"]


def test_notes(plans, compile_args):
    structural = " ".join(plans["structural"][1]["notes"])
    assert "render_patches" in structural and "crop_max_emit` does not exist on structural" in structural
    assert "1→~30" in structural and "not by structural" in structural
    assert "real-photo alignment" in " ".join(plans["day1-pcb-real-align"][1]["notes"])
    day0 = plans["day0"][1]["notes"]
    assert any(n.startswith("notice: knobs.anomaly_types_json") for n in day0)
    assert any(n.startswith("notice: dig_url_root: unconfirmed storage root") for n in day0)
    images = build_runbook(compile_args("flow=structural"), FILE, images=100)["notes"][-1]
    # the board's calibration table (spec §8), not ceil(N/30): 5 patches -> ~120 is the first >= 100
    assert "knobs.render_patches=5 -> expected ~120 crops" in images and "~75 (render_patches=3)" in images
    small = build_runbook(compile_args("flow=structural"), FILE, images=10)["notes"][-1]
    assert "knobs.render_patches=2 knobs.defect_modes=shift -> expected ~17 crops" in small


def test_workflow_values(plans, compile_args):
    values = {v["name"]: v["value"] for v in plans["day0"][1]["workflow"]["values"]}
    assert values["board"] == "0603_H100" and values["checkpoint step"] == 14000
    assert values["crop_max_emit"] == "''" and values["run name"] == "day0-$STAMP"
    assert plans["day0"][1]["workflow"]["title"] == "Day 0 — texture defects"
    assert "gpu-train" in plans["day0"][1]["workflow"]["resources"]
    ft = {
        v["name"]: v["value"]
        for v in build_runbook(compile_args("flow=day1", "knobs.use_pretrained_checkpoint=false"), FILE)[
            "workflow"
        ]["values"]
    }
    assert ft["checkpoint"].startswith("finetune first")


def test_cli_writes_the_compilers_file_and_prints_markdown(tmp_path, capsys, compile_args):
    out = tmp_path / "wf.yaml"
    assert plan_cli.main(["flow=structural", f"out={out}"]) == 0
    md = capsys.readouterr().out
    assert out.read_text() == compile_args("flow=structural", f"out={out}").text
    assert f"osmo workflow submit {out} --pool <pool> --set name=structural-$STAMP" in md
    assert plan_cli.main(["flow=structural", f"out={out}", "--json", "--images", "60"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert list(doc["sections"]) == list(SECTIONS)
    assert "knobs.render_patches=3 -> expected ~75" in doc["sections"]["notes"][-1]
    # the compiled file is the sized one
    assert out.read_text() == compile_args("flow=structural", f"out={out}", "knobs.render_patches=3").text


@pytest.mark.parametrize(
    "bad",
    [
        ["flow=day0", "knobs.crop_max_emitt=5"],
        ["flow=structural", "knobs.crop_max_emit=5"],
        ["flow=nope"],
        ["flow=day0", "usecase=glass"],
    ],
)
def test_bad_overrides_exit_1_with_the_compilers_message(bad, capsys, tmp_path):
    from compiler.__main__ import main as compile_main

    assert compile_main([*bad, f"out={tmp_path / 'x.yaml'}"]) == 1
    expected = capsys.readouterr().err
    assert plan_cli.main([*bad, f"out={tmp_path / 'x.yaml'}"]) == 1
    captured = capsys.readouterr()
    assert captured.err == expected and captured.out == ""
    assert not (tmp_path / "x.yaml").exists()


@pytest.mark.parametrize("bad", [["--images", "abc"], ["--images"], ["--bogus"]])
def test_usage_errors_exit_2(bad, capsys):
    assert plan_cli.main(["flow=day0", *bad]) == 2
    assert "usage error" in capsys.readouterr().err


def test_readme_carries_every_example_plan():
    from compiler.paths import REPO_ROOT

    readme = (REPO_ROOT / "README.md").read_text()
    assert runbook.readme_plans_block() in readme, (
        "README plans are stale: run `python -m compiler.plan --write-examples`"
    )
    for stem in runbook.EXAMPLES:
        assert f"python -m compiler.plan flow={stem}" in readme


def test_examples_are_fresh(tmp_path):
    written = runbook.write_examples(tmp_path)
    assert sorted(p.name for p in written) == sorted(f"{f}.md" for f in runbook.EXAMPLES)
    for path in written:
        shipped = runbook.DOCS_PLANS / path.name
        assert shipped.read_text() == path.read_text(), (
            f"{shipped} is stale: run `python -m compiler.plan --write-examples`"
        )
