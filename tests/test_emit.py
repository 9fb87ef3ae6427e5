"""Canonical output: same inputs, same bytes; block scalars for multi-line text; LF only; no volatile fields."""

from __future__ import annotations

import re

import yaml

from compiler.compose import Composer, parse_overrides
from compiler.emit import dump_yaml
from compiler.pipeline import compile_request
from compiler.render import build_workflow
from compiler.tasks import plan_tasks


def test_same_inputs_same_bytes_across_fresh_composers():
    args = ["flow=day1", "usecase=pcb", "knobs.use_pretrained_checkpoint=false"]
    a = compile_request(parse_overrides(args), composer=Composer(), prefs={}).text
    b = compile_request(parse_overrides(args), composer=Composer(), prefs={}).text
    assert a == b


def test_spliced_text_loads_back_to_the_planned_document(compile_args):
    compiled = compile_args("flow=day0", "knobs.use_pretrained_checkpoint=false")
    assert yaml.safe_load(compiled.text) == build_workflow(compiled.config, plan_tasks(compiled.config))


def test_multiline_strings_are_block_scalars_and_text_is_lf(matrix_texts):
    for key, text in matrix_texts.items():
        assert "\r" not in text and "\t" not in text.replace("\\t", ""), key
        # A multi-line value emitted as a quoted scalar would show an escaped newline.
        assert not re.search(r"^\s*(contents|text): \"[^\n]*\\n", text, re.M), key
        assert "contents: |" in text
        assert not re.search(r"20\d\d-\d\d-\d\dT\d\d:\d\d", text), key


def test_dumper_keeps_order_and_does_not_wrap():
    long = "x" * 300
    text = dump_yaml({"b": 1, "a": {"long": long, "multi": "one\ntwo\n"}})
    assert text.index("b:") < text.index("a:")
    assert f"long: {long}\n" in text and "multi: |\n    one\n    two\n" in text
