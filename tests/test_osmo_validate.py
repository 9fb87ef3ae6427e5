"""Tests for the offline OSMO workflow validator (compiler.osmo and python -m compiler.validate)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from compiler.osmo import Finding, has_errors, parse_sets, validate_file, validate_text

DATA = Path(__file__).parent / "data" / "osmo"
REPO = Path(__file__).resolve().parents[1]
MINIMAL = (DATA / "minimal.yaml").read_text()
DAY0 = (DATA / "day0_compiled.yaml").read_text()


def errors(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity == "error"]


def one_error(findings: list[Finding]) -> Finding:
    errs = errors(findings)
    assert len(errs) == 1, errs
    return errs[0]


def dump(doc: dict) -> str:
    return yaml.safe_dump(doc, sort_keys=False)


def wf(**workflow) -> dict:
    base = {"name": "wf", "tasks": [{"name": "t", "image": "ubuntu:24.04", "command": ["bash"]}]}
    base.update(workflow)
    return {"version": 2, "workflow": base}


def task(**fields) -> dict:
    out = {"name": "t", "image": "ubuntu:24.04", "command": ["bash"]}
    out.update(fields)
    return out


# ------------------------------------------------------------------------------------- valid input


@pytest.mark.parametrize("name", ["minimal.yaml", "day0_compiled.yaml", "upstream_template.yaml"])
def test_fixtures_are_valid(name: str) -> None:
    findings = validate_file(DATA / name)
    assert not has_errors(findings), findings


def test_compiled_name_is_a_note() -> None:
    findings = validate_text(DAY0)
    assert errors(findings) == []
    assert [f.message.split(" (")[0] for f in findings if f.severity == "note"] == [
        "name is set at submit time"
    ]


def test_name_strict_when_not_allowed() -> None:
    errs = errors(validate_text(DAY0, allow_unset=set()))
    assert len(errs) == 5  # three output URLs, EXP_NAME and the spec.json of the inference task
    assert all(e.message.startswith("text does not survive OSMO's second Jinja render") for e in errs)
    assert all("`{{ name }}`" in e.message for e in errs)


def test_name_given_by_set_is_rendered() -> None:
    findings = validate_text(DAY0, sets={"name": "day0-1234abcd"})
    assert findings == []


# ------------------------------------------------------------------------- top level and version


@pytest.mark.parametrize(
    ("text", "path", "message"),
    [
        ("version: 2\n", "workflow", "missing top-level key `workflow:`"),
        (MINIMAL + "pool: p\n", "pool", "top-level key 'pool' is not allowed"),
        (MINIMAL + "version: 2\n", "version", "top-level key 'version' appears twice"),
        (MINIMAL.replace("version: 2", "version: 3"), "version", "`version` must be 2; got 3"),
        (MINIMAL.replace("version: 2", "version: true"), "version", "`version` must be 2; got True"),
        ("workflow: [\n", "workflow", "YAML does not parse"),
    ],
)
def test_top_level(text: str, path: str, message: str) -> None:
    err = errors(validate_text(text))[0]
    assert err.path == path
    assert err.message.startswith(message), err.message


@pytest.mark.parametrize("version", ["2", "'2'", "2.0"])
def test_version_spellings_accepted(version: str) -> None:
    assert errors(validate_text(MINIMAL.replace("version: 2", f"version: {version}"))) == []


def test_bad_version_in_template_is_a_warning() -> None:
    text = (DATA / "upstream_template.yaml").read_text().replace("version: 2", "version: 1")
    findings = validate_text(text, base_dir=DATA)
    assert errors(findings) == []
    assert any(f.severity == "warning" and f.path == "version" for f in findings)


# --------------------------------------------------------------------------------- schema rules


@pytest.mark.parametrize(
    ("doc", "path", "message"),
    [
        (wf(pools="x"), "workflow", "unknown key 'pools'; remove it or fix the spelling"),
        (wf(tasks=[task(imagee="x")]), "workflow.tasks[0]", "unknown key 'imagee'"),
        (
            wf(tasks=[task(files=[{"path": "/a", "contents": "", "mode": 1}])]),
            "workflow.tasks[0].files[0]",
            "unknown key 'mode'",
        ),
        (
            wf(resources={"default": {"cpu": 1, "ram": "1Gi"}}),
            "workflow.resources.default",
            "unknown key 'ram'",
        ),
        (wf(timeout={"exec": "1h"}), "workflow.timeout", "unknown key 'exec'"),
        (wf(tasks=[{"name": "t", "command": ["bash"]}]), "workflow.tasks[0]", "missing required key 'image'"),
        (wf(tasks=[task(command=[])]), "workflow.tasks[0].command", "must not be empty"),
        (wf(name="1wf"), "workflow.name", "invalid value; got '1wf'; allowed: letters, digits"),
        (wf(name="wf-"), "workflow.name", "invalid value; got 'wf-'"),
        (wf(tasks=[task(outputs=[{"task": "t"}])]), "workflow.tasks[0].outputs[0]", "unknown key 'task'"),
        (
            wf(tasks=[task(inputs=[{"dataset": {"name": "d"}}])]),
            "workflow.tasks[0].inputs[0]",
            "invalid entry with keys ['dataset']",
        ),
        (
            wf(tasks=[task(credentials={"c": ["x"]})]),
            "workflow.tasks[0].credentials.c",
            'invalid value; got ["x"]; allowed: a mount path',
        ),
        (
            wf(tasks=[task(credentials={"c": {"ENV": None}})]),
            "workflow.tasks[0].credentials.c",
            "invalid value",
        ),
        (wf(tasks=[task(environment={"A": None})]), "workflow.tasks[0].environment.A", "wrong type"),
        (
            wf(resources={"default": {"memory": "32Zi"}}),
            "workflow.resources.default.memory",
            "invalid value; got '32Zi'; allowed: a number with a unit in T, Ti, TiB, G, Gi, GiB, M, Mi, MiB",
        ),
        (
            wf(resources={"default": {"memory": "32GB"}}),
            "workflow.resources.default.memory",
            "invalid value; got '32GB'; allowed: a number with a unit",
        ),
        (
            wf(resources={"default": {"cpu": True}}),
            "workflow.resources.default.cpu",
            "invalid value; got true",
        ),
        (
            wf(timeout={"exec_timeout": "1 hour"}),
            "workflow.timeout.exec_timeout",
            "invalid value; got '1 hour'; allowed: seconds, or a duration",
        ),
        (
            wf(tasks=[task(downloadType="mount")]),
            "workflow.tasks[0].downloadType",
            "invalid value; got 'mount'; allowed: 'download'",
        ),
        (wf(tasks=[task(kpis=[{"index": "a"}])]), "workflow.tasks[0].kpis[0]", "missing required key 'path'"),
        (
            wf(tasks=[task(checkpoint=[{"path": "/c", "url": "s3://b/c", "frequency": True}])]),
            "workflow.tasks[0].checkpoint[0].frequency",
            "invalid value; got true",
        ),
        (wf(labels={f"k{i}": "v" for i in range(17)}), "workflow.labels", "too many entries (17)"),
        (
            wf(groups=[{"name": "g", "tasks": []}], tasks=None),
            "workflow.groups[0].tasks",
            "must not be empty",
        ),
    ],
)
def test_schema_rules(doc: dict, path: str, message: str) -> None:
    if doc["workflow"].get("tasks") is None:
        doc["workflow"].pop("tasks")
    errs = [e for e in errors(validate_text(dump(doc))) if e.path == path]
    assert any(e.message.startswith(message) for e in errs), errs


# --------------------------------------------------------------------------------- python rules


def group(name: str, *tasks: dict) -> dict:
    return {"name": name, "tasks": list(tasks)}


@pytest.mark.parametrize(
    ("doc", "path", "message"),
    [
        (wf(name="w" * 65), "workflow.name", "workflow name is too long; shorten it to at most 64"),
        (
            wf(tasks=[task(name="Group_1"), task(name="group-1")]),
            "workflow.tasks[1].name",
            "task name 'group-1' clashes with 'Group_1'",
        ),
        (
            wf(tasks=None, groups=[group("a", task(name="A"))]),
            "workflow.groups[0].tasks[0].name",
            "task name 'A' clashes with 'a'",
        ),
        (wf(tasks=[task(name="osmo-ctrl")]), "workflow.tasks[0].name", "a task may not be named 'osmo-ctrl'"),
        (wf(tasks=[task(name="osmo_CTRL")]), "workflow.tasks[0].name", "a task may not be named 'osmo-ctrl'"),
        (wf(groups=[group("g", task())]), "workflow", "use either `groups` or `tasks`, not both"),
        (wf(tasks=[]), "workflow", "a workflow needs at least one group or task"),
        (
            wf(tasks=None, groups=[group("g", task(name="a"), task(name="b"))]),
            "workflow.groups[0].tasks",
            "group 'g' has 0 lead task(s); mark exactly one task `lead: true`",
        ),
        (
            wf(tasks=None, groups=[group("g", task(name="a", lead=True), task(name="b", lead=True))]),
            "workflow.groups[0].tasks",
            "group 'g' has 2 lead task(s)",
        ),
        (
            wf(tasks=[task(name=f"t{i}") for i in range(101)]),
            "workflow",
            "too many tasks; split the workflow",
        ),
        (
            wf(tasks=[task(inputs=[{"task": "nope"}])]),
            "workflow.tasks[0].inputs[0].task",
            "Task input nope does not exist",
        ),
        (
            wf(
                tasks=None,
                groups=[group("g1", task(name="a", inputs=[{"task": "b"}])), group("g2", task(name="b"))],
            ),
            "workflow.groups[0].tasks[0].inputs[0].task",
            "task input 'b' is in a later group ('g2')",
        ),
        (
            wf(
                tasks=None,
                groups=[group("g", task(name="a", lead=True), task(name="b", inputs=[{"task": "a"}]))],
            ),
            "workflow.groups[0].tasks[1].inputs[0].task",
            "task input 'a' is in the same group ('g')",
        ),
        (
            wf(tasks=[task(inputs=[{"url": "s3://b/x", "regex": "("}])]),
            "workflow.tasks[0].inputs[0].regex",
            "Invalid regex: (",
        ),
        (
            wf(tasks=[task(files=[{"path": "/osmo/x", "contents": ""}])]),
            "workflow.tasks[0].files[0].path",
            "file path '/osmo/x' is empty or under /osmo",
        ),
        (
            wf(tasks=[task(files=[{"path": "/", "contents": ""}])]),
            "workflow.tasks[0].files[0].path",
            "file path '/' is empty or under /osmo",
        ),
        (
            wf(tasks=[task(files=[{"path": "/tmp/a", "contents": ""}, {"path": "/tmp/a", "contents": ""}])]),
            "workflow.tasks[0].files[1].path",
            'Task "t" has multiple files at the same path "/tmp/a"',
        ),
        (
            wf(tasks=[task(outputs=[{"url": "http://x/y"}])]),
            "workflow.tasks[0].outputs[0].url",
            "Unknown URI scheme: 'http://x/y'",
        ),
        (
            wf(tasks=[task(outputs=[{"url": ""}])]),
            "workflow.tasks[0].outputs[0].url",
            "Unknown URI scheme: ''",
        ),
        (
            wf(tasks=[task(outputs=[{"url": "s3://b//x"}])]),
            "workflow.tasks[0].outputs[0].url",
            "Incorrectly formatted s3 URI: 's3://b//x'",
        ),
        (
            wf(tasks=[task(outputs=[{"url": "s3://b/a,b"}])]),
            "workflow.tasks[0].outputs[0].url",
            "Incorrectly formatted s3 URI",
        ),
        (
            wf(tasks=[task(outputs=[{"url": "swift://acct/container"}])]),
            "workflow.tasks[0].outputs[0].url",
            "Incorrectly formatted swift URI: 'swift://acct/container'; needs at least 3 path components",
        ),
        (
            wf(tasks=[task(outputs=[{"url": "azure://acct"}])]),
            "workflow.tasks[0].outputs[0].url",
            "Incorrectly formatted azure URI",
        ),
        (
            wf(tasks=[task(checkpoint=[{"path": "/c", "url": "file:///c", "frequency": 60}])]),
            "workflow.tasks[0].checkpoint[0].url",
            "Unknown URI scheme",
        ),
        (
            wf(tasks=[task(exitActions={"RETRY": "1"})]),
            "workflow.tasks[0].exitActions.RETRY",
            "Invalid exit action RETRY for task t",
        ),
        (
            wf(tasks=[task(exitActions={"fail": "1, 2"})]),
            "workflow.tasks[0].exitActions.fail",
            "Invalid exit codes 1, 2 for action fail for task t",
        ),
        (wf(tasks=[task(resource="big")]), "workflow.tasks[0].resource", "Requesting undefined resource big"),
        (wf(resources={"gpu": {"cpu": 1}}), "workflow.tasks[0].resource", "Task t has no specified resource"),
        (wf(tasks=[task(cacheSize="120%")]), "workflow.tasks[0].cacheSize", "cacheSize '120%': a percentage"),
        (wf(tasks=[task(cacheSize="lots")]), "workflow.tasks[0].cacheSize", "invalid cacheSize 'lots'"),
        (
            wf(tasks=[task(volumeMounts=["/a:"])]),
            "workflow.tasks[0].volumeMounts[0]",
            "Invalid task volume mount: /a:",
        ),
        (
            wf(tasks=[task(image="NVCR.io/Bad Image")]),
            "workflow.tasks[0].image",
            "image 'NVCR.io/Bad Image' is not a docker reference",
        ),
        (wf(labels={"bad key!": "v"}), "workflow.labels.bad key!", "invalid label key 'bad key!'"),
        (wf(labels={"team": "-bad"}), "workflow.labels.team", "invalid label value '-bad'"),
        (
            wf(
                tasks=[task(name="a", resource="r1"), task(name="b", resource="r2")],
                resources={"r1": {"topology": [{"key": "rack"}]}, "r2": {}},
            ),
            "workflow.resources",
            "all tasks must use the same topology key set",
        ),
    ],
)
def test_python_rules(doc: dict, path: str, message: str) -> None:
    if doc["workflow"].get("tasks") is None:
        doc["workflow"].pop("tasks")
    findings = validate_text(dump(doc))
    errs = [e for e in errors(findings) if e.path == path]
    assert any(e.message.startswith(message) for e in errs), findings


@pytest.mark.parametrize(
    ("doc", "path", "message"),
    [
        (
            wf(tasks=[task(name=f"t{i}") for i in range(21)]),
            "workflow",
            "21 tasks exceed OSMO's code default",
        ),
        (
            wf(resources={"default": {"memory": 4096}}),
            "workflow.resources.default.memory",
            "memory '4096' has no unit, so OSMO reads it as bytes",
        ),
        (wf(resources={"default": {"cpu": 0}}), "workflow.resources.default.cpu", "cpu must be > 0"),
    ],
)
def test_warnings(doc: dict, path: str, message: str) -> None:
    findings = validate_text(dump(doc))
    assert errors(findings) == [], findings
    warns = [f for f in findings if f.severity == "warning" and f.path == path]
    assert warns and warns[0].message.startswith(message), findings


@pytest.mark.parametrize("value", [64, "64", "1000B", "1K", "500m", "0Gi"])
@pytest.mark.parametrize("key", ["memory", "storage"])
def test_quantities_under_one_ki_are_errors(key: str, value: object) -> None:
    findings = validate_text(dump(wf(resources={"default": {key: value}})))
    errs = [e for e in errors(findings) if e.path == f"workflow.resources.default.{key}"]
    assert errs and "whole Ki, truncating" in errs[0].message and "> 0" in errs[0].message, findings


def test_wfid_input_is_a_note() -> None:
    findings = validate_text(dump(wf(tasks=[task(inputs=[{"task": "wf-12:train"}])])))
    assert errors(findings) == []
    assert [f.path for f in findings if f.severity == "note"] == ["workflow.tasks[0].inputs[0].task"]


def test_allowed_exceptions() -> None:
    doc = wf(
        tasks=[
            task(
                files=[{"path": "/osmo/data/output/meta.json", "contents": "{}"}],
                exitActions={"complete": "0", "RESCHEDULE": "1-5,7"},
                cacheSize="50%",
                volumeMounts=["/data", "/data:/mnt"],
                inputs=[{"url": "swift://a/b/c"}],
                outputs=[{"url": "tos://b/x/"}],
            )
        ],
        timeout={"exec_timeout": "PT10S", "queue_timeout": 3600},
        resources={"default": {"cpu": "4", "gpu": 0, "memory": "1.5Gi", "storage": "10Gi"}},
    )
    assert validate_text(dump(doc)) == []


# -------------------------------------------------------------------------------- second render


def test_bash_array_length_is_caught_with_location() -> None:
    text = DAY0.replace(
        "export PYTHONPATH=/tmp/dig\n          exec python3 -m dig_stages infer",
        "export PYTHONPATH=/tmp/dig\n          n=${#arr[@]}\n          exec python3 -m dig_stages infer",
    )
    err = one_error(validate_text(text))
    assert err.path == "workflow.groups[2].tasks[0].files[1].contents"
    assert err.message.startswith(
        "text does not survive OSMO's second Jinja render (task 'infer-all-defects', file '/tmp/run_infer.sh', "
        "line 3, column 4: 'n=${#arr[@]}'): `{#` opens a Jinja comment"
    )


def test_jinja_if_left_in_script() -> None:
    text = DAY0.replace(
        "export PYTHONPATH=/tmp/dig\n          exec uv",
        "{% if fast %}\n          export PYTHONPATH=/tmp/dig\n          {% endif %}\n          exec uv",
    )
    errs = errors(validate_text(text))
    assert [e.message.split(": a Jinja")[0] for e in errs] == [
        "text does not survive OSMO's second Jinja render (task 'image-edit', file '/tmp/run_image_edit.sh', "
        "line 2, column 1: '{% if fast %}')",
        "text does not survive OSMO's second Jinja render (task 'image-edit', file '/tmp/run_image_edit.sh', "
        "line 4, column 1: '{% endif %}')",
    ]


def test_other_variable_flagged_name_allowed() -> None:
    text = DAY0.replace('EXP_NAME: "{{ name }}"', 'EXP_NAME: "{{ other }}"')
    err = one_error(validate_text(text))
    assert err.path == "workflow.groups[2].tasks[0].environment.EXP_NAME"
    assert "Jinja variable `{{ other }}` is undefined in OSMO's second render" in err.message
    assert not has_errors(validate_text(text, allow_unset={"name", "other"}))


def test_osmo_token_with_spaces() -> None:
    text = DAY0.replace('"output_dir": "{{output}}", "layout"', '"output_dir": "{{ output }}", "layout"')
    err = one_error(validate_text(text))
    assert "OSMO token written with spaces; write `{{output}}`" in err.message


TEMPLATE = (DATA / "upstream_template.yaml").read_text()


def test_template_syntax_error_located() -> None:
    err = one_error(validate_text(TEMPLATE.replace("OUT={{output}}", "N=${#ARR[@]}"), base_dir=DATA))
    assert err.path == "workflow.groups[0].tasks[0].files[1].contents"
    assert err.line == 36
    assert err.message.startswith(
        "OSMO's Jinja render fails: Missing end of comment tag (task 'usd2roi-replicator', "
        "file '/tmp/run.sh', line 3 of the text, file line 36, column 14)"
    )


def test_template_syntax_error_unplaceable_names_the_file_line() -> None:
    # A flow-style list around the script keeps the raw text from parsing as YAML.
    text = TEMPLATE.replace("OUT={{output}}", "N=${#ARR[@]}").replace("      files:\n", "      files: [\n", 1)
    err = one_error(validate_text(text, base_dir=DATA))
    assert (err.path, err.line) == ("workflow", 36)
    assert err.message.startswith(
        "OSMO's Jinja render fails: Missing end of comment tag (file line 36, column 14)"
    )


def test_template_undefined_variables_all_named() -> None:
    text = (DATA / "upstream_template.yaml").read_text().replace('  board: "0603_H100"\n', "")
    text = text.replace("  platform: default\n", "")
    msgs = [e.message for e in errors(validate_text(text, base_dir=DATA))]
    assert msgs == [
        "Jinja substitution failure: 'platform' is undefined; add it to `default-values`, pass "
        "`--set platform=...`, or allow it with `--allow-unset platform`",
        "Jinja substitution failure: 'board' is undefined; add it to `default-values`, pass "
        "`--set board=...`, or allow it with `--allow-unset board`",
    ]


def test_localpath_contents_scanned_for_second_render(tmp_path: Path) -> None:
    (tmp_path / "helper.sh").write_text("echo ${#arr[@]}\n")
    doc = wf(tasks=[task(files=[{"localpath": "helper.sh", "path": "/tmp/helper.sh"}])])
    (tmp_path / "wf.yaml").write_text(dump(doc))
    err = one_error(validate_file(tmp_path / "wf.yaml"))
    assert err.path == "workflow.tasks[0].files[0].contents"
    assert "(task 't', file '/tmp/helper.sh', line 1, column 7" in err.message


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"localpath": "missing.txt", "path": "/tmp/m"}, "The file/path {d}/missing.txt does not exist!"),
        ({"localpath": "bin.dat", "path": "/tmp/b"}, "{d}/bin.dat is not UTF-8 text"),
        ({"localpath": "bin.dat", "path": "/tmp/b", "contents": "x"}, "Files tag dont support contents and"),
    ],
)
def test_localpath_rules(tmp_path: Path, entry: dict, message: str) -> None:
    (tmp_path / "bin.dat").write_bytes(b"\xb7\x00\xff")
    (tmp_path / "wf.yaml").write_text(dump(wf(tasks=[task(files=[entry])])))
    err = one_error(validate_file(tmp_path / "wf.yaml"))
    assert err.message.startswith(message.format(d=tmp_path)), err.message


# ------------------------------------------------------------------------------ rendering and --set


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("115_2819_000", 1152819000),
        ("007", 7),
        ("1e3", 1000.0),
        ("true", "true"),
        ("0603_H100", "0603_H100"),
        ("-1", -1),
        ("a=b", "a=b"),
    ],
)
def test_set_casting(raw: str, value: object) -> None:
    cast = parse_sets([f"k={raw}"])["k"]
    assert cast == value and type(cast) is type(value)


def test_set_string_keeps_strings() -> None:
    assert parse_sets(["board=0603"], cast=False) == {"board": "0603"}
    with pytest.raises(ValueError, match="--set expects key=value; got 'board'"):
        parse_sets(["board"])


def test_template_set_underscore_int_selects_cookbook() -> None:
    # 115_2819_000 becomes int 1152819000, whose cookbook directory exists.
    path = DATA / "upstream_template.yaml"
    assert not has_errors(validate_file(path, sets=parse_sets(["board=115_2819_000"])))
    err = one_error(validate_file(path, sets=parse_sets(["board=0603"])))
    assert err.path == "workflow.groups[0].tasks[0].files[0].localpath"
    assert "cookbooks/pcb/603/pcba_target.yaml does not exist!" in err.message


def test_template_set_overrides_default_values() -> None:
    path = DATA / "upstream_template.yaml"
    err = one_error(validate_file(path, sets=parse_sets(["render_memory=32GB"])))
    assert err.path == "workflow.resources.gpu-render.memory"


def test_osmo_tokens_survive_first_render() -> None:
    text = (DATA / "upstream_template.yaml").read_text()
    assert validate_text(text, sets={"name": "r"}, base_dir=DATA) == []


# ------------------------------------------------------------------------------------------- CLI


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "compiler.validate", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.slow
def test_cli_exit_codes(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(MINIMAL.replace("image: ubuntu:24.04", "image: ubuntu:24.04\n    imagee: x"))
    ok = run_cli(str(DATA / "minimal.yaml"), str(DATA / "day0_compiled.yaml"))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert f"{DATA / 'day0_compiled.yaml'}: workflow: note: name is set at submit time" in ok.stdout
    invalid = run_cli(str(bad))
    assert invalid.returncode == 1
    assert f"{bad}: workflow.tasks[0]: unknown key 'imagee'" in invalid.stdout
    unparsable = tmp_path / "broken.yaml"
    unparsable.write_text("workflow: [\n")
    assert run_cli(str(unparsable)).returncode == 1
    missing = run_cli(str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    assert run_cli(str(DATA / "minimal.yaml"), "--set", "novalue").returncode == 2
    assert run_cli().returncode == 2
    strict = run_cli(str(DATA / "day0_compiled.yaml"), "--allow-unset", "")
    assert strict.returncode == 1
    templ = run_cli(str(DATA / "upstream_template.yaml"), "--set", "board=115_2819_000", "name=r1")
    assert templ.returncode == 0, templ.stdout


@pytest.mark.slow
def test_cli_json_shape(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(MINIMAL.replace("version: 2", "version: 3"))
    result = run_cli("--json", str(DATA / "day0_compiled.yaml"), str(bad))
    assert result.returncode == 1
    doc = json.loads(result.stdout)
    assert doc["valid"] is False
    assert [f["file"] for f in doc["files"]] == [str(DATA / "day0_compiled.yaml"), str(bad)]
    assert doc["files"][0]["valid"] is True
    assert doc["files"][0]["findings"][0]["severity"] == "note"
    assert set(doc["files"][1]["findings"][0]) == {"severity", "path", "message", "line"}
    assert doc["files"][1]["findings"][0] == {
        "severity": "error",
        "path": "version",
        "message": "`version` must be 2; got 3; allowed: 2 (an int, a numeric string or 2.0)",
        "line": 1,
    }
