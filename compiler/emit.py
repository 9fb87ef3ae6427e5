"""The one canonical YAML dumper: insertion order, block scalars for multi-line text, no wrapping."""

from __future__ import annotations

import hashlib
from functools import cache
from typing import Any

import yaml

# libyaml's emitter when present: same output, faster. The stubs type the two dumpers apart.
_Base: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class CanonicalDumper(_Base):  # type: ignore[misc]
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


def _list(dumper: yaml.SafeDumper, value: list[Any]) -> yaml.Node:
    # Short lists of scalars read best inline ([1920, 1080]); anything else as a block.
    flow = 0 < len(value) <= 8 and all(
        isinstance(v, (int, float, str))
        and not isinstance(v, bool)
        and len(str(v)) < 40
        and "\n" not in str(v)
        for v in value
    )
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=flow)


CanonicalDumper.add_representer(str, _str)
CanonicalDumper.add_representer(list, _list)


def dump_yaml(data: Any) -> str:
    text = yaml.dump(
        data,
        Dumper=CanonicalDumper,
        sort_keys=False,
        width=2**31 - 1,
        allow_unicode=True,
        default_flow_style=False,
        indent=2,
    )
    return text.replace("\r\n", "\n")


# Injected dig_stages modules are ~95% of a compiled file and identical across compiles: they are
# emitted once per module (as the block scalar this dumper writes at the files[].contents depth) and
# spliced in for a short placeholder, so a sweep variant only dumps and validates its own ~10 kB.
_MARK = "DIG-STAGES-MODULE-"


def module_placeholder(module: str) -> str:
    return f"{_MARK}{module}"


@cache
def _module_scalar(source: str) -> str:
    probe = {"workflow": {"groups": [{"tasks": [{"files": [{"contents": source}]}]}]}}
    text = dump_yaml(probe)
    head = "      - contents: "
    return text[text.index(head) + len(head) :].rstrip("\n")


def module_manifest(module: str, source: str) -> str:
    """One reviewable line standing for an injected module: in-pod path, sha256 and size of its bytes."""
    data = source.encode("utf-8")
    return f"<injected /tmp/dig/dig_stages/{module}.py sha256={hashlib.sha256(data).hexdigest()} size={len(data)}>"


def manifest_modules(text: str, sources: dict[str, str]) -> str:
    """The review text of golden/: each module placeholder replaced by its manifest line, not its source."""
    for module, source in sources.items():
        text = text.replace(
            f"contents: {module_placeholder(module)}\n", f"contents: {module_manifest(module, source)}\n"
        )
    return text


def splice_modules(text: str, sources: dict[str, str]) -> str:
    """Replace each `contents: DIG-STAGES-MODULE-<m>` line's value by the module's block scalar."""
    for module, source in sources.items():
        placeholder = module_placeholder(module)
        needle = f"contents: {placeholder}\n"
        if needle not in text:
            continue
        text = text.replace(needle, f"contents: {_module_scalar(source)}\n")
    return text
