"""Config validation: every catchable failure mode is rejected (or warned) with an actionable message."""

from __future__ import annotations

import pytest

from compiler.errors import DigError
from compiler.rules import RULES

GLASS_ZIP = "knobs.uc3_zip_url_root=s3://osmo-workflows/dig/uploads/glass-zip"

# (overrides, key path in the first line, text pinned in the message, spec failure mode)
ERRORS = [
    (["flow=dayO"], "flow", "has no option 'dayO'", "-"),
    (
        ["flow=structural", "cookbooks.defect_image.max_image_count=20"],
        "cookbooks.defect_image.max_image_count",
        "is set by dig from knobs.render_patches",
        "-",
    ),
    (
        ["flow=day0", "cookbooks.day0_image.max_image_count=3"],
        "cookbooks.day0_image.max_image_count",
        "is set by dig from knobs.render_patches",
        "-",
    ),
    (["flow=day0", "usecase=glass"], "usecase", "flow 'day0' does not apply to use case 'glass'", "A9"),
    (
        ["flow=structural", "usecase=metal_surface"],
        "usecase",
        "does not apply to use case 'metal_surface'",
        "A9",
    ),
    (["usecase=metal"], "usecase", "did you mean 'metal_surface'", "A8"),
    (
        ["flow=structural", "knobs.crop_max_emit=5"],
        "knobs.crop_max_emit",
        "has no knob 'crop_max_emit'",
        "A11",
    ),
    (["flow=day1", "knobs.crop_max_emit=5"], "knobs.crop_max_emit", "has no knob 'crop_max_emit'", "A11"),
    (["flow=day0", "knobs.crop_max_emt=5"], "knobs.crop_max_emt", "did you mean 'crop_max_emit'", "A11"),
    (["flow=day0", "knobs.crop_max_emit=0"], "knobs.crop_max_emit", "not one of the allowed forms", "A12"),
    (["flow=day0", "knobs.crop_max_emit=abc"], "knobs.crop_max_emit", "not one of the allowed forms", "A12"),
    (["flow=day0", "knobs.render_patches=0"], "knobs.render_patches", "not one of the allowed forms", "A13"),
    (["flow=day0", "knobs.render_patches=2.5"], "knobs.render_patches", "is not of type 'integer'", "A13"),
    (["flow=day0", "knobs.render_patches=-3"], "knobs.render_patches", "not one of the allowed forms", "A13"),
    (["flow=structural", "knobs.defect_modes='shift, tombstone'"], "knobs.defect_modes", "", "A16"),
    (["flow=structural", "knobs.defect_modes='shift,,tombstone'"], "knobs.defect_modes", "", "A16"),
    (["flow=structural", "knobs.defect_modes=twist"], "knobs.defect_modes", "", "A16"),
    (["flow=structural", "knobs.defect_modes=''"], "knobs.defect_modes", "", "A16"),
    (
        ["flow=day0", "knobs.anomaly_types_json=[[IC,scratch]]"],
        "knobs.anomaly_types_json",
        "was not trained on these pairs",
        "A19",
    ),
    (
        ["flow=day1", "usecase=glass", "knobs.anomaly_types_json=[[passive_component,missing]]"],
        "knobs.anomaly_types_json",
        "the shipped glass checkpoint",
        "A19",
    ),
    (
        ["flow=day0", 'knobs.anomaly_types_json=\'[["IC","bridge"\''],
        "knobs.anomaly_types_json",
        "is not valid JSON",
        "A18",
    ),
    (["flow=day0", "knobs.anomaly_types_json=[[IC]]"], "knobs.anomaly_types_json[0]", "", "A18"),
    (
        ["flow=day0", "knobs.anomaly_types_json=[[IC,bridge],[IC,bridge]]"],
        "knobs.anomaly_types_json",
        "same [material, defect] pair twice",
        "A18",
    ),
    (["flow=day0", "knobs.default_spatial_dependency=text"], "knobs.roi_prompt", "is required when", "A21"),
    (["flow=day0", "knobs.default_spatial_dependency=box"], "knobs.default_spatial_dependency", "", "A22"),
    (["flow=day0", "knobs.model_size=7b"], "knobs.model_size", "", "A23"),
    (
        ["flow=day0", "knobs.use_pretrained_checkpoint=false", "knobs.model_size=14b"],
        "knobs.model_size",
        "finetuning trains a 2B model",
        "A23",
    ),
    (
        ["flow=finetune", "cookbooks.ag_config.checkpoint.save_iter=5000"],
        "cookbooks.ag_config.checkpoint.save_iter",
        "no checkpoint will be saved",
        "A35",
    ),
    (["flow=day1", "usecase=glass", "board=0603_H100"], "board", "has no boards", "A5"),
    (["flow=day0", "board=115_2819_000"], "board", "underscore-grouped digits are read as a number", "A5"),
    (["flow=day0", "board='115_2819_000'"], "board", "has no option '115_2819_000'", "A5"),
    (["flow=day0", "knobs.infer_memory=64"], "knobs.infer_memory", "needs a unit", "A28"),
    (["flow=day0", "knobs.render_storage=50"], "knobs.render_storage", "needs a unit", "A28"),
    (["flow=day0", "knobs.train_memory=64GB"], "knobs.train_memory", "needs a unit", "A28"),
    (["flow=day0", "name='a b'"], "name", "does not match", "A1"),
    (["flow=day0", "name=run/../x"], "name", "does not match", "A1"),
    (["flow=day0", f"name={'x' * 65}"], "name", "", "A1"),
    (["flow=day0", "name='$(reboot)'"], "name", "does not match", "A1"),
    (
        ["flow=setup", "usecase=glass"],
        "knobs.uc3_zip_url_root",
        "is required for setup with usecase=glass",
        "A4",
    ),
    (
        ["flow=setup", "usecase=glass", "knobs.uc3_zip_url_root=s3://b/dig/mobile_screen.zip"],
        "knobs.uc3_zip_url_root",
        "must be the prefix",
        "A4",
    ),
    (["flow=setup", "usecase=glass", "knobs.uc3_zip_url_root=''"], "knobs.uc3_zip_url_root", "", "A4"),
    (
        ["flow=setup_pretrained", "knobs.pretrained_model_sizes='2B 14B'"],
        "knobs.storage_large",
        "too small",
        "A29",
    ),
    (
        ["flow=day0", "knobs.use_pretrained_checkpoint=yes"],
        "knobs.use_pretrained_checkpoint",
        "takes a real boolean",
        "A10",
    ),
    (["flow=day1", "knobs.use_usd2roi_day1=1"], "knobs.use_usd2roi_day1", "takes a real boolean", "A10"),
    (["flow=day0", "endpoint=external"], "endpoint.url", "is required with endpoint=external", "A24"),
    (
        ["flow=day0", "endpoint.model=qwen/qwen-image-edit-2511"],
        "endpoint.model",
        "the model id is fixed",
        "A24",
    ),
    (["flow=day0", "dig_url_root=http://bucket/dig"], "dig_url_root", "", "A3"),
    (["flow=day0", "dig_url_root=s3://bucket/a;b"], "dig_url_root", "cannot be parsed", "-"),
    (["flow=day0", "dig_url_root='s3://bucket/a;b'"], "dig_url_root", "", "A3"),
    (["flow=day0", "knobs.exec_timeout=28"], "knobs.exec_timeout", "", "OSMO"),
    (["flow=day0", "knobs.workflow_name=1bad"], "knobs.workflow_name", "", "OSMO"),
    (["flow=day0", "knobs.platform='a b'"], "knobs.platform", "", "OSMO"),
    (["flow=day0", "knobs.usd2roi_image='Bad Image'"], "knobs.usd2roi_image", "", "OSMO"),
    (["flow=day0", "knobs.train_gpu=0"], "knobs.train_gpu", "", "OSMO"),
    (["flow=day0", "knobs.scene_filename=../../etc/passwd"], "knobs.scene_filename", "", "B2"),
    (["flow=day1", "knobs.real_image_filename=../x.jpg"], "knobs.real_image_filename", "", "A25"),
    (
        ["flow=day0", "cookbooks.day0_crop.crop.max_emt=3"],
        "cookbooks.day0_crop.crop.max_emt",
        "did you mean 'max_emit'",
        "A11",
    ),
    (
        ["flow=day0", "cookbooks.day0_crop.crop.classes=[resistor]"],
        "cookbooks.day0_crop.crop.classes",
        "is not produced by",
        "A44",
    ),
    (
        ["flow=day0", "cookbooks.defect_image.writer.rgb=false"],
        "cookbooks.defect_image",
        "mounts no cookbook",
        "A6",
    ),
    (
        ["flow=structural", "cookbooks.defect_image.component_types=ALL"],
        "cookbooks.defect_image.component_types",
        "",
        "A40",
    ),
    (
        ["flow=structural", "cookbooks.defect_image.writer.semantic_types=[class]"],
        "cookbooks.defect_image.writer.semantic_types",
        "must include 'defect'",
        "A43",
    ),
    (
        ["flow=good_image", "cookbooks.day0_image.scene=x.usd"],
        "cookbooks.day0_image.scene",
        "unknown key",
        "A11",
    ),
    (["knobs=full_board", "flow=day1"], "knobs", "does not apply to flow 'day1'", "A11"),
    (
        ["flow=good_image", "cookbooks.day0_crop.output.dir=/etc"],
        "cookbooks.day0_crop.output.dir",
        "filled in the pod",
        "A45",
    ),
    (
        ["flow=day1", "cookbooks.usd2roi_nvpcb.real_image=/x.jpg"],
        "cookbooks.usd2roi_nvpcb.real_image",
        "filled in the pod",
        "A45",
    ),
    (
        ["flow=good_image", "cookbooks.day0_crop.crop.class_dirs.capacitor=../../../root/x"],
        "cookbooks.day0_crop.crop.class_dirs.capacitor",
        "does not match",
        "A44",
    ),
    (
        ["flow=good_image", "cookbooks.day0_crop.crop.source=../../etc"],
        "cookbooks.day0_crop.crop.source",
        "does not match",
        "A44",
    ),
    (
        [
            "flow=day0",
            "cookbooks.augmentation_config_ovsl2sl.endpoints.image_edit.model=qwen/qwen-image-edit-2511",
        ],
        "cookbooks.augmentation_config_ovsl2sl.endpoints.image_edit.model",
        "is fixed",
        "A24",
    ),
    (
        ["flow=day0", "cookbooks.augmentation_config_ovsl2sl.endpoints.image_edit.url=http://x:8000/v1"],
        "cookbooks.augmentation_config_ovsl2sl.endpoints.image_edit.url",
        "is not read",
        "A24",
    ),
    (
        ["flow=day1", "board=1152819000", "knobs.anomaly_types_json=[[passive_component,missing]]"],
        "knobs.anomaly_types_json",
        "no pair's material is cropped",
        "A20",
    ),
    (
        ["flow=day0", "usecase.checkpoint_step=1"],
        "usecase.checkpoint_step",
        "values come from conf/usecase",
        "-",
    ),
    (["flow=day0", "+knobs.extra=1"], "knobs.extra", "are not supported", "-"),
    (["flow=day0", "knobs.num_sdg=1,2"], "knobs.num_sdg", "is a sweep", "-"),
    (["flow=day0", "bogus=1"], "bogus", "is not a dig setting", "-"),
    (
        ["flow=day0", "knobs.default_spatial_dependency=text", "knobs.roi_prompt='the {{ pad }}'"],
        "knobs.roi_prompt",
        "contains a Jinja marker",
        "A30",
    ),
    (
        ["flow=day0", "cookbooks.augmentation_config_ovsl2sl.captioning.llm.text='{% if x %}'"],
        "cookbooks.augmentation_config_ovsl2sl.captioning.llm.text",
        "contains a Jinja marker",
        "A30",
    ),
    (
        ["flow=day0", "knobs.default_spatial_dependency=text", f"knobs.roi_prompt={'p' * 600}"],
        "knobs.roi_prompt",
        "",
        "OSMO",
    ),
    (["flow=day0", "knobs.render_patches=$(rm -rf)"], "knobs.render_patches", "cannot be parsed", "-"),
]


@pytest.mark.parametrize("args, key, text, rule", ERRORS, ids=[" ".join(e[0])[:60] for e in ERRORS])
def test_rejected_with_key_and_fix(compile_args, args, key, text, rule):
    with pytest.raises(DigError) as info:
        compile_args(*args)
    first = info.value.format().splitlines()[0]
    assert first.startswith(f"ERROR: {key}:"), first
    assert text in info.value.format()
    assert "Traceback" not in info.value.format()
    assert info.value.diagnostics[0].rule == ("" if rule == "-" else rule)


WARNINGS = [
    (
        ["flow=structural", "board=1152819000", "knobs.render_patches=3"],
        "knobs.render_patches",
        "too few crops",
        "A15",
    ),
    (
        ["flow=day1", "knobs.real_image_filename=input_real_image/115_2819_000.jpg"],
        "knobs.real_image_filename",
        "is not the photo of board",
        "A25",
    ),
    (
        ["flow=day1", "knobs.use_usd2roi_day1=false"],
        "knobs.use_usd2roi_day1",
        "drops the alignment render",
        "A27",
    ),
    (
        ["flow=structural", "knobs.render_patches=1"],
        "knobs.render_patches",
        "can render an empty cell",
        "A14",
    ),
    (
        ["flow=day0", "knobs.infer_gpu=4", "knobs.infer_cpu=4"],
        "knobs.infer_cpu",
        "below the sizing rule",
        "A28",
    ),
    (
        ["flow=finetune", "knobs.train_gpu=2", "knobs.train_memory=64Gi"],
        "knobs.train_memory",
        "below the sizing rule",
        "A28",
    ),
    (["flow=day0", "knobs.render_gpu=2"], "knobs.render_gpu", "single-pod stages", "A28"),
    (
        ["flow=finetune", "cookbooks.ag_config.trainer.validation_iter=3000"],
        "cookbooks.ag_config.trainer",
        "max_iter",
        "A36",
    ),
    (
        ["flow=finetune", "cookbooks.ag_config.trainer.logging_iter=3000"],
        "cookbooks.ag_config.trainer",
        "no progress logs",
        "A36",
    ),
    (
        ["flow=finetune", "usecase=glass", "cookbooks.ag_config.trainer.validation_iter=2000"],
        "cookbooks.ag_config.trainer.validation_iter",
        "not a multiple of",
        "A37",
    ),
    (["flow=day0", "knobs.model_size=14b"], "knobs.model_size", "shipped checkpoints are 2B", "A23"),
    (["flow=day0", "knobs.roi_prompt=solder"], "knobs.roi_prompt", "is ignored", "A21"),
    (
        ["flow=good_image", "cookbooks.augmentation_config_ovsl2sl.pipeline.logging.level=DEBUG"],
        "cookbooks.augmentation_config_ovsl2sl.pipeline.logging.level",
        "is not read by the dig image-edit client",
        "A24",
    ),
    (
        ["flow=good_image", "cookbooks.augmentation_config_ovsl2sl.augmentation.model.name=other"],
        "cookbooks.augmentation_config_ovsl2sl.augmentation.model.name",
        "is not read by the dig image-edit client",
        "A24",
    ),
    (
        ["flow=day0", "endpoint=external", "endpoint.url=https://edit.example.com/api"],
        "endpoint.url",
        "does not end with /v1",
        "A24",
    ),
]


@pytest.mark.parametrize("args, key, text, rule", WARNINGS, ids=[" ".join(w[0])[:60] for w in WARNINGS])
def test_warned_and_compiled_but_strict_refuses(compile_args, args, key, text, rule):
    compiled = compile_args(*args)
    hits = [
        d
        for d in compiled.diagnostics
        if d.severity == "warning" and d.key.startswith(key) and text in d.message
    ]
    assert hits, [d.format() for d in compiled.diagnostics]
    assert hits[0].rule == rule
    with pytest.raises(DigError) as info:
        compile_args(*args, "strict=true")
    assert "strict=true turns warnings into errors" in info.value.format()


def test_unconfirmed_root_is_a_notice_and_a_saved_root_silences_it(compile_args):
    notices = [d for d in compile_args("flow=finetune").diagnostics if d.severity == "notice"]
    assert any(d.key == "dig_url_root" and "unconfirmed" in d.message for d in notices)
    saved = compile_args("flow=finetune", prefs={"dig_url_root": "s3://mine/dig"})
    assert not [d for d in saved.diagnostics if d.key == "dig_url_root"]
    assert "s3://mine/dig/runs/" in saved.text


def test_gpu_scaling_derives_cpu_and_memory(compile_args):
    compiled = compile_args("flow=finetune", "knobs.train_gpu=8")
    assert compiled.config["knobs"]["train_cpu"] == 64 and compiled.config["knobs"]["train_memory"] == "384Gi"
    assert any(d.severity == "notice" and "derived" in d.message for d in compiled.diagnostics)
    infer = compile_args("flow=day1", "knobs.infer_gpu=4").config["knobs"]
    assert infer["infer_cpu"] == 16 and infer["infer_memory"] == "192Gi"


def test_the_shipped_matrix_compiles_without_warnings(compile_args):
    from compiler.matrix import shipped_matrix

    for entry in shipped_matrix():
        compiled = compile_args(*entry.overrides, "strict=true")
        assert not [d for d in compiled.diagnostics if d.severity != "notice"], entry.key


def test_partially_cropped_taxonomy_is_a_notice(compile_args):
    notes = [d for d in compile_args("flow=day0").diagnostics if d.rule == "A20"]
    assert notes and notes[0].severity == "notice" and "['IC']" in notes[0].message


def test_rule_ids_are_failure_modes_and_each_rule_returns_diagnostics(compile_args):
    import re

    from compiler.errors import Diagnostic

    config = compile_args("flow=day0").config
    assert len({r.fn for r in RULES}) == len(RULES), "a rule is registered twice"
    for r in RULES:
        ids, summary, fn = r.ids, r.summary, r.fn
        assert re.fullmatch(r"(A\d+|B\d+|OSMO)( (A\d+|B\d+|OSMO))*", ids), ids
        assert summary.strip(), f"rule {ids} ({fn.__name__}) has no summary"
        assert r.severities and set(r.severities) <= {"error", "warning", "notice"}, ids
        found = fn(config, set())
        assert isinstance(found, list) and all(isinstance(d, Diagnostic) for d in found), fn.__name__


def test_presets_only_name_knobs_their_flow_has(compile_args):
    for preset, flows in {
        "smoke": ["day0", "good_image", "structural", "day1", "day1_manual_roi"],
        "full_board": ["day0", "good_image", "structural"],
    }.items():
        for flow in flows:
            compile_args(f"flow={flow}", f"knobs={preset}")
    smoke = compile_args("flow=day0", "knobs=smoke").config["knobs"]
    assert (smoke["render_patches"], smoke["crop_max_emit"], smoke["num_sdg"]) == (5, 1, 15)


def test_a_rule_emitting_an_undeclared_severity_is_refused(compile_args, monkeypatch):
    from compiler.errors import Diagnostic
    from compiler.rules import RULES, ConfigRule, check_rules

    config = compile_args("flow=day0").config

    def noisy(config, explicit):
        return [Diagnostic("warning", "knobs.x", "says more than it declares")]

    monkeypatch.setattr(
        "compiler.rules.registry.RULES", [*RULES, ConfigRule("A1", ("error",), "test", noisy)]
    )
    with pytest.raises(RuntimeError, match=r"emitted \['warning'\], declared \['error'\]"):
        check_rules(config, explicit=set())
