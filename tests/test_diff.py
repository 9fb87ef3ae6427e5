"""compiler.diff: exit codes like diff, exactly the keys a knob reaches, added groups, --stat, --json."""

from __future__ import annotations

import copy
import json
import re

import pytest
import yaml

from compiler import diff as diff_cli


@pytest.fixture(scope="module")
def texts(compile_args):
    return {
        "base": compile_args("flow=day0").text,
        "knobs": compile_args("flow=day0", "knobs.crop_max_emit=5", "knobs.num_sdg=15").text,
        "finetune": compile_args("flow=day0", "knobs.use_pretrained_checkpoint=false").text,
    }


@pytest.fixture
def files(tmp_path, texts):
    out = {}
    for key, text in texts.items():
        out[key] = tmp_path / f"{key}.yaml"
        out[key].write_text(text)
    return out


def run(capsys, *args) -> tuple[int, str]:
    code = diff_cli.main([str(a) for a in args])
    return code, capsys.readouterr().out


def test_identical_exits_0(files, capsys, tmp_path):
    code, out = run(capsys, files["base"], files["base"])
    assert code == 0 and "Identical" in out
    # Comments are not semantic: a different header is still identical.
    other = tmp_path / "other.yaml"
    other.write_text("# another header\n" + files["base"].read_text())
    assert run(capsys, files["base"], other)[0] == 0


def test_knob_change_shows_exactly_the_reached_keys(files, capsys):
    code, out = run(capsys, files["base"], files["knobs"], "--json")
    assert code == 1
    doc = json.loads(out)
    assert doc["workflow"] == {} and doc["groups"] == {"added": [], "removed": [], "order": None}
    tasks = {t["name"]: t for t in doc["tasks"]}
    assert set(tasks) == {"usd2roi-replicator", "infer-all-defects"}
    render, infer = tasks["usd2roi-replicator"], tasks["infer-all-defects"]
    assert render["fields"] == {} and render["environment"] == {"added": {}, "removed": {}, "changed": {}}
    assert [(f["path"], f["keys"]) for f in render["files"]] == [
        ("/tmp/day0_crop.yaml", [{"key": "crop.max_emit", "old": 10, "new": 5}])
    ]
    assert infer["environment"] == {"added": {}, "removed": {}, "changed": {"NUM_SDG": ["30", "15"]}}
    assert [(f["path"], f["keys"]) for f in infer["files"]] == [
        ("/tmp/dig/spec.json", [{"key": "num_sdg", "old": 30, "new": 15}])
    ]
    code, md = run(capsys, files["base"], files["knobs"])
    assert "- env `NUM_SDG`: `30` → `15`" in md
    assert "  - `crop.max_emit`: `10` → `5`" in md and "  - `num_sdg`: `30` → `15`" in md


def test_added_group_and_changed_input(files, capsys):
    code, out = run(capsys, files["base"], files["finetune"], "--json")
    assert code == 1
    doc = json.loads(out)
    assert doc["groups"]["added"] == ["finetune-job"] and doc["groups"]["removed"] == []
    status = {t["name"]: t["status"] for t in doc["tasks"]}
    assert status == {"infer-all-defects": "changed", "finetune": "added"}
    _, md = run(capsys, files["base"], files["finetune"])
    assert "- added: `finetune-job`" in md
    assert "## Task `finetune` (added, group `finetune-job`)" in md
    assert '- inputs task finetune: `<absent>` → `{"task": "finetune"}`' in md
    # Reversed, the group shows as removed.
    doc = json.loads(run(capsys, files["finetune"], files["base"], "--json")[1])
    assert doc["groups"]["removed"] == ["finetune-job"]


def test_workflow_level_and_order_changes(texts):
    a = yaml.safe_load(texts["base"])
    b = copy.deepcopy(a)
    b["workflow"]["name"] = "renamed"
    b["workflow"]["timeout"]["exec_timeout"] = "10h"
    b["workflow"]["resources"]["gpu-infer"]["memory"] = "128Gi"
    del b["workflow"]["resources"]["gpu-train"]
    groups = b["workflow"]["groups"]
    groups[0], groups[1] = groups[1], groups[0]
    b["workflow"]["groups"][2]["tasks"][0]["image"] = "nvcr.io/nvidia/paidf-anomalygen:2.0.0"
    result = diff_cli.diff_docs(a, b)
    assert result["workflow"]["name"] == ["texture_defect_gen_day0", "renamed"]
    assert result["workflow"]["timeout"]["changed"] == {"exec_timeout": ["28h", "10h"]}
    assert result["workflow"]["resources"]["removed"] == ["gpu-train"]
    assert result["workflow"]["resources"]["changed"]["gpu-infer"]["changed"] == {"memory": ["64Gi", "128Gi"]}
    assert result["groups"]["order"]["b"][:2] == ["augment-image-edit", "usd2roi-render"]
    (task,) = result["tasks"]
    assert task["fields"] == {
        "image": ["nvcr.io/nvidia/paidf-anomalygen:1.0.0", "nvcr.io/nvidia/paidf-anomalygen:2.0.0"]
    }
    md = diff_cli.to_markdown(result, "a", "b")
    assert "- timeout.exec_timeout: `28h` → `10h`" in md and "- order:" in md
    assert "- resources.gpu-infer.memory: `64Gi` → `128Gi`" in md


def test_script_change_is_a_unified_diff_and_stat_hides_it(texts, tmp_path, capsys):
    b = yaml.safe_load(texts["base"])
    files = b["workflow"]["groups"][0]["tasks"][0]["files"]
    launcher = next(f for f in files if f["path"] == "/tmp/run.sh")
    launcher["contents"] += "echo extra\n"
    files.append({"path": "/tmp/new.txt", "contents": "hello\n"})
    pa, pb = tmp_path / "a.yaml", tmp_path / "b.yaml"
    pa.write_text(texts["base"])
    pb.write_text(yaml.safe_dump(b, sort_keys=False))
    code, md = run(capsys, pa, pb)
    assert code == 1
    assert "- file `/tmp/run.sh` changed (+1 −0)" in md and "+echo extra" in md and "```diff" in md
    assert "- file `/tmp/new.txt` added (+1 −0)" in md
    code, stat = run(capsys, pa, pb, "--stat")
    assert code == 1 and "- file `/tmp/run.sh` changed (+1 −0)" in stat and "```diff" not in stat
    doc = json.loads(run(capsys, pa, pb, "--json", "--stat")[1])
    assert all("diff" not in f for t in doc["tasks"] for f in t["files"])


def test_json_shape(files, capsys):
    doc = json.loads(run(capsys, files["base"], files["knobs"], "--json")[1])
    assert set(doc) == {"a", "b", "identical", "workflow", "groups", "tasks"}
    assert doc["identical"] is False
    task = doc["tasks"][0]
    assert set(task) == {"name", "status", "group", "fields", "environment", "files", "other"}
    assert set(task["files"][0]) == {"path", "status", "added_lines", "removed_lines", "diff", "keys"}


@pytest.mark.parametrize("args", [[], ["one.yaml"], ["a", "b", "c"], ["--nope", "a", "b"]])
def test_usage_errors_exit_2(args, capsys):
    assert diff_cli.main(args) == 2
    assert "usage" in capsys.readouterr().err


def test_unreadable_or_non_workflow_exit_2(tmp_path, files, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [unclosed\n")
    plain = tmp_path / "plain.yaml"
    plain.write_text("just: a mapping\n")
    for other in (tmp_path / "missing.yaml", bad, plain):
        assert diff_cli.main([str(files["base"]), str(other)]) == 2
        assert "usage error" in capsys.readouterr().err


def test_docs_example_is_current(files, capsys):
    """docs/diff-example.md shows what the diff prints today for the Day 0 knob change."""
    from compiler.paths import REPO_ROOT

    doc = (REPO_ROOT / "docs" / "diff-example.md").read_text()
    _, md = run(capsys, files["base"], files["knobs"])
    body = re.sub(r"^## ", "#### ", md.split("\n", 2)[2], flags=re.M)  # drop the header naming tmp paths
    assert body.startswith("#### Task `usd2roi-replicator`")
    assert body in doc, "docs/diff-example.md is stale: regenerate it with the commands it shows"
