"""Apply one `key=value` command-line override to the config being built (knobs, cookbooks, endpoint, top level)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from compiler.errors import Diagnostic, DigError, did_you_mean
from compiler.paths import GROUPS

TOP_LEVEL = ("name", "dig_url_root", "pool", "out", "strict")
STRING_TOP_LEVEL = ("name", "dig_url_root", "pool", "out")


@dataclass
class Target:
    """What the overrides of one compile write into, and what an error names (flow, variant, choices)."""

    knobs: dict[str, Any]
    cookbooks: dict[str, Any]
    top: dict[str, Any]
    endpoint: dict[str, Any]
    flow: str
    variant: str
    choices: dict[str, str]
    copied: set[str] = field(default_factory=set)  # cookbooks already copied (copy-on-write)

    def fail(
        self, key: str, message: str, got: Any = None, allowed: str | None = None, rule: str = ""
    ) -> DigError:
        return DigError(Diagnostic("error", key, message, got, allowed, rule), choices=self.choices)


def apply_override(target: Target, key: str, value: Any) -> None:
    head, _, rest = key.partition(".")
    if head == "knobs":
        _set_knob(target, key, rest, value)
    elif head == "cookbooks":
        _set_cookbook_field(target, key, rest, value)
    elif head == "endpoint":
        if rest != "url":
            raise target.fail(
                key, "only endpoint.url can be set (the model id is fixed)", key, "endpoint.url", "A24"
            )
        target.endpoint["url"] = value if value is None else str(value)
    elif head in TOP_LEVEL and not rest:
        _set_top_level(target, key, value)
    elif head in ("usecase", "board", "flow", "preset"):
        raise target.fail(
            key,
            f"'{head}' values come from conf/{head}; choose an option with "
            f"{head}=<option> or set the matching knobs.<name>",
            key,
        )
    else:
        allowed = [*TOP_LEVEL, "knobs.<name>", "cookbooks.<file>.<field>", "endpoint.url", *GROUPS]
        raise target.fail(
            key, f"is not a dig setting{did_you_mean(head, [*TOP_LEVEL, *GROUPS])}", key, ", ".join(allowed)
        )


def _set_knob(target: Target, key: str, name: str, value: Any) -> None:
    knobs = target.knobs
    if not name or "." in name:
        raise target.fail(key, "knobs are flat: write knobs.<name>=value", key, ", ".join(knobs))
    if name not in knobs:
        raise target.fail(
            key,
            f"flow '{target.flow}' ({target.variant}) has no knob '{name}'{did_you_mean(name, knobs)}",
            name,
            ", ".join(knobs),
            rule="A11",
        )
    knobs[name] = value


def _set_cookbook_field(target: Target, key: str, rest: str, value: Any) -> None:
    name, _, path = rest.partition(".")
    books = target.cookbooks
    if name not in books:
        raise target.fail(
            f"cookbooks.{name}",
            f"flow '{target.flow}' ({target.variant}) mounts no cookbook '{name}'{did_you_mean(name, books)}",
            name,
            ", ".join(books) or "(none)",
            "A6",
        )
    if not path:
        raise target.fail(key, "name a field: cookbooks.<file>.<field path>=value", key)
    if name not in target.copied:  # copy-on-write: the composed base is shared between variants
        books[name] = copy.deepcopy(books[name])
        target.copied.add(name)
    node = books[name]
    parts = path.split(".")
    for part in parts[:-1]:
        if not isinstance(node, dict):
            raise target.fail(key, f"'{part}' is not a mapping in cookbook '{name}'", key)
        node = node.setdefault(part, {})
    if not isinstance(node, dict):
        raise target.fail(key, f"cannot set a field inside a non-mapping in cookbook '{name}'", key)
    # Unknown fields are rejected by the schema (did-you-mean); whether the field reaches a pod is
    # checked against the planned tasks (compiler/contract.py, conf/cookbooks.yaml).
    node[parts[-1]] = value


def _set_top_level(target: Target, key: str, value: Any) -> None:
    if key in STRING_TOP_LEVEL and isinstance(value, (list, dict)):
        raise target.fail(key, "takes one string value, not a list or mapping", value, f"{key}=<text>")
    as_text = key in STRING_TOP_LEVEL and value is not None and not isinstance(value, bool)
    target.top[key] = str(value) if as_text else value
