"""`dig --cfg job|all` and `dig --info ...`: the composed config, and which file each value came from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from compiler.paths import CONF_DIR


def _compose(overrides: list[str], composer: Any) -> Any:
    from compiler.compose import parse_overrides
    from compiler.pipeline import default_composer
    from compiler.prefs import load_prefs

    prefs = load_prefs()
    return (composer or default_composer()).compose(parse_overrides(overrides), prefs), prefs


def _dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False, width=10_000)


def show_cfg(
    mode: str,
    overrides: list[str],
    *,
    composer: Any = None,
    package: str | None = None,
    resolve: bool = False,
) -> str:
    """YAML of the composed config (values are already resolved: --resolve is accepted for Hydra users)."""
    from compiler.cli import UsageError

    composed, _ = _compose(overrides, composer)
    doc: Any = dict(composed.config)
    if mode == "all":
        doc["hydra"] = {
            "runtime": {"choices": composed.choices, "config_sources": searchpath(composer)},
            "overrides": {"task": list(composed.request.raw)},
        }
    if package:
        for part in package.split("."):
            if not isinstance(doc, dict) or part not in doc:
                have = ", ".join(doc) if isinstance(doc, dict) else "(not a mapping)"
                raise UsageError(f"--package {package}: no node '{part}' (available: {have})")
            doc = doc[part]
        doc = {package.split(".")[-1]: doc} if not isinstance(doc, dict) else doc
    return _dump(doc)


def searchpath(composer: Any = None) -> list[str]:
    """conf/ first, then the user's dirs: Hydra searches `hydra.searchpath` after the primary config's dir."""
    extra = list(getattr(composer, "searchpath", None) or [])
    return [f"file://{CONF_DIR}"] + [f"file://{p}" for p in extra]


def _group_file(group: str, option: str) -> str:
    return f"{group}/{option}.yaml"


Dirs = tuple[Path, ...]


def _find(group: str, option: str, dirs: Dirs) -> Path | None:
    """The file Hydra composes for group/option: conf/ first, then the user's config dirs."""
    return next(
        (d / group / f"{option}.yaml" for d in dirs if (d / group / f"{option}.yaml").is_file()), None
    )


def _raw(group: str, option: str, dirs: Dirs) -> dict[str, Any]:
    from omegaconf import OmegaConf

    path = _find(group, option, dirs)
    return OmegaConf.to_container(OmegaConf.load(path)) if path else {}  # type: ignore[return-value]


def _knob_files(choices: dict[str, str], dirs: Dirs) -> list[tuple[str, dict[str, Any]]]:
    """(file, its raw knob values) of every file that gives knobs, the one that wins first.

    The defaults list's order reversed: the preset's values for the flow, the flow's use-case
    specialization, the per-stage resource blocks (after the flow's own knobs: `_self_` first), the flow.
    """
    flow, usecase, preset = choices["flow"], choices["usecase"], choices["knobs"]
    special = _raw("flow_usecase", f"{flow}_{usecase}", dirs)
    resources = sorted({p.stem for d in dirs for p in (d / "resources").glob("*.yaml")})
    return [
        (_group_file("knobs_flow", f"{preset}_{flow}"), _raw("knobs_flow", f"{preset}_{flow}", dirs)),
        (_group_file("flow_usecase", f"{flow}_{usecase}"), special.get("knobs", {})),
        *((_group_file("resources", r), _raw("resources", r, dirs)) for r in resources),
        (_group_file("flow", flow), _raw("flow", flow, dirs).get("knobs", {})),
    ]


def _specializations(choices: dict[str, str], dirs: Dirs) -> list[tuple[str, str, str]]:
    """(group, option, file) of the optional specializations config.yaml's defaults list composed in."""
    wanted = [
        ("flow_usecase", f"{choices['flow']}_{choices['usecase']}"),
        ("knobs_flow", f"{choices['knobs']}_{choices['flow']}"),
    ]
    return [(g, o, _group_file(g, o)) for g, o in wanted if _find(g, o, dirs)]


def knob_sources(composed: Any, dirs: Dirs = (CONF_DIR,)) -> dict[str, str]:
    """Where each knob value came from: command line, preset, flow specialization, resource block,
    flow file, or the use case / board a flow default interpolates."""
    choices, req = composed.choices, composed.request
    files = _knob_files(choices, dirs)
    cli = {k.split(".", 1)[1] for k, _ in req.values if k.startswith("knobs.")}
    out = {}
    for name in composed.config["knobs"]:
        if name in cli:
            out[name] = "command line"
            continue
        file, raw = next(((f, knobs[name]) for f, knobs in files if name in knobs), ("(unknown)", None))
        if isinstance(raw, str) and "${" in raw:
            src = "board" if "board." in raw else "usecase"
            out[name] = f"{_group_file(src, choices[src])} (via {raw} in {file})"
        else:
            out[name] = file
    return out


def top_sources(composed: Any, prefs: dict[str, str]) -> dict[str, str]:
    from compiler.prefs import prefs_path

    given = {k for k, _ in composed.request.values}
    out = {}
    for key in ("name", "dig_url_root", "pool", "out", "strict", "endpoint.url"):
        if key in given:
            out[key] = "command line"
        elif key == "dig_url_root":
            out[key] = (
                f"preferences ({prefs_path()})"
                if prefs.get("dig_url_root")
                else "suggestion (unconfirmed; dig prefs set dig_url_root=...)"
            )
        elif key == "pool" and prefs.get("pool"):
            out[key] = f"preferences ({prefs_path()})"
        elif key == "endpoint.url":
            ep = composed.choices["endpoint"]
            out[key] = (
                f"preferences ({prefs_path()})"
                if ep == "external" and prefs.get("external_endpoint_url")
                else _group_file("endpoint", ep)
            )
        else:
            out[key] = "config.yaml"
    return out


def show_info(
    which: str, overrides: list[str], *, composer: Any = None, config_dir: str | None = None
) -> str:
    if which == "searchpath":
        return (
            "\n".join(["Config search path (first wins):", *(f"  {p}" for p in searchpath(composer))]) + "\n"
        )
    from compiler.pipeline import default_composer

    composer = composer or default_composer()
    composed, prefs = _compose(overrides, composer)
    dirs: Dirs = (CONF_DIR, *composer.searchpath)
    if which == "defaults":
        return _info_defaults(composed, prefs, dirs)
    if which == "defaults-tree":
        return _info_tree(composed, prefs, dirs)
    return _info_config(composed, prefs, dirs)


def _why(composed: Any, prefs: dict[str, str]) -> dict[str, str]:
    """Why each group has its option: the command line, a preference, the use case, or the default."""
    choices, req = composed.choices, composed.request
    why = {g: "command line" if g in req.choices else "default" for g in choices}
    if "board" not in req.choices:
        why["board"] = (
            "preferences default_board"
            if prefs.get("default_board") == choices["board"]
            else f"use case {choices['usecase']} default"
        )
    if "endpoint" not in req.choices and choices["endpoint"] == "external":
        why["endpoint"] = "preferences external_endpoint_url"
    return why


def _info_defaults(composed: Any, prefs: dict[str, str], dirs: Dirs) -> str:
    from compiler.prefs import prefs_path

    choices, req, why = composed.choices, composed.request, _why(composed, prefs)
    rows = [("config.yaml", "primary config", "")]
    rows += [(_group_file(g, o), f"{g}={o}", why[g]) for g, o in choices.items()]
    rows += [(f, f"{g}={o}", "specialization") for g, o, f in _specializations(choices, dirs)]
    rows += [(str(prefs_path()), "preferences", ", ".join(sorted(prefs)) or "(none)")]
    rows += [("command line", "overrides", " ".join(req.raw) or "(none)")]
    width = max(len(r[0]) for r in rows)
    return "Defaults list (applied in this order; later wins):\n" + "".join(
        f"  {f:<{width}}  {what}{'  [' + note + ']' if note else ''}\n" for f, what, note in rows
    )


def _info_tree(composed: Any, prefs: dict[str, str], dirs: Dirs) -> str:
    from compiler.prefs import prefs_path

    choices, req, why = composed.choices, composed.request, _why(composed, prefs)
    lines = ["<root>:", "  config.yaml"]
    lines += [f"    {g}: {_group_file(g, o)}  [{why[g]}]" for g, o in choices.items()]
    lines += [f"    {g}: {f}  [specialization]" for g, o, f in _specializations(choices, dirs)]
    lines += [
        "    _self_",
        f"  preferences: {prefs_path()} ({', '.join(sorted(prefs)) or 'none'})",
        f"  command line: {' '.join(req.raw) or '(none)'}",
    ]
    return "\n".join(lines) + "\n"


def _info_config(composed: Any, prefs: dict[str, str], dirs: Dirs) -> str:
    """Each value and where it came from."""
    choices, req = composed.choices, composed.request
    lines = [
        "# value  <- source",
        *(
            f"{k}: {composed.config['endpoint']['url'] if k == 'endpoint.url' else composed.config[k]!r}"
            f"  <- {src}"
            for k, src in top_sources(composed, prefs).items()
        ),
        "knobs:",
    ]
    for name, src in knob_sources(composed, dirs).items():
        lines.append(f"  {name}: {composed.config['knobs'][name]!r}  <- {src}")
    cli_books = [k for k, _ in req.values if k.startswith("cookbooks.")]
    lines.append("cookbooks:")
    for name in composed.config["cookbooks"]:
        changed = [k for k in cli_books if k.split(".")[1] == name]
        origin = f"{_group_file('board', choices['board'])} or {_group_file('usecase', choices['usecase'])}"
        lines.append(f"  {name}  <- {origin}" + (f"; command line: {', '.join(changed)}" if changed else ""))
    return "\n".join(lines) + "\n"
