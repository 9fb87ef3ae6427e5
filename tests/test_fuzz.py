"""Fuzzing every command family (issue 12): compile and sweep overrides, validator documents, diff pairs,
preferences files and `prefs set` values.

Oracle for each input: a clean error (DigError / exit code, a message naming the key or argument,
no traceback, nothing written), or an accepted result that passes the offline validator and keeps
the task structure. Derandomized; DIG_FUZZ_EXAMPLES=N runs N examples per family (CI: a few hundred).
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from compiler.compose import parse_overrides
from compiler.errors import DigError
from compiler.osmo import validate_text
from compiler.pipeline import compile_request, output_path, write_atomic

EXAMPLES = int(os.environ.get("DIG_FUZZ_EXAMPLES", "0"))


def fuzz(default: int):
    # No shrinking: an input that fails is reported as found (shrinking a render bomb takes minutes).
    return settings(
        max_examples=EXAMPLES or default,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
        phases=[Phase.explicit, Phase.reuse, Phase.generate],
    )


HOSTILE = [
    "'",
    '"',
    "$(id)",
    "`id`",
    "\n",
    ": ",
    " #",
    "{",
    "}",
    "{{",
    "{%",
    "%}",
    "\\",
    "é",
    "漢",
    ",",
    "[",
    "]",
    "=",
    "${HOME}",
    "\t",
    "&&",
    ";",
    "|",
    "*",
    "&a",
    "../",
    "..",
    "/",
    "~",
    "\x00",
    " ",
    "-",
    "_",
    "0",
    "99999",
    "1e9",
    "-1",
    "null",
    "true",
    "[a,b]",
    "{a:1}",
    "s3://",
    "http://",
    "[::1]",
    ":8000",
    "/v1",
    "Gi",
    "64",
    "range(1,3)",
    "a,b",
    "x" * 300,
]
fragments = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=8))
values = st.lists(fragments, max_size=5).map("".join)

KEYS = [
    "name",
    "dig_url_root",
    "pool",
    "out",
    "strict",
    "endpoint.url",
    "flow",
    "usecase",
    "board",
    "knobs",
    "endpoint",
    "knobs.crop_max_emit",
    "knobs.num_sdg",
    "knobs.render_patches",
    "knobs.infer_memory",
    "knobs.anomaly_types_json",
    "knobs.use_pretrained_checkpoint",
    "knobs.workflow_name",
    "knobs.nope",
    "cookbooks.day0_crop.crop.classes",
    "cookbooks.ag_config.job.project",
    "cookbooks.nope.x",
    "a.b",
    "+x",
    "~name",
    "knobs.exec_timeout",
    "knobs.platform",
    "knobs.usd2roi_image",
]
GROUPS = [
    ["flow=day0"],
    ["flow=day1", "usecase=glass"],
    ["flow=setup"],
    ["flow=structural"],
    ["flow=finetune", "usecase=metal_surface"],
]


def _shape(text: str) -> list[tuple[str, list[str]]]:
    doc = yaml.safe_load(text)
    return [(g["name"], [t["name"] for t in g["tasks"]]) for g in doc["workflow"]["groups"]]


_BASE: dict[tuple[str, ...], list[tuple[str, list[str]]]] = {}


def _baseline(composer, groups: list[str]) -> list[tuple[str, list[str]]]:
    key = tuple(groups)
    if key not in _BASE:
        _BASE[key] = _shape(compile_request(parse_overrides(groups), composer=composer, prefs={}).text)
    return _BASE[key]


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _assert_clean(exc: DigError, *named: str) -> None:
    text = exc.format()
    assert text.startswith("ERROR: ") and "Traceback" not in text, text
    assert "compiler bug" not in text, text
    assert any(n.split("=", 1)[0].lstrip("+~") in text for n in named) or "sweep" in text, (named, text)


@pytest.fixture()
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


# --- compile overrides ---------------------------------------------------------------------------------


@fuzz(300)
@given(
    groups=st.sampled_from(GROUPS),
    pairs=st.lists(st.tuples(st.sampled_from(KEYS), values), max_size=3),
    quoted=st.booleans(),
)
def test_fuzz_compile_overrides(composer, workdir, groups, pairs, quoted):
    args = [*groups] + [
        f"{k}='{v}'" if quoted and "'" not in v and "\\" not in v else f"{k}={v}" for k, v in pairs
    ]
    before = _files(workdir)
    try:
        compiled = compile_request(parse_overrides(args), composer=composer, prefs={})
        path = output_path(compiled)
        if not str(path).startswith(str(workdir)):
            path = workdir / "out.yaml"  # never let a fuzzed out= escape the sandbox directory
        write_atomic(path, compiled.text)
    except DigError as exc:
        _assert_clean(exc, *[a for a in args if a not in groups], *groups)
        assert _files(workdir) == before
        return
    assert _files(workdir) - before <= {
        str(path.relative_to(workdir)),
        *map(str, Path(path.relative_to(workdir)).parents),
    }
    assert not [f for f in validate_text(compiled.text) if f.severity == "error"]
    if not any(k in ("flow", "usecase", "board", "knobs") for k, _ in pairs) and not any(
        k == "knobs.use_pretrained_checkpoint" for k, _ in pairs
    ):
        assert _shape(compiled.text) == _baseline(composer, groups)


# --- sweep overrides -----------------------------------------------------------------------------------

SWEEP_VALUES = st.one_of(
    values,
    st.sampled_from(
        [
            "1,2",
            "range(1,3)",
            "choice(a,b)",
            "1,",
            ",",
            "range(0)",
            "range(1,10**9)",
            "interval(0,1)",
            "glob(*)",
            "1,2,3,4",
        ]
    ),
)


@fuzz(200)
@given(
    groups=st.sampled_from(GROUPS), pairs=st.lists(st.tuples(st.sampled_from(KEYS), SWEEP_VALUES), max_size=2)
)
def test_fuzz_sweep_overrides(composer, workdir, groups, pairs):
    import tempfile

    from compiler.sweep import SweepRun, count_variants, expand, run_sweep

    args = [*groups] + [f"{k}={v}" for k, v in pairs]
    target = Path(tempfile.mkdtemp(dir=workdir)) / "sweep"
    try:
        count = count_variants(args)
        if count <= 6:
            assert count == len(expand(args))
        _, results = run_sweep(
            args, SweepRun(out_dir=target, prefs={}, progress=False, composer=composer, jobs=1)
        )
    except DigError as exc:
        _assert_clean(exc, *args)
        assert not target.exists() or _files(target) == set()
        return
    written = _files(target)
    assert written == {r.file for r in results if r.file} | {"sweep.json"}
    for r in results:
        assert (r.error is None) == (r.file is not None)
        if r.error:
            assert r.error.startswith("ERROR: ") and "compiler bug" not in r.error
        else:
            assert not [f for f in validate_text((target / r.file).read_text()) if f.severity == "error"]


# --- validator input documents -------------------------------------------------------------------------

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**6), 10**12), st.floats(allow_nan=False), values
)
TASK_KEYS = [
    "name",
    "image",
    "command",
    "args",
    "resource",
    "lead",
    "files",
    "inputs",
    "outputs",
    "environment",
    "credentials",
    "exitActions",
    "checkpoint",
    "cacheSize",
    "volumeMounts",
    "privileged",
    "bogus",
]
task_st = st.dictionaries(
    st.sampled_from(TASK_KEYS),
    st.one_of(scalars, st.lists(scalars, max_size=3), st.dictionaries(values, scalars, max_size=2)),
    max_size=8,
)
RES_KEYS = ["cpu", "gpu", "memory", "storage", "platform", "nodesExcluded"]
wf_st = st.fixed_dictionaries(
    {
        "name": scalars,
        "tasks": st.lists(task_st, max_size=3),
    },
    optional={
        "resources": st.dictionaries(
            values, st.dictionaries(st.sampled_from(RES_KEYS), scalars, max_size=4), max_size=2
        ),
        "groups": st.lists(
            st.fixed_dictionaries({"name": scalars, "tasks": st.lists(task_st, max_size=2)}), max_size=2
        ),
        "timeout": st.dictionaries(st.sampled_from(["exec_timeout", "queue_timeout"]), scalars),
    },
)
TEXT_BITS = [
    "{{ 'x' * 10**9 }}",
    "{% for i in range(99999) %}",
    "{% endfor %}",
    "&a [x, x]",
    "*a",
    "{{ name }}",
    "{{output}}",
    "{{input:0}}",
    "{# c #}",
    "\t",
    ": :",
    "- -",
    "workflow:",
    "default-values:",
    "version: 3",
    "{{ 1/0 }}",
    "{{ ''.__class__ }}",
    "\xff",
]


@fuzz(300)
@given(
    doc=st.one_of(
        wf_st.map(lambda w: {"workflow": w}),
        st.dictionaries(st.sampled_from(["version", "workflow", "default-values", "x"]), scalars),
    ),
    extra=st.lists(st.sampled_from(TEXT_BITS), max_size=4),
    dv=st.booleans(),
)
def test_fuzz_validator_documents(doc, extra, dv):
    try:
        text = yaml.safe_dump(doc, allow_unicode=True)
    except yaml.YAMLError:
        return
    text += "".join(f"# {bit}\n" if i % 2 else f"  x{i}: {bit}\n" for i, bit in enumerate(extra))
    if dv:
        text += "default-values:\n  a: 1\n"
    findings = validate_text(text)  # must not raise, whatever the text
    assert all(f.severity in ("error", "warning", "note") and isinstance(f.message, str) for f in findings)


# --- diff pairs ----------------------------------------------------------------------------------------

_DIFF_BASE: list[dict] = []


def _diff_base(composer) -> dict:
    if not _DIFF_BASE:
        _DIFF_BASE.append(
            yaml.safe_load(compile_request(parse_overrides(["flow=day0"]), composer=composer, prefs={}).text)
        )
    return _DIFF_BASE[0]


@fuzz(300)
@given(
    edits=st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "image",
                    "command",
                    "args",
                    "inputs",
                    "resource",
                    "new",
                    "drop",
                    "name",
                    "checkpoint",
                    "tasks_form",
                ]
            ),
            scalars,
        ),
        min_size=1,
        max_size=3,
    )
)
def test_fuzz_diff_pairs(composer, edits):
    from compiler.diff import diff_docs, to_markdown

    a = _diff_base(composer)
    b = copy.deepcopy(a)
    changed = False
    for field, value in edits:
        groups = b["workflow"].get("groups") or []
        task = groups[-1]["tasks"][0] if groups else b["workflow"]["tasks"][0]
        if field == "tasks_form" and groups:
            b["workflow"]["tasks"] = [t for g in groups for t in g["tasks"]]
            del b["workflow"]["groups"]
            changed = True
        elif field == "drop":
            changed |= task.pop("inputs", None) is not None
        elif field == "new":
            task["checkpoint"] = [{"path": "/x", "url": "s3://b/x", "frequency": 60}]
            changed = True
        elif field != "tasks_form":
            changed |= task.get(field) != value
            task[field] = value
    result = diff_docs(a, b)
    md = to_markdown(result, "a", "b")
    assert result["identical"] == (not changed and a == b) or (a == b) == result["identical"]
    assert "\n- : " not in md
    assert diff_docs(b, b)["identical"]


# --- preferences files and `set` values ----------------------------------------------------------------

PREF_KEYS = ["dig_url_root", "pool", "external_endpoint_url", "default_board", "bogus"]


@fuzz(300)
@given(
    raw=st.one_of(
        st.binary(max_size=80),
        st.dictionaries(st.sampled_from(PREF_KEYS), st.one_of(scalars, values), max_size=4).map(
            lambda d: yaml.safe_dump(d, allow_unicode=True).encode()
        ),
        st.sampled_from([b"a: &a [1]\nb: *a\n", b"\xff\xfe", b"- 1\n", b"pool: [a, b]\n"]),
    )
)
def test_fuzz_preferences_files(composer, tmp_path_factory, monkeypatch, raw):
    from compiler.prefs import load_prefs

    path = tmp_path_factory.mktemp("prefs") / "preferences.yaml"
    path.write_bytes(raw)
    monkeypatch.setenv("DIG_PREFERENCES", str(path))
    try:
        prefs = load_prefs()
    except DigError as exc:
        assert str(path) in exc.format() and "Traceback" not in exc.format()
        return
    try:
        compiled = compile_request(parse_overrides(["flow=day0"]), composer=composer, prefs=prefs)
    except DigError as exc:  # a loaded preference the compile refuses: a bug in the checks
        pytest.fail(f"preferences {prefs} loaded, then the compile refused them: {exc.format()}")
    assert not [f for f in validate_text(compiled.text) if f.severity == "error"]


@fuzz(300)
@given(
    key=st.sampled_from(PREF_KEYS),
    value=st.one_of(
        values,
        st.sampled_from(
            ["s3://my-bucket/dig", "http://[::1]:8000/v1", "https://h.example.com/v1", "my-pool", "0603_H100"]
        ),
    ),
)
def test_fuzz_prefs_set_values(composer, tmp_path_factory, monkeypatch, key, value):
    from compiler.prefs import load_prefs
    from compiler.prefs import main as prefs_main

    path = tmp_path_factory.mktemp("prefs") / "preferences.yaml"
    monkeypatch.setenv("DIG_PREFERENCES", str(path))
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = prefs_main(["set", f"{key}={value}"])
    assert "Traceback" not in err.getvalue()
    if code != 0:
        assert code in (1, 2) and not path.exists()
        assert key in err.getvalue() or "expected key=value" in err.getvalue(), err.getvalue()
        return
    prefs = load_prefs()
    args = ["flow=day0", "endpoint=external"] if key == "external_endpoint_url" else ["flow=day0"]
    compiled = compile_request(parse_overrides(args), composer=composer, prefs=prefs)
    assert not [f for f in validate_text(compiled.text) if f.severity == "error"]
