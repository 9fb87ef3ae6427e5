"""Step options: one declaration per step (name, type, range or enum, required), enforced by the pod's
loader here and checked by the compiler against every task's spec.json (compiler/contract.py)."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dig_stages._messages import fail

_KINDS = ("str", "int", "float", "bool", "json", "path")
# spec.json key holding facts for the readers of the compiled workflow (dig-preflight, dig-outputs):
# not an option, never read by a step's loader.
CONTRACT_KEY = "contract"


@dataclass(frozen=True)
class Option:
    """One step option: its kind, default, whether it is required, and the values allowed.

    Integers are integers: an integral float such as 15.0 is refused, never truncated. Numbers must
    be finite. `length` is the exact item count of a list value (`item` the kind of each item).
    """

    kind: str
    default: Any = None
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[Any, ...] | None = None
    length: int | None = None
    item: str | None = None

    def allowed(self) -> str:
        """What the option accepts, in words (used in every error message)."""
        if self.choices is not None:
            text = " or ".join(str(c) for c in self.choices)
        elif self.length is not None:
            text = f"a list of {self.length} {self.item or 'value'}s"
        else:
            text = {
                "int": "an integer",
                "float": "a finite number",
                "bool": "true or false",
                "json": "a JSON value",
                "str": "a string",
                "path": "a path",
            }[self.kind]
        if self.minimum is not None and self.maximum is not None:
            text += f" in [{self.minimum}, {self.maximum}]"
        elif self.minimum is not None:
            text += f" >= {self.minimum}"
        elif self.maximum is not None:
            text += f" <= {self.maximum}"
        return text + ("" if self.required else " (or unset)")


def options(fields: dict[str, Any], required: Iterable[str] = ()) -> dict[str, Option]:
    """Normalise a declaration: `(kind, default)` pairs become Options; names in `required` are required."""
    req = set(required)
    out: dict[str, Option] = {}
    for key, spec in fields.items():
        opt = spec if isinstance(spec, Option) else Option(spec[0], spec[1])
        if opt.kind not in _KINDS:
            raise ValueError(f"unknown option kind {opt.kind!r} for {key}")
        if key in req and not opt.required:
            opt = Option(**{**opt.__dict__, "required": True})
        out[key] = opt
    return out


def _non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_non_finite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_non_finite(v) for v in value)
    return False


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not standard JSON")


def _coerce(kind: str, value: Any) -> tuple[Any, str | None]:
    """(value in the option's kind, None) or (value, what is wrong). Strings are read as the kind
    (CLI flags and hand-written specs); an integral float is not an integer; numbers are finite."""
    if kind in ("str", "path"):
        if isinstance(value, (dict, list, bool)):
            return value, "must be a string"
        if isinstance(value, float) and not math.isfinite(value):
            return value, "must be a string"
        return str(value), None
    if kind in ("int", "float"):
        what = "an integer" if kind == "int" else "a finite number"
        if isinstance(value, bool) or isinstance(value, (dict, list)):
            return value, f"must be {what}"
        if isinstance(value, str):
            try:
                value = int(value.strip()) if kind == "int" else float(value)
            except ValueError:
                return value, f"must be {what}"
        if isinstance(value, float) and not math.isfinite(value):
            return value, "must be a finite number (NaN and Infinity are refused)"
        if kind == "int" and not isinstance(value, int):
            return value, "must be an integer (an integral float such as 15.0 is refused, not truncated)"
        return value, None
    if kind == "bool":
        if isinstance(value, bool):
            return value, None
        text = str(value).strip().lower()
        if text in ("true", "1", "yes"):
            return True, None
        if text in ("false", "0", "no", ""):
            return False, None
        return value, "must be true or false"
    # json
    if isinstance(value, str):
        try:
            value = json.loads(value, parse_constant=_refuse_constant)
        except (json.JSONDecodeError, ValueError) as exc:
            return value, f"is not valid JSON ({getattr(exc, 'msg', exc)})"
    if _non_finite(value):
        return value, "holds a non-finite number (NaN and Infinity are refused)"
    return value, None


def parse_option(opt: Option, value: Any) -> tuple[Any, str | None]:
    """The pod's reading of one option value: (parsed value, None) or (value, the reason it is refused)."""
    if value is None or (
        value == "" and opt.kind in ("str", "path") and (opt.required or opt.choices is None)
    ):
        # blank is "not given" for a free string; for an enum it is a wrong value (checked below)
        return value, ("is required" if opt.required else None)
    value, problem = _coerce(opt.kind, value)
    if problem:
        return value, problem
    if opt.length is not None:
        if not isinstance(value, (list, tuple)) or len(value) != opt.length:
            return value, f"must be a list of {opt.length} items"
        for item in value:
            _v, bad = _coerce(opt.item or "json", item)
            if bad or (opt.item in ("int", "float") and isinstance(item, str)):
                return value, f"must hold {opt.item} items, got {item!r}"
        return value, None
    if opt.choices is not None and value not in opt.choices:
        return value, f"must be one of {', '.join(map(str, opt.choices))}"
    if opt.minimum is not None and value < opt.minimum:
        return value, f"must be >= {opt.minimum}"
    if opt.maximum is not None and value > opt.maximum:
        return value, f"must be <= {opt.maximum}"
    return value, None


def parse_options(
    decl: dict[str, Option],
    values: dict[str, Any],
    *,
    unknown: bool = False,
    flags: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], list[tuple[str, Any, str, str]]]:
    """The pod's reading of a spec: (options, problems) with problems as (name, given, reason, allowed).

    `unknown` also reports keys the declaration does not name (the compiler asks for it: it must not
    write a key that no pod reads)."""
    opts: dict[str, Any] = {}
    problems = []
    for key, opt in decl.items():
        given = flags[key] if flags and key in flags else values.get(key, opt.default)
        opts[key], problem = parse_option(opt, given)
        if problem:
            problems.append((key, given, problem, opt.allowed()))
    if unknown:
        problems.extend(
            (key, values[key], "is not an option of this step", ", ".join(decl))
            for key in values
            if key not in decl and key != CONTRACT_KEY
        )
    return opts, problems


def load_options(
    argv: Sequence[str],
    step: str,
    fields: dict[str, Any],
    required: Iterable[str] = (),
) -> dict[str, Any]:
    """Merge `--spec FILE.json` with `--<key>` flags (flags win) and enforce the step's declaration.

    `fields` maps key -> Option (or a `(kind, default)` pair); the declaration is the one the compiler
    checks every compiled spec.json against, so a compiled value is never refused here.
    """
    decl = options(fields, required)
    parser = argparse.ArgumentParser(prog=f"python -m dig_stages {step}")
    parser.add_argument("--spec", help="JSON task spec (keys = option names)")
    for key in decl:
        flags = ["--" + key] + (["--" + key.replace("_", "-")] if "_" in key else [])
        parser.add_argument(*flags, dest=key, default=None)
    ns = parser.parse_args(list(argv))
    spec: dict[str, Any] = {}
    if ns.spec:
        try:
            spec = json.loads(Path(ns.spec).read_text(encoding="utf-8"), parse_constant=_refuse_constant)
        except FileNotFoundError:
            fail(f"spec file {ns.spec} not found")
        except (json.JSONDecodeError, ValueError) as exc:
            fail(f"spec file {ns.spec} is not valid JSON: {exc}")
        if not isinstance(spec, dict):
            fail(f"spec file {ns.spec} must hold a JSON object, got {type(spec).__name__}")
    flags = {key: getattr(ns, key) for key in decl if getattr(ns, key) is not None}
    opts, problems = parse_options(decl, spec, flags=flags)
    bad = [p for p in problems if p[2] != "is required"]
    if bad:
        fail(
            "\n".join(
                f"option '{k}' {reason}, got {v!r} (allowed: {allowed})" for k, v, reason, allowed in bad
            )
        )
    missing = [p[0] for p in problems if p[2] == "is required"]
    if missing:
        fail(
            f"{step}: missing required option(s) {', '.join(missing)}\n"
            f"give them in the --spec JSON or as --{missing[0]} on the command line"
        )
    return opts
