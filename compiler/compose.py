"""Compose: command-line overrides + Hydra config groups -> one plain, resolved config dict.

Hydra composes each combination of group options once (cached); knob, cookbook and top-level
overrides are then applied in-process, which is what makes sweeps fast (hydra#1543).
"""

from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from compiler.errors import Diagnostic, DigError, did_you_mean, error
from compiler.flows import knob_set
from compiler.flows import uses_board as variant_uses_board
from compiler.paths import CONF_DIR, GROUPS, group_options

TOP_LEVEL = ("name", "dig_url_root", "pool", "out", "strict")
SUGGESTED_ROOT = "s3://osmo-workflows/dig"
STRING_TOP_LEVEL = ("name", "dig_url_root", "pool", "out")


@dataclass
class Request:
    """One compile request: explicit group choices and ordered value overrides."""

    choices: dict[str, str] = field(default_factory=dict)
    values: list[tuple[str, Any]] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)

    def value_overrides(self) -> list[str]:
        """The raw override strings that change values (not group choices), for hashing file names."""
        return [r for r in self.raw if r.split("=", 1)[0].lstrip("+~") not in GROUPS]


@dataclass
class Composed:
    config: dict[str, Any]
    choices: dict[str, str]
    notices: list[Diagnostic]
    request: Request


def _parser():
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create()


def parse_overrides(args: list[str]) -> Request:
    """Parse `key=value` overrides with Hydra's grammar; sweeps are rejected here (see compiler.sweep)."""
    from hydra.errors import HydraException

    req = Request(raw=list(args))
    parser = _parser()
    for arg in args:
        arg = _quote_home(arg)
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
        if ov.is_sweep_override():
            from compiler.knobs import LIST_KNOBS

            name = ov.key_or_group.removeprefix("knobs.")
            if ov.key_or_group.startswith("knobs.") and LIST_KNOBS.get(name) == "," and ov.is_choice_sweep():
                # `knobs.defect_modes=tombstone,shift` is the upstream spelling of one value, not a sweep.
                req.values.append((ov.key_or_group, [str(v) for v in ov.sweep_iterator()]))
                continue
            value = arg.split("=", 1)[1] if "=" in arg else ""
            raise error(
                ov.key_or_group,
                "is a sweep; use `dig -m ...` to compile every variant, or write one "
                "value that holds commas quoted or as a list",
                got=arg,
                allowed=f"dig -m {arg} | {ov.key_or_group}='{value}' | {ov.key_or_group}=[{value}]",
            )
        if ov.is_delete() or ov.is_add() or ov.is_force_add():
            raise error(
                ov.key_or_group,
                "'+', '++' and '~' overrides are not supported: every key already exists",
                got=arg,
                allowed="key=value",
            )
        key = ov.key_or_group
        raw_value = arg.split("=", 1)[1] if "=" in arg else ""
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


def _quote_home(arg: str) -> str:
    """`out=~/x.yaml`: Hydra's grammar has no unquoted `~`; quote a path value that starts with it."""
    key, sep, value = arg.partition("=")
    if sep and key == "out" and value.startswith("~") and not any(c in value for c in "'\"\\"):
        return f"{key}='{value}'"
    return arg


class Composer:
    """Composes config-group combinations with Hydra, once each.

    `searchpath`: the user's own config dirs (each laid out like conf/: `board/NAME.yaml`, ...),
    searched after conf/ through Hydra's `hydra.searchpath`; left None, `DIG_CONFIG_DIR` (one dir or
    several joined by os.pathsep) gives them.
    """

    def __init__(self, searchpath: list[str | Path] | None = None) -> None:
        self._cache: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
        self._initialised = False
        if searchpath is None:
            searchpath = [d for d in os.environ.get("DIG_CONFIG_DIR", "").split(os.pathsep) if d]
        self.searchpath = tuple(Path(d).expanduser().resolve() for d in searchpath)
        for d in self.searchpath:
            if not d.is_dir():
                raise error(
                    "DIG_CONFIG_DIR",
                    "names a config dir that is not a directory",
                    got=str(d),
                    allowed="a directory holding <group>/<option>.yaml files (e.g. board/NAME.yaml)",
                )

    def _hydra_compose(self, choices: dict[str, str]) -> dict[str, Any]:
        key = tuple(sorted(choices.items()))
        if key not in self._cache:
            from hydra import compose, initialize_config_dir
            from hydra.core.global_hydra import GlobalHydra

            gh = GlobalHydra.instance()
            if not self._initialised or not gh.is_initialized():
                gh.clear()
                initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name="dig")
                self._initialised = True
            overrides = [f"{g}='{o}'" for g, o in choices.items()]
            if self.searchpath:
                from compiler.options import searchpath_override

                overrides.append(searchpath_override(self.searchpath))
            cfg = compose("config", overrides=overrides)
            self._cache[key] = OmegaConf.to_container(cfg, resolve=False)
        # Shared, read-only: build_config copies what it changes (a deep copy costs ~6 ms per variant).
        return self._cache[key]

    def resolve_choices(self, req: Request, prefs: dict[str, str]) -> dict[str, str]:
        choices = {"flow": "day0", "usecase": "pcb", "endpoint": "cluster", "knobs": "default"}
        for group, option in req.choices.items():
            options = group_options(group, self.searchpath)
            if option not in options:
                raise error(
                    group,
                    f"has no option '{option}'{did_you_mean(option, options)}",
                    got=option,
                    allowed=", ".join(options),
                    rule={"board": "A5", "usecase": "A8"}.get(group, ""),
                )
            choices[group] = option
        if "board" not in req.choices:
            usecase = self._usecase_meta(choices["usecase"])
            board = usecase["default_board"]
            pref = prefs.get("default_board")
            if pref and pref in usecase.get("boards", []):
                board = pref
            choices["board"] = str(board)
        else:
            choices["board"] = req.choices["board"]
        if "endpoint" not in req.choices and prefs.get("external_endpoint_url"):
            choices["endpoint"] = "external"
        return {g: choices[g] for g in GROUPS}

    def _usecase_meta(self, usecase: str) -> dict[str, Any]:
        key = ("usecase-meta", usecase)
        if key not in self._cache:
            found = [d / "usecase" / f"{usecase}.yaml" for d in (CONF_DIR, *self.searchpath)]
            conf = OmegaConf.load(next((f for f in found if f.is_file()), found[0]))
            self._cache[key] = OmegaConf.to_container(conf.usecase, resolve=False)  # type: ignore[index]
        return self._cache[key]  # type: ignore[return-value]

    def compose(self, req: Request, prefs: dict[str, str] | None = None) -> Composed:
        prefs = prefs or {}
        choices = self.resolve_choices(req, prefs)
        cfg = self._hydra_compose(choices)
        notices: list[Diagnostic] = []
        return Composed(build_config(cfg, choices, req, prefs, notices), choices, notices, req)


def build_config(
    cfg: dict[str, Any],
    choices: dict[str, str],
    req: Request,
    prefs: dict[str, str],
    notices: list[Diagnostic],
) -> dict[str, Any]:
    """Apply flow variant, preset, overrides and preferences to a composed group combination."""
    flow = cfg["flow"]
    usecase = {**cfg["usecase"], "boards": [str(b) for b in cfg["usecase"]["boards"]]}
    board = {**cfg["board"], "key": str(cfg["board"]["key"])}
    variant_name, variant = _pick_variant(flow, usecase["key"], choices)
    uses_board = variant_uses_board(variant)

    # Board: a use case without boards takes none; a board flow needs one of the use case's boards.
    if req.choices.get("board") not in (None, "none") and not usecase["boards"]:
        raise DigError(
            Diagnostic(
                "error",
                "board",
                f"use case '{usecase['key']}' has no boards; drop board=",
                board["key"],
                "none",
                "A5",
            ),
            choices=choices,
        )
    if uses_board and board["key"] not in usecase["boards"] and board.get("usecase") != usecase["key"]:
        raise DigError(
            Diagnostic(
                "error",
                "board",
                f"flow '{flow['key']}' renders a board of use case '{usecase['key']}'; choose one",
                board["key"],
                ", ".join(usecase["boards"]),
            ),
            choices=choices,
        )

    knobs = knob_set(cfg["knobs"], variant)
    preset = cfg["preset"]
    if preset["key"] != "default":
        by_flow = preset["by_flow"]
        if flow["key"] not in by_flow:
            raise DigError(
                Diagnostic(
                    "error",
                    "knobs",
                    f"preset '{preset['key']}' does not apply to flow '{flow['key']}'",
                    preset["key"],
                    f"flows: {', '.join(by_flow)}",
                    "A11",
                ),
                choices=choices,
            )
        for name, value in by_flow[flow["key"]].items():
            if name not in knobs:
                raise DigError(
                    Diagnostic(
                        "error",
                        f"knobs.{name}",
                        f"preset '{preset['key']}' sets a knob flow '{flow['key']}' does not have",
                        name,
                        ", ".join(knobs),
                    ),
                    choices=choices,
                )
            knobs[name] = value

    cookbooks = {name: cfg.get("cookbooks", {}).get(name) for name in variant.get("cookbooks", [])}
    missing = [n for n, v in cookbooks.items() if v is None]
    if missing:
        raise DigError(
            Diagnostic(
                "error",
                f"cookbooks.{missing[0]}",
                "is not provided by the chosen use case or board (spec A6/A7)",
                None,
                "add it to conf/usecase or conf/board",
            ),
            choices=choices,
        )

    top = {k: cfg.get(k) for k in TOP_LEVEL}
    endpoint = dict(cfg["endpoint"])
    copied: set[str] = set()
    for key, value in req.values:
        _apply_override(
            key, value, knobs, cookbooks, copied, top, endpoint, flow["key"], variant_name, choices, notices
        )

    # Resolve interpolations (per-use-case and per-board knob defaults) after overrides; only the
    # knobs that hold one go through OmegaConf (a full-config create costs ~20 ms per sweep variant).
    # A value given on the command line is data, never an interpolation (`${HOME}` stays text).
    user_set = {key.split(".", 1)[1] for key, _ in req.values if key.startswith("knobs.")}
    pending = {k: v for k, v in knobs.items() if isinstance(v, str) and "${" in v and k not in user_set}
    if pending:
        context = OmegaConf.create({"knobs": pending, "usecase": usecase, "board": board})
        knobs.update(OmegaConf.to_container(context, resolve=True)["knobs"])  # type: ignore[index]

    if top["dig_url_root"] is None:
        if prefs.get("dig_url_root"):
            top["dig_url_root"] = prefs["dig_url_root"]
        else:
            top["dig_url_root"] = SUGGESTED_ROOT
            notices.append(
                Diagnostic(
                    "notice",
                    "dig_url_root",
                    f"unconfirmed storage root: using the suggestion "
                    f"{SUGGESTED_ROOT}; confirm yours with `python -m compiler.prefs set "
                    "dig_url_root=s3://<bucket>/<prefix>` or pass dig_url_root=",
                    rule="A3",
                )
            )
    if isinstance(top["dig_url_root"], str):
        top["dig_url_root"] = top["dig_url_root"].rstrip("/")
    if top["pool"] is None and prefs.get("pool"):
        top["pool"] = prefs["pool"]
    if endpoint["key"] == "external" and not endpoint.get("url"):
        endpoint["url"] = prefs.get("external_endpoint_url")

    return {
        "name": top["name"],
        "dig_url_root": top["dig_url_root"],
        "pool": top["pool"],
        "out": top["out"],
        "strict": top["strict"],
        "flow": {
            "key": flow["key"],
            "variant": variant_name,
            "title": variant.get("title", flow["title"]),
            "uses_board": uses_board,
            "usecase_free": bool(variant.get("usecase_free", False)),
        },
        "usecase": usecase,
        "board": board,
        "endpoint": endpoint,
        "preset": preset["key"],
        "knobs": knobs,
        "cookbooks": cookbooks,
    }


def _pick_variant(flow: dict[str, Any], usecase: str, choices: dict[str, str]) -> tuple[str, dict[str, Any]]:
    allowed = []
    for name, variant in flow["variants"].items():
        if usecase in variant["usecases"]:
            return name, variant
        allowed.extend(variant["usecases"])
    raise DigError(
        Diagnostic(
            "error",
            "usecase",
            f"flow '{flow['key']}' does not apply to use case '{usecase}'",
            usecase,
            ", ".join(dict.fromkeys(allowed)),
            "A9",
        ),
        choices=choices,
    )


def _apply_override(
    key: str,
    value: Any,
    knobs: dict[str, Any],
    cookbooks: dict[str, Any],
    copied: set[str],
    top: dict[str, Any],
    endpoint: dict[str, Any],
    flow: str,
    variant: str,
    choices: dict[str, str],
    notices: list[Diagnostic],
) -> None:
    head, _, rest = key.partition(".")
    if head == "knobs":
        if not rest or "." in rest:
            raise DigError(
                Diagnostic("error", key, "knobs are flat: write knobs.<name>=value", key, ", ".join(knobs)),
                choices=choices,
            )
        if rest not in knobs:
            raise DigError(
                Diagnostic(
                    "error",
                    key,
                    f"flow '{flow}' ({variant}) has no knob '{rest}'{did_you_mean(rest, knobs)}",
                    rest,
                    ", ".join(knobs),
                    rule="A11",
                ),
                choices=choices,
            )
        knobs[rest] = value
    elif head == "cookbooks":
        name, _, path = rest.partition(".")
        if name not in cookbooks:
            raise DigError(
                Diagnostic(
                    "error",
                    f"cookbooks.{name}",
                    f"flow '{flow}' ({variant}) mounts no cookbook '{name}'{did_you_mean(name, cookbooks)}",
                    name,
                    ", ".join(cookbooks) or "(none)",
                    "A6",
                ),
                choices=choices,
            )
        if not path:
            raise DigError(
                Diagnostic("error", key, "name a field: cookbooks.<file>.<field path>=value", key),
                choices=choices,
            )
        if name not in copied:  # copy-on-write: the composed base is shared between variants
            cookbooks[name] = copy.deepcopy(cookbooks[name])
            copied.add(name)
        node = cookbooks[name]
        parts = path.split(".")
        for part in parts[:-1]:
            if not isinstance(node, dict):
                raise DigError(
                    Diagnostic("error", key, f"'{part}' is not a mapping in cookbook '{name}'", key),
                    choices=choices,
                )
            node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise DigError(
                Diagnostic(
                    "error", key, f"cannot set a field inside a non-mapping in cookbook '{name}'", key
                ),
                choices=choices,
            )
        # Unknown fields are rejected by the schema (did-you-mean); whether the field reaches a pod is
        # checked against the planned tasks (compiler/contract.py, conf/cookbooks.yaml).
        node[parts[-1]] = value
    elif head == "endpoint":
        if rest != "url":
            raise DigError(
                Diagnostic(
                    "error",
                    key,
                    "only endpoint.url can be set (the model id is fixed)",
                    key,
                    "endpoint.url",
                    "A24",
                ),
                choices=choices,
            )
        endpoint["url"] = value if value is None else str(value)
    elif head in TOP_LEVEL and not rest:
        if head in STRING_TOP_LEVEL and isinstance(value, (list, dict)):
            raise DigError(
                Diagnostic(
                    "error", key, "takes one string value, not a list or mapping", value, f"{key}=<text>"
                ),
                choices=choices,
            )
        top[head] = (
            str(value)
            if head in STRING_TOP_LEVEL and value is not None and not isinstance(value, bool)
            else value
        )
    elif head in ("usecase", "board", "flow", "preset"):
        raise DigError(
            Diagnostic(
                "error",
                key,
                f"'{head}' values come from conf/{head}; choose an option with "
                f"{head}=<option> or set the matching knobs.<name>",
                key,
            ),
            choices=choices,
        )
    else:
        allowed = [*TOP_LEVEL, "knobs.<name>", "cookbooks.<file>.<field>", "endpoint.url", *GROUPS]
        raise DigError(
            Diagnostic(
                "error",
                key,
                f"is not a dig setting{did_you_mean(head, [*TOP_LEVEL, *GROUPS])}",
                key,
                ", ".join(allowed),
            ),
            choices=choices,
        )
