"""Property test: hostile override values never crash the compiler nor change the YAML structure."""

from __future__ import annotations

import contextlib
import io
import os
import tempfile

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compiler.__main__ import main
from compiler.osmo import validate_text

KEYS = [
    "name",
    "dig_url_root",
    "pool",
    "knobs.roi_prompt",
    "knobs.scene_filename",
    "knobs.crop_max_emit",
    "knobs.render_patches",
    "knobs.num_sdg",
    "knobs.anomaly_types_json",
    "knobs.default_spatial_dependency",
    "knobs.platform",
    "knobs.infer_memory",
    "knobs.usd2roi_image",
    "knobs.exec_timeout",
    "cookbooks.day0_crop.crop.classes",
    "cookbooks.ag_config.job.project",
    "endpoint.url",
    "cookbooks.augmentation_config_ovsl2sl.captioning.llm.text",
]
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
    "{#",
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
    "../",
    "\x00",
    " ",
]

fragments = st.one_of(st.sampled_from(HOSTILE), st.text(min_size=0, max_size=12))
values = st.lists(fragments, min_size=0, max_size=6).map("".join) | st.text(min_size=200, max_size=400)


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


# CI runs a fixed (derandomized) set of 200 inputs so a green build stays green; explore more with
# DIG_PROPERTY_EXAMPLES=3000 DIG_PROPERTY_RANDOM=1 (3,000 random inputs passed on 2026-11-29).
@settings(
    max_examples=int(os.environ.get("DIG_PROPERTY_EXAMPLES", "200")),
    deadline=None,
    derandomize=os.environ.get("DIG_PROPERTY_RANDOM") != "1",
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(key=st.sampled_from(KEYS), value=values, quoted=st.booleans())
def test_hostile_values_are_rejected_or_carried_as_data(key, value, quoted):
    arg = f"{key}={_quote(value) if quoted else value}"
    with tempfile.TemporaryDirectory() as tmp:
        out_path = os.path.join(tmp, "wf.yaml")
        err, outb = io.StringIO(), io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(outb):
            code = main(["flow=day0", arg, f"out={out_path}"])
        stderr = err.getvalue()
        assert "Traceback" not in stderr
        if code == 0:
            with open(out_path, encoding="utf-8") as fh:
                text = fh.read()
            assert not [f for f in validate_text(text) if f.severity == "error"]
            doc = yaml.safe_load(text)
            shape = [(g["name"], [t["name"] for t in g["tasks"]]) for g in doc["workflow"]["groups"]]
            assert shape == [
                ("usd2roi-render", ["usd2roi-replicator"]),
                ("augment-image-edit", ["image-edit"]),
                ("anomaly-infer", ["infer-all-defects"]),
            ]
            assert [t for g in doc["workflow"]["groups"] for t in g["tasks"]][0]["args"] == ["/tmp/run.sh"]
        else:
            assert code == 1
            assert stderr.startswith("ERROR: "), stderr
            assert "compiler bug" not in stderr, stderr  # user input is rejected before rendering
            assert len(stderr.splitlines()) < 30
            assert not os.path.exists(out_path)


def test_hostile_prompt_is_carried_exactly_as_data(compile_args):
    import json

    prompt = 'solder joint\'; $(rm -rf /) `id` "q" # x: y é漢 ${HOME}'
    text = compile_args(
        "flow=day0", "knobs.default_spatial_dependency=text", f"knobs.roi_prompt={_quote(prompt)}"
    ).text
    doc = yaml.safe_load(text)
    infer = doc["workflow"]["groups"][-1]["tasks"][0]
    spec = json.loads(next(f["contents"] for f in infer["files"] if f["path"] == "/tmp/dig/spec.json"))
    assert spec["roi_prompt"] == prompt and spec["spatial_dependency"] == "text"
    launcher = next(f["contents"] for f in infer["files"] if f["path"] == "/tmp/run_infer.sh")
    assert "rm -rf" not in launcher and prompt not in json.dumps(infer["environment"])
