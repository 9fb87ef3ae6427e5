"""`dig --help` (config groups, settings, verbs) and `dig flow=X --help` (that flow's knobs), read off conf/."""

from __future__ import annotations

import json
from typing import Any

from omegaconf import OmegaConf

from compiler.paths import CONF_DIR, GROUPS, group_options


def _first_comment(group: str, option: str) -> str:
    """The option file's own one-line description: its first comment line that is not a directive."""
    for raw in (CONF_DIR / group / f"{option}.yaml").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line.startswith("#") and not line.startswith(("# @package", "# yaml-language-server")):
            text = line.lstrip("# ").strip()
            if text and not text.startswith("python -m"):
                return text.split(": ", 1)[1] if text.lower().startswith(option.lower() + ":") else text
        elif line and not line.startswith("#"):
            break
    return ""


def _load(group: str, option: str) -> dict[str, Any]:
    return OmegaConf.to_container(OmegaConf.load(CONF_DIR / group / f"{option}.yaml"), resolve=False)  # type: ignore[return-value]


def preset_flows(preset: str) -> list[str]:
    """The flows a preset has values for: those with a conf/knobs_flow/<preset>_<flow>.yaml."""
    have = set(group_options("knobs_flow"))
    return [f for f in group_options("flow") if f"{preset}_{f}" in have]


def _top_level_settings() -> list[tuple[str, str]]:
    """Top-level keys of conf/config.yaml with the comment above each."""
    out, comment = [], ""
    for raw in (CONF_DIR / "config.yaml").read_text(encoding="utf-8").splitlines():
        if raw.startswith("#"):
            comment = "" if raw.startswith("# yaml-language-server") else raw.lstrip("# ").strip()
        elif raw and not raw.startswith((" ", "-", "defaults")) and ":" in raw:
            key = raw.split(":", 1)[0]
            out.append((key, comment))
            comment = ""
        elif not raw.strip():
            comment = ""
    return out


def app_help() -> str:
    from compiler.cli import VERBS

    lines = [
        "dig: compile DIG defect-image-generation workflows for NVIDIA OSMO from Hydra config groups.",
        "",
        "Usage:",
        "  dig [key=value ...]            compile one workflow (python -m compiler is the same)",
        "  dig -m [key=a,b ...]           compile every variant of a sweep",
        "  dig VERB [args ...]            run a tool (dig VERB --help)",
        "  dig flow=NAME [usecase=...] --help   that flow's knobs, types, defaults and cookbooks",
        "",
        "== Config groups ==",
        "Compose your config from these groups (group=option):",
        "",
    ]
    for group in GROUPS:
        lines.append(f"{group}:")
        for option in group_options(group):
            desc = _first_comment(group, option)
            extra = ""
            if group == "flow":
                extra = f" [usecases: {', '.join(_load('flow', option)['flow']['usecases'])}]"
            elif group == "usecase":
                meta = _load("usecase", option)["usecase"]
                boards = [str(b) for b in meta.get("boards", [])]
                extra = f" [boards: {', '.join(boards) or 'none'}; default {meta.get('default_board')}]"
            elif group == "knobs":
                extra = f" [flows: {', '.join(preset_flows(option)) or 'all'}]"
            lines.append(f"  {option:<18} {desc}{extra}".rstrip())
        lines.append("")
    lines += ["== Settings ==", ""]
    lines += [f"  {key:<18} {comment}" for key, comment in _top_level_settings()]
    lines += [
        "  knobs.<name>       a knob of the chosen flow (dig flow=NAME --help lists them)",
        "  cookbooks.<file>.<field>   a cookbook field of the chosen flow",
        "  endpoint.url       image-edit endpoint URL (endpoint=external)",
        "",
        "== Flags (Hydra's spellings) ==",
        "",
        "  -h, --help                     this help; with flow= the flow's knobs",
        "  -c, --cfg job|all              print the composed config as YAML (--resolve, -p/--package PATH)",
        "  -i, --info defaults|defaults-tree|config|searchpath   where each value came from",
        "  --shell-completion install=bash|zsh|fish   print a completion script (eval it)",
        "  -cd, --config-dir DIR          add a user config directory to the search path",
        "  --images N                     size the workflow to about N images (spec yield rules)",
        "  -m, --multirun                 sweep: comma values expand to variants",
        "  --version                      dig's version",
        "",
        "== Verbs ==",
        "",
    ]
    lines += [f"  {name:<10} {verb.summary}" for name, verb in VERBS.items()]
    lines += [
        "",
        "Exit codes: 0 ok, 1 config error / check failed, 2 usage error, 4 environment (tool or "
        "credentials missing), 130 interrupted.",
        "DIG_FULL_ERROR=1 shows tracebacks.",
    ]
    return "\n".join(lines) + "\n"


def _type_text(schema: dict[str, Any]) -> tuple[str, str]:
    """(type, allowed values) of a knob schema fragment, as a user would write them."""
    if "enum" in schema:
        return "enum", ", ".join(map(str, schema["enum"]))
    if "anyOf" in schema:
        parts = []
        for alt in schema["anyOf"]:
            if "const" in alt:
                parts.append(json.dumps(alt["const"]))
            elif alt.get("type") == "null":
                parts.append("null")
            else:
                lo, hi = alt.get("minimum"), alt.get("maximum")
                parts.append(f"{alt.get('type', schema.get('type', ''))} {lo}..{hi}".strip())
        return str(schema.get("type", "value")), " | ".join(parts)
    types = schema.get("type", "value")
    kind = "|".join(types) if isinstance(types, list) else str(types)
    if "minimum" in schema or "maximum" in schema:
        return kind, f"{schema.get('minimum', '')}..{schema.get('maximum', '')}"
    if kind == "array":
        return "list", "[[material, defect], ...] or a JSON string"
    if "pattern" in schema:
        from compiler.knobs import pattern_hint

        hint = pattern_hint(schema["pattern"])
        if hint is None and len(schema["pattern"]) > 80:
            hint = (
                "a docker image reference" if "image" in schema.get("description", "") else "see the schema"
            )
        return kind, hint or f"/{schema['pattern']}/"
    return kind, ""


def flow_help(overrides: list[str], *, composer: Any = None) -> str:
    from compiler.compose import parse_overrides
    from compiler.pipeline import default_composer
    from compiler.prefs import load_prefs
    from compiler.schema import load_schema

    composed = (composer or default_composer()).compose(parse_overrides(overrides), load_prefs())
    config, defs = composed.config, load_schema()["$defs"]
    flow = config["flow"]
    picked = " ".join(f"{g}={o}" for g, o in composed.choices.items())
    lines = [
        f"dig {flow['key']}: {flow['title']} (variant {flow['variant']}; composed from {picked})",
        "",
        "== Knobs == (knobs.<name>=value)",
        "",
    ]
    rows = []
    for name, value in config["knobs"].items():
        frag = defs.get(f"knob_{name}", {})
        kind, allowed = _type_text(frag)
        default = json.dumps(value) if not isinstance(value, str) or value == "" else value
        rows.append((name, default, kind, allowed, frag.get("description", "")))
    width = max(len(r[0]) for r in rows)
    for name, default, kind, allowed, meaning in rows:
        lines.append(f"  {name:<{width}}  {meaning}")
        lines.append(
            f"  {'':<{width}}    default {default}; {kind}" + (f"; allowed {allowed}" if allowed else "")
        )
    lines += ["", "== Cookbooks == (cookbooks.<file>.<field path>=value)", ""]
    for name, book in config["cookbooks"].items():
        fields = sorted(book) if isinstance(book, dict) else []
        lines.append(f"  {name}: {', '.join(fields)}")
    lines += [
        "",
        "Presets: knobs=" + ", knobs=".join(group_options("knobs")),
        "Sweep any of these with: dig -m ... knobs.<name>=a,b",
    ]
    return "\n".join(lines) + "\n"
