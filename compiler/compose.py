"""Compose: command-line overrides + Hydra config groups -> one plain, resolved config dict.

Hydra composes each combination of group options once (cached); knob, cookbook and top-level
overrides are then applied in-process, which is what makes sweeps fast (hydra#1543).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from compiler.errors import Diagnostic, DigError, did_you_mean, error
from compiler.flows import uses_board as variant_uses_board
from compiler.override_apply import TOP_LEVEL, Target, apply_override
from compiler.overrides import Request, parse_overrides
from compiler.paths import CONF_DIR, GROUPS, group_options

__all__ = [
    "TOP_LEVEL",
    "Composed",
    "Composer",
    "Request",
    "build_config",
    "hydra_container",
    "parse_overrides",
]

SUGGESTED_ROOT = "s3://osmo-workflows/dig"
# Nodes whose interpolations are resolved once per composition: they refer only to one another
# (`anomaly_types: ${usecase.anomaly_types}` in a cookbook), and no override reaches what they refer to.
RESOLVED_ONCE = ("usecase", "board", "cookbooks")
# A knob default that refers only to those (`${usecase.checkpoint_step}`) is resolved once too: an
# override replaces it whole. Any other knob interpolation waits for the overrides (build_config).
_REFERENCE = re.compile(r"\$\{(?:oc\.select:)?([A-Za-z_][\w.]*)")


@dataclass
class Composed:
    config: dict[str, Any]
    choices: dict[str, str]
    notices: list[Diagnostic]
    request: Request


def hydra_container(cfg: DictConfig) -> dict[str, Any]:
    """A composed Hydra config as plain data, resolved except knobs whose defaults refer to other knobs."""
    data: dict[str, Any] = OmegaConf.to_container(cfg, resolve=False)  # type: ignore[assignment]
    for node in RESOLVED_ONCE:
        if node in cfg:
            data[node] = OmegaConf.to_container(cfg[node], resolve=True)
    for name, value in data.get("knobs", {}).items():
        if isinstance(value, str) and "${" in value and _refers_to_resolved_once(value):
            resolved = cfg.knobs[name]
            data["knobs"][name] = (
                OmegaConf.to_container(resolved)
                if isinstance(resolved, (DictConfig, ListConfig))
                else resolved
            )
    return data


def _refers_to_resolved_once(value: str) -> bool:
    refs = _REFERENCE.findall(value)
    return bool(refs) and all(r.split(".", 1)[0] in RESOLVED_ONCE for r in refs)


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
            self._cache[key] = hydra_container(compose("config", overrides=overrides))
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
        key = (("usecase-meta", usecase),)
        if key not in self._cache:
            found = [d / "usecase" / f"{usecase}.yaml" for d in (CONF_DIR, *self.searchpath)]
            conf = OmegaConf.load(next((f for f in found if f.is_file()), found[0]))
            self._cache[key] = OmegaConf.to_container(conf.usecase, resolve=False)  # type: ignore[assignment]
        return self._cache[key]

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
    """Apply preset, overrides and preferences to a composed group combination (the flow's variant for
    the use case is already composed in: conf/flow_usecase)."""
    flow = cfg["flow"]
    usecase = {**cfg["usecase"], "boards": [str(b) for b in cfg["usecase"]["boards"]]}
    board = {**cfg["board"], "key": str(cfg["board"]["key"])}
    _check_flow_applies(flow, usecase["key"], choices)
    uses_board = variant_uses_board(flow)
    _check_board(flow, usecase, board, uses_board, req, choices)
    knobs = dict(cfg["knobs"])
    _apply_preset(cfg["preset"], flow["key"], knobs, choices)
    target = Target(
        knobs, _mounted_cookbooks(cfg, flow, choices), {k: cfg.get(k) for k in TOP_LEVEL},
        dict(cfg["endpoint"]), flow["key"], flow["variant"], choices,
    )  # fmt: skip
    for key, value in req.values:
        apply_override(target, key, value)
    _resolve_knobs(knobs, req, usecase, board)
    top, endpoint = target.top, target.endpoint
    _apply_prefs(top, endpoint, prefs, notices)
    return {
        **{k: top[k] for k in TOP_LEVEL},
        "flow": {
            "key": flow["key"],
            "variant": flow["variant"],
            "title": flow["title"],
            "uses_board": uses_board,
            "usecase_free": bool(flow.get("usecase_free", False)),
        },
        "usecase": usecase,
        "board": board,
        "endpoint": endpoint,
        "preset": cfg["preset"]["key"],
        "knobs": knobs,
        "cookbooks": target.cookbooks,
    }


def _fail(choices: dict[str, str], *diagnostic: Any) -> DigError:
    return DigError(Diagnostic("error", *diagnostic), choices=choices)


def _check_flow_applies(flow: dict[str, Any], usecase: str, choices: dict[str, str]) -> None:
    if usecase not in flow["usecases"]:
        raise _fail(
            choices,
            "usecase",
            f"flow '{flow['key']}' does not apply to use case '{usecase}'",
            usecase,
            ", ".join(flow["usecases"]),
            "A9",
        )
    if flow["variant"] == "???":  # Hydra's mandatory value: the use case's specialization names it
        raise _fail(
            choices,
            "usecase",
            f"flow '{flow['key']}' has no variant for use case '{usecase}'",
            usecase,
            f"add conf/flow_usecase/{flow['key']}_{usecase}.yaml (flow.variant, flow.title, its knobs)",
            "A9",
        )


def _check_board(
    flow: dict[str, Any],
    usecase: dict[str, Any],
    board: dict[str, Any],
    uses_board: bool,
    req: Request,
    choices: dict[str, str],
) -> None:
    """A use case without boards takes none; a board flow needs one of the use case's boards."""
    if req.choices.get("board") not in (None, "none") and not usecase["boards"]:
        raise _fail(
            choices,
            "board",
            f"use case '{usecase['key']}' has no boards; drop board=",
            board["key"],
            "none",
            "A5",
        )
    if uses_board and board["key"] not in usecase["boards"] and board.get("usecase") != usecase["key"]:
        raise _fail(
            choices,
            "board",
            f"flow '{flow['key']}' renders a board of use case '{usecase['key']}'; choose one",
            board["key"],
            ", ".join(usecase["boards"]),
        )


def _apply_preset(preset: dict[str, Any], flow: str, knobs: dict[str, Any], choices: dict[str, str]) -> None:
    """A preset's values for this flow: conf/knobs_flow/<preset>_<flow>.yaml, composed into `preset.knobs`."""
    if preset["key"] == "default":
        return
    values = preset.get("knobs")
    if values is None:
        flows = [f for f in group_options("flow") if f"{preset['key']}_{f}" in group_options("knobs_flow")]
        raise _fail(
            choices,
            "knobs",
            f"preset '{preset['key']}' does not apply to flow '{flow}'",
            preset["key"],
            f"flows: {', '.join(flows)}",
            "A11",
        )
    for name, value in values.items():
        if name not in knobs:
            raise _fail(
                choices,
                f"knobs.{name}",
                f"preset '{preset['key']}' sets a knob flow '{flow}' does not have",
                name,
                ", ".join(knobs),
            )
        knobs[name] = value


def _mounted_cookbooks(cfg: dict[str, Any], flow: dict[str, Any], choices: dict[str, str]) -> dict[str, Any]:
    cookbooks = {name: cfg.get("cookbooks", {}).get(name) for name in flow["cookbooks"]}
    missing = [n for n, v in cookbooks.items() if v is None]
    if missing:
        raise _fail(
            choices,
            f"cookbooks.{missing[0]}",
            "is not provided by the chosen use case or board (spec A6/A7)",
            None,
            "add it to conf/usecase or conf/board",
        )
    return cookbooks


def _resolve_knobs(
    knobs: dict[str, Any], req: Request, usecase: dict[str, Any], board: dict[str, Any]
) -> None:
    """Resolve the knob defaults that wait for the overrides (those referring to other knobs).

    The ones referring only to the use case or board are already resolved (hydra_container), so a
    sweep usually creates no OmegaConf node here (~12 ms per variant when it does). A value given on
    the command line is data, never an interpolation (`${HOME}` stays text): only pending keys are read.
    """
    user_set = {key.split(".", 1)[1] for key, _ in req.values if key.startswith("knobs.")}
    pending = [k for k, v in knobs.items() if isinstance(v, str) and "${" in v and k not in user_set]
    if pending:
        context = OmegaConf.create({"knobs": knobs, "usecase": usecase, "board": board})
        for name in pending:
            value = context.knobs[name]
            knobs[name] = (
                OmegaConf.to_container(value) if isinstance(value, (DictConfig, ListConfig)) else value
            )


def _apply_prefs(
    top: dict[str, Any], endpoint: dict[str, Any], prefs: dict[str, str], notices: list[Diagnostic]
) -> None:
    """Saved preferences fill what neither conf/ nor the command line gave (spec A3)."""
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
