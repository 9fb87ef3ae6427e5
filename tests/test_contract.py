"""One contract: what compiles is what the pods' own option loaders accept (issue 11, items 1, 2, 4).

The regression cases of the issue run through the CLI; the cross test and the property test run
the pods' loaders (dig_stages) on every compiled spec.json.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from unittest import mock

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from compiler.errors import DigError

REPO = Path(__file__).resolve().parents[1]
AUG = "cookbooks.augmentation_config_ovsl2sl"
ALIGN = f"{AUG}.data_processing.alignment"
SPEC = "/tmp/dig/spec.json"


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DIG_PREFERENCES": str(cwd / "no-prefs.yaml"),
        "PYTHONPATH": os.pathsep.join(str(REPO / p) for p in ("", "packages/dig-stages")),
    }
    return subprocess.run(
        [sys.executable, "-m", "compiler", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


# -- the pods' loaders, run on a compiled file -----------------------------------------------------


def pod_refusals(text: str) -> list[str]:
    """Run each task's own dig_stages loader on its compiled spec.json; what they refuse, one line each."""
    import importlib

    from dig_stages import _common, align, edit_client
    from dig_stages.__main__ import STEPS

    doc = yaml.load(text, Loader=yaml.CSafeLoader)
    out: list[str] = []

    def load_only(body, opts_factory):  # the step's main, with its body replaced by nothing
        opts_factory()
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        for group in doc["workflow"]["groups"]:
            for task in group["tasks"]:
                files = {f["path"]: f["contents"] for f in task["files"]}
                if SPEC not in files:
                    continue
                step = re.search(r"-m dig_stages (\S+) --spec", files[task["args"][0]]).group(1)
                path = Path(tmp) / f"{task['name']}.json"
                path.write_text(files[SPEC], encoding="utf-8")
                if step == "image-edit":
                    spec = json.loads(files[SPEC])
                    out += [f"{task['name']}: {p}" for p in edit_client.option_problems(spec)]
                    try:
                        edit_client.ClientConfig.from_spec(spec, env={})
                        align.AlignParams.from_dict(spec["align_params"])
                    except (ValueError, TypeError) as exc:
                        out.append(f"{task['name']}: {exc}")
                    continue
                module, func = STEPS[step]
                with mock.patch.object(_common, "run_main", load_only):
                    try:
                        getattr(importlib.import_module(module), func)(["--spec", str(path)])
                    except _common.StageError as exc:
                        out.append(f"{task['name']} ({step}): {exc}")
    return out


# -- each measured case of the issue, through the CLI ----------------------------------------------

REFUSED = [
    # (overrides, the key the first error line names, text it must say)
    (["flow=day0", "knobs.num_sdg=15.0"], "knobs.num_sdg", "integral float"),
    (["flow=finetune", "knobs.train_gpu=15.0"], "knobs.train_gpu", "integral float"),
    (["flow=day0", f"{ALIGN}.interp=bilinaer"], f"{ALIGN}.interp", "must be one of bilinear, nearest"),
    (["flow=day0", f"{ALIGN}.rot_range_deg=[1]"], f"{ALIGN}.rot_range_deg", "must be a list of 3 items"),
    (["flow=day0", f"{ALIGN}.bins=0"], f"{ALIGN}.bins", "must be >= 2"),
    (
        ["flow=day0", "cookbooks.day0_crop.crop.min_coverage=nan"],
        "cookbooks.day0_crop.crop.min_coverage",
        "is not a finite number",
    ),
    (
        ["flow=day0", f"{AUG}.augmentation.parameters.guidance_scale=inf"],
        f"{AUG}.augmentation.parameters.guidance_scale",
        "is not a finite number",
    ),
    (["flow=day0", "knobs.num_sdg=inf"], "knobs.num_sdg", "is not a finite number"),
    (
        ["flow=day0", "cookbooks.ag_config.trainer.max_iter=4000"],
        "cookbooks.ag_config.trainer.max_iter",
        "is not used by this compile (flow=day0, variant texture)",
    ),
    (
        ["flow=day1", "knobs.use_usd2roi_day1=false", "cookbooks.usd2roi_nvpcb.registration.min_mi=0.1"],
        "cookbooks.usd2roi_nvpcb.registration.min_mi",
        "read only by task(s) usd2roi-day1",
    ),
    (
        ["flow=finetune", "cookbooks.ag_config.job.name=mine"],
        "cookbooks.ag_config.job.name",
        "is set by dig from the run name",
    ),
    (
        ["flow=finetune", "cookbooks.ag_config.job.group=mine"],
        "cookbooks.ag_config.job.group",
        "is set by dig from the run name",
    ),
    (
        ["flow=finetune", "cookbooks.ag_config.dataloader_train.dataset.dataset_dir=/data"],
        "cookbooks.ag_config.dataloader_train.dataset.dataset_dir",
        "is set by dig from the finetune task's dataset",
    ),
    (
        ["flow=finetune", "cookbooks.ag_config.dataloader_val.dataset.input_data_path=/v.jsonl"],
        "cookbooks.ag_config.dataloader_val.dataset.input_data_path",
        "is set by dig from the validation set",
    ),
    (
        ["flow=finetune", "cookbooks.ag_config.trainer.early_stop.patience=3"],
        "cookbooks.ag_config.trainer.early_stop.patience",
        "is set by dig from dig_stages.finetune (removed",
    ),
    (
        [
            "flow=finetune",
            "cookbooks.ag_config.model.config.ag_config.mask_encoder.encoder_config.init_cfg."
            "checkpoint=x.ckpt",
        ],
        "cookbooks.ag_config.model.config.ag_config.mask_encoder.encoder_config.init_cfg.checkpoint",
        "is set by dig from the NVDINOv2 checkpoint",
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize("args, key, text", REFUSED, ids=[" ".join(c[0])[-60:] for c in REFUSED])
def test_measured_case_is_refused_at_compile_time(tmp_path, args, key, text):
    out = tmp_path / "wf.yaml"
    res = run("usecase=pcb", *args, f"out={out}", cwd=tmp_path)
    assert res.returncode == 1, res.stderr
    first = next(line for line in res.stderr.splitlines() if line.startswith("ERROR"))
    assert first.startswith(f"ERROR: {key}:"), res.stderr
    assert text in res.stderr
    assert "got:" in res.stderr and "allowed:" in res.stderr
    assert not out.exists()


@pytest.mark.slow
def test_ag_config_error_names_the_variants_that_read_it(tmp_path):
    res = run("flow=day0", "usecase=pcb", "cookbooks.ag_config.trainer.max_iter=4000", cwd=tmp_path)
    assert "flow=finetune (finetune)" in res.stderr and "knobs.use_pretrained_checkpoint=false" in res.stderr
    # ... and the same override compiles, and reaches the rendered file, where a finetune task runs
    out = tmp_path / "wf.yaml"
    res = run(
        "flow=day0",
        "usecase=pcb",
        "knobs.use_pretrained_checkpoint=false",
        "cookbooks.ag_config.trainer.max_iter=4000",
        f"out={out}",
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    assert "max_iter: 4000" in out.read_text()


@pytest.mark.slow
def test_alignment_override_compiles_strict_and_reaches_the_pod(tmp_path):
    # was: "not read by the image-edit client" (a `data` prefix match), so strict=true failed
    out = tmp_path / "wf.yaml"
    res = run("flow=day0", "usecase=pcb", f"{ALIGN}.bins=32", "strict=true", f"out={out}", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "not read" not in res.stderr
    doc = yaml.safe_load(out.read_text())
    task = next(t for g in doc["workflow"]["groups"] for t in g["tasks"] if t["name"] == "image-edit")
    spec = json.loads(next(f["contents"] for f in task["files"] if f["path"] == SPEC))
    assert spec["align_params"]["bins"] == 32
    assert pod_refusals(out.read_text()) == []


@pytest.mark.slow
def test_unread_edit_client_field_is_a_warning_and_strict_refuses_it(tmp_path):
    res = run(
        "flow=good_image",
        "usecase=pcb",
        f"{AUG}.pipeline.regenerate_caption_on_retry=true",
        f"out={tmp_path / 'a.yaml'}",
        cwd=tmp_path,
    )
    assert (
        res.returncode == 0
        and "WARNING" in res.stderr
        and "is not read by the dig image-edit client" in res.stderr
    ), res.stderr
    res = run(
        "flow=good_image",
        "usecase=pcb",
        f"{AUG}.pipeline.regenerate_caption_on_retry=true",
        "strict=true",
        f"out={tmp_path / 'b.yaml'}",
        cwd=tmp_path,
    )
    assert res.returncode == 1


# -- the pod loader itself refuses what the compiler refuses ----------------------------------------


@pytest.mark.parametrize(
    "value, fragment",
    [
        (15.0, "integral float"),
        (float("nan"), "NaN is not standard JSON"),
        ("15", None),
        (0, "must be >= 1"),
        (15, None),
    ],
)
def test_the_pod_loader_enforces_the_declaration(tmp_path, value, fragment):
    from dig_stages import _common
    from dig_stages.infer import OPTIONS

    spec = {
        "pretrained_src_in": "/p",
        "ckpt_dataset": "/c",
        "output_dir": "/o",
        "anomaly_types": [["IC", "bridge"]],
        "checkpoint_step": 14000,
        "num_sdg": value,
        "exp_name": "x",
        "inference_dataset": "/d",
    }
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    if fragment is None:
        assert (
            _common.load_options(["--spec", str(path)], "infer-manual", OPTIONS["infer-manual"])["num_sdg"]
            == 15
        )
    else:
        with pytest.raises(_common.StageError, match=re.escape(fragment)):
            _common.load_options(["--spec", str(path)], "infer-manual", OPTIONS["infer-manual"])


def test_every_compiled_step_declares_its_options():
    from dig_stages._common import Option

    from compiler.contract import step_options

    for step in (
        "render-day0",
        "render-structural",
        "render-day1",
        "image-edit",
        "infer-day0",
        "infer-day1",
        "infer-manual",
        "finetune",
        "setup-pretrained",
        "setup-model",
        "setup-data",
        "setup-assets",
    ):
        decl = step_options(step)
        assert decl and all(isinstance(o, Option) for o in decl.values()), step


# -- cross test: the shipped matrix plus the variants that broke ------------------------------------

VARIANTS = [
    ["flow=day1", "usecase=pcb", "board=0603_H100"],
    ["flow=day1", "usecase=pcb", "board=1152819000"],
    ["flow=day1", "usecase=pcb", "board=1152819000", "knobs.use_pretrained_checkpoint=false"],
    ["flow=day1", "usecase=pcb", "knobs.use_usd2roi_day1=false"],
    ["flow=day1", "usecase=glass"],
    ["flow=day1", "usecase=metal_surface"],
    # each preset on every flow it has values for (conf/knobs_flow/<preset>_<flow>.yaml)
    *[
        [f"flow={f}", "usecase=pcb", f"knobs={p}"]
        for p in ("smoke", "full_board")
        for f in sorted(
            x.stem.removeprefix(f"{p}_") for x in (REPO / "conf" / "knobs_flow").glob(f"{p}_*.yaml")
        )
    ],
    ["flow=day0", "usecase=pcb", "endpoint=external", "endpoint.url=https://edit.example.com/v1"],
    ["flow=structural", "usecase=pcb", "endpoint=external", "endpoint.url=https://edit.example.com/v1"],
    ["flow=day0", "usecase=pcb", "knobs.use_pretrained_checkpoint=false", "knobs.train_gpu=4"],
]


def test_the_pods_accept_every_spec_of_the_shipped_matrix(matrix_texts):
    refused = {path: pod_refusals(text) for path, text in matrix_texts.items()}
    assert {p: r for p, r in refused.items() if r} == {}


@pytest.mark.parametrize("args", VARIANTS, ids=lambda a: " ".join(a))
def test_the_pods_accept_every_spec_of_the_variants(compile_args, args):
    compiled = compile_args(*args)
    assert pod_refusals(compiled.text) == []


def test_spec_contract_block_states_the_flow_facts(compile_args):
    from compiler.flows import final_stage

    compiled = compile_args("flow=day1", "usecase=glass")
    doc = yaml.safe_load(compiled.text)
    for group in doc["workflow"]["groups"]:
        for task in group["tasks"]:
            facts = json.loads(next(f["contents"] for f in task["files"] if f["path"] == SPEC))["contract"]
            assert facts["flow"] == "day1" and facts["variant"] == "manual_roi" and facts["takes_run_name"]
            assert facts["final_stage"] == list(final_stage(compiled.config))
            assert task["outputs"][0]["url"].endswith("/" + facts["stage"])


# -- property: whatever compiles is accepted, and an accepted override has an effect or a word -------

FLOWS = [
    ["flow=day0"],
    ["flow=day0", "knobs.use_pretrained_checkpoint=false"],
    ["flow=good_image"],
    ["flow=structural"],
    ["flow=day1"],
    ["flow=day1", "knobs.use_usd2roi_day1=false"],
    ["flow=day1_manual_roi"],
    ["flow=finetune"],
    ["flow=day1", "usecase=glass"],
    ["flow=setup", "usecase=pcb"],
]
HOSTILE = ["nan", "inf", "-inf", "''", "null", "x", "true", "[1]", "{a: 1}"]
BASELINES: dict[tuple[str, ...], object] = {}


def _default_at(config: dict, key: str):
    node: object = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return KeyError
        node = node[part]
    return node


def _leaves(node: object, path: str):
    """Every settable field path of a config subtree (mappings only: list items are not addressable)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, f"{path}.{key}")
    else:
        yield path


def values_like(default: object):
    """Override spellings around a field's shipped value: its type, near misses, and hostile ones."""
    hostile = st.sampled_from(HOSTILE)
    if isinstance(default, bool):
        typed = st.sampled_from(["true", "false", "1", "0", "yes"])
    elif isinstance(default, int):
        typed = st.one_of(
            st.integers(-2, 2 * abs(default) + 8).map(str), st.integers(0, 64).map(lambda i: f"{i}.0")
        )
    elif isinstance(default, float):
        typed = st.one_of(st.floats(-1e3, 1e3, allow_nan=False).map(repr), st.integers(-3, 100).map(str))
    elif isinstance(default, list):
        typed = st.sampled_from(["[]", "[1]", "[-1.0,1.0,0.1]", "[-2,2,0.5]", "[[IC,bridge]]", "[a,b]"])
    elif isinstance(default, str):
        typed = st.one_of(
            st.sampled_from(
                [
                    "bilinear",
                    "nearest",
                    "cad",
                    "free",
                    "text",
                    "2b",
                    "14b",
                    "64Gi",
                    "2",
                    "DEBUG",
                    "all",
                    "shift",
                    default + "x",
                ]
            ),
            st.text("abcxyz_-01", min_size=1, max_size=8),
        )
    else:
        typed = st.sampled_from(["1", "0.5", "abc", "true"])
    return st.one_of(typed, typed, typed, hostile)


# CI runs a fixed (derandomized) 150 examples; a larger random run:
# DIG_CONTRACT_EXAMPLES=2000 DIG_PROPERTY_RANDOM=1 pytest tests/test_contract.py -k whatever --hypothesis-show-statistics
@settings(
    max_examples=int(os.environ.get("DIG_CONTRACT_EXAMPLES", "150")),
    deadline=None,
    derandomize=os.environ.get("DIG_PROPERTY_RANDOM") != "1",
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(flow=st.sampled_from(FLOWS), data=st.data())
def test_whatever_compiles_is_accepted_by_the_pods_and_has_an_effect_or_a_word(compile_args, flow, data):
    from compiler.compose import parse_overrides

    base_args = tuple(flow if any(a.startswith("usecase=") for a in flow) else ["usecase=pcb", *flow])
    if base_args not in BASELINES:
        BASELINES[base_args] = compile_args(*base_args)
    base = BASELINES[base_args]
    keys = sorted(f"knobs.{k}" for k in base.config["knobs"]) + sorted(
        _leaves(base.config["cookbooks"], "cookbooks")
    )
    key = data.draw(st.sampled_from(keys), label="key")
    default = _default_at(base.config, key)
    value = data.draw(values_like(default), label="value")
    arg = f"{key}={value}"
    try:
        parsed = dict(parse_overrides([arg]).values)[key]
    except DigError:
        event("override not parsed")
        return
    if default == parsed and type(default) is type(parsed):
        event("the shipped value again")
        return  # nothing to change, nothing to say
    try:
        compiled = compile_args(*base_args, arg)
    except DigError:
        event("refused at compile time")
        return  # refused with a message: the contract allows that
    event("compiled")
    assert pod_refusals(compiled.text) == [], arg
    words = {(d.key, d.message) for d in compiled.diagnostics} - {
        (d.key, d.message) for d in base.diagnostics
    }
    assert compiled.text != base.text or words, (
        f"{arg} on {' '.join(base_args)}: accepted with no effect, no word"
    )


# -- flow facts: declared once (conf/flow), and true of what the planner builds ------------------------


def test_every_variant_declares_its_facts_and_the_plan_matches_them(matrix_texts):
    from compiler.flows import variants

    for name, variant in variants().items():
        missing = {
            "usecases",
            "title",
            "cookbooks",
            "run_name",
            "endpoint",
            "final_stage",
            "resources",
        } - set(variant)
        assert not missing, f"conf/flow/{variant['flow']}.yaml (variant {name}) lacks {sorted(missing)}"
    for path, text in matrix_texts.items():
        doc = yaml.load(text, Loader=yaml.CSafeLoader)
        tasks = [t for g in doc["workflow"]["groups"] for t in g["tasks"]]
        facts = json.loads(next(f["contents"] for f in tasks[0]["files"] if f["path"] == SPEC))["contract"]
        variant = variants()[facts["variant"]]
        assert (
            {t["resource"] for t in tasks} <= set(variant["resources"]) == set(doc["workflow"]["resources"])
        ), path
        assert (
            any("IMAGE_EDIT_ENDPOINT" in (t.get("environment") or {}) for t in tasks) == variant["endpoint"]
        ), path
        assert ("{{ name }}" in text) == variant["run_name"], path
        if variant["final_stage"]:
            assert any(t["outputs"][0]["url"].endswith("/" + variant["final_stage"][0]) for t in tasks), path


def test_the_submit_line_is_one_function(compile_args):
    from compiler.flows import submit_command
    from compiler.runbook_build import build_runbook

    for args in (["flow=day0"], ["flow=setup", "usecase=pcb"], ["flow=finetune", "name=ft-1", "pool=p1"]):
        compiled = compile_args(*args)
        plan = build_runbook(compiled, "wf.yaml")
        assert plan["submit_command"]["lines"][-1] == submit_command(compiled.config, "wf.yaml")
        submit_line = next(line for line in compiled.text.splitlines() if line.startswith("# Submit: "))
        assert submit_command(compiled.config, "<this file>") in submit_line
