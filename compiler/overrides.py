"""Command-line overrides: `key=value` strings parsed with Hydra's grammar into one Request."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from compiler.errors import error
from compiler.paths import GROUPS, group_options


@dataclass
class Request:
    """One compile request: explicit group choices and ordered value overrides."""

    choices: dict[str, str] = field(default_factory=dict)
    values: list[tuple[str, Any]] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)

    def value_overrides(self) -> list[str]:
        """The raw override strings that change values (not group choices), for hashing file names."""
        return [r for r in self.raw if r.split("=", 1)[0].lstrip("+~") not in GROUPS]


def _parser() -> Any:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create()


def parse_overrides(args: list[str]) -> Request:
    """Parse `key=value` overrides with Hydra's grammar; sweeps are rejected here (see compiler.sweep)."""
    req = Request(raw=list(args))
    parser = _parser()
    for arg in args:
        arg = _quote_home(arg)
        ov = _parse_one(parser, arg)
        if ov.is_sweep_override():
            req.values.append((ov.key_or_group, _list_knob_value(ov, arg)))
            continue
        if ov.is_delete() or ov.is_add() or ov.is_force_add():
            raise error(
                ov.key_or_group,
                "'+', '++' and '~' overrides are not supported: every key already exists",
                got=arg,
                allowed="key=value",
            )
        key = ov.key_or_group
        _refuse_grouped_digits(key, arg.split("=", 1)[1] if "=" in arg else "")
        if ov.package is not None:
            raise error(key, "package overrides (@) are not supported", got=arg)
        value = ov.value()
        if key in GROUPS:
            if key in req.choices:  # Hydra refuses this too ("Multiple values for ...")
                raise error(
                    key,
                    "is given twice; choose one option",
                    got=f"{key}={req.choices[key]} and {arg}",
                    allowed=", ".join(group_options(key)),
                )
            req.choices[key] = str(value) if value is not None else "null"
        else:
            req.values.append((key, value))
    return req


def _parse_one(parser: Any, arg: str) -> Any:
    from hydra.errors import HydraException

    try:
        (ov,) = parser.parse_overrides([arg])
    except HydraException as exc:
        first = str(exc).splitlines()[0]
        raise error(
            arg.split("=", 1)[0],
            "cannot be parsed as a Hydra override; quote the value",
            got=arg,
            allowed=f"key=value (Hydra grammar: {first})",
        ) from None
    return ov


def _list_knob_value(ov: Any, arg: str) -> list[str]:
    """`knobs.defect_modes=tombstone,shift` is the upstream spelling of one value; any other sweep is refused."""
    from compiler.knobs import LIST_KNOBS

    name = ov.key_or_group.removeprefix("knobs.")
    if ov.key_or_group.startswith("knobs.") and LIST_KNOBS.get(name) == "," and ov.is_choice_sweep():
        return [str(v) for v in ov.sweep_iterator()]
    value = arg.split("=", 1)[1] if "=" in arg else ""
    raise error(
        ov.key_or_group,
        "is a sweep; use `dig -m ...` to compile every variant, or write one "
        "value that holds commas quoted or as a list",
        got=arg,
        allowed=f"dig -m {arg} | {ov.key_or_group}='{value}' | {ov.key_or_group}=[{value}]",
    )


def _refuse_grouped_digits(key: str, raw_value: str) -> None:
    if re.fullmatch(r"\d+(_\d+)+", raw_value):
        # Python (and OSMO's --set) read 115_2819_000 as the int 1152819000 (spec A5): never guess.
        raise error(
            key,
            "underscore-grouped digits are read as a number; write the digits without "
            "underscores, or quote the value if it is a name",
            got=raw_value,
            allowed=f"{key}={raw_value.replace('_', '')} or {key}='{raw_value}'",
            rule="A5",
        )


def _quote_home(arg: str) -> str:
    """`out=~/x.yaml`: Hydra's grammar has no unquoted `~`; quote a path value that starts with it."""
    key, sep, value = arg.partition("=")
    if sep and key == "out" and value.startswith("~") and not any(c in value for c in "'\"\\"):
        return f"{key}='{value}'"
    return arg
