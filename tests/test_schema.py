"""The exported JSON Schema of the composed config is valid Draft 2020-12, fresh, and linked from conf/."""

from __future__ import annotations

from jsonschema import Draft202012Validator

from compiler.paths import CONF_DIR
from compiler.schema import SCHEMA_PATH, build_schema, render_schema, variant_knob_sets


def test_schema_is_valid_draft_2020_12():
    Draft202012Validator.check_schema(build_schema())


def test_committed_schema_is_fresh():
    assert SCHEMA_PATH.read_text(encoding="utf-8") == render_schema(), "run `python -m compiler.schema`"


def test_conf_points_editors_at_the_schema():
    first = (CONF_DIR / "config.yaml").read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=../compiler/schemas/config.schema.json"


def test_every_variant_forbids_unknown_knobs():
    schema = build_schema()
    for variant, knobs in variant_knob_sets().items():
        node = schema["$defs"][f"knobs_{variant}"]
        assert node["additionalProperties"] is False and node["required"] == knobs


def test_cookbook_schemas_forbid_unknown_keys_at_every_level():
    def walk(node, path):
        if node.get("type") == "object" or "properties" in node:
            # Either a fixed set of fields, or a name -> name mapping (crop.class_dirs) with both sides checked.
            extra = node.get("additionalProperties")
            assert extra is False or ("propertyNames" in node and extra.get("pattern")), path
            for key, child in node.get("properties", {}).items():
                walk(child, f"{path}.{key}")
        if isinstance(node.get("items"), dict):
            walk(node["items"], f"{path}[]")

    schema = build_schema()
    for name, node in schema["$defs"].items():
        if name.startswith("cookbook_"):
            walk(node, name)
