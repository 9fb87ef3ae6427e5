"""What a flow variant is, read once from its declaration in conf/flow/*.yaml (and conf/cookbooks.yaml).

Every compiler stage asks here: compose (board use), schema (knob sets), matrix and pipeline
(compile key), pipeline and the run-book (run name, submit line), rules (run name, endpoint), render
(resource classes), the run-book (final stage). A flow's facts are its conf/flow/<flow>.yaml `flow` block:
`variant`, `title`, `usecases`, `cookbooks`, `run_name`, `endpoint`, `final_stage`, `resources`
(+ `usecase_free`); a use case that makes it another variant says so in
conf/flow_usecase/<flow>_<usecase>.yaml (Hydra config specialization: composed after the flow,
it replaces the `flow` fields it names and adds its knobs). Each variant has a
`flow_<variant>` in compiler/tasks.py (its `FLOWS`) for its tasks.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from compiler.paths import CONF_DIR, group_options

STAMP = "$STAMP"


@cache
def flow_file(flow: str) -> dict[str, Any]:
    """conf/flow/<flow>.yaml as plain data (interpolations unresolved, defaults list not applied)."""
    return _load("flow", flow) or {}


def _load(group: str, option: str) -> dict[str, Any] | None:
    """A conf/ file as plain YAML data (no interpolation, no defaults list): ~10x faster than OmegaConf.load."""
    import yaml

    path = CONF_DIR / group / f"{option}.yaml"
    if not path.is_file():
        return None
    data: dict[str, Any] = yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)
    return data


@cache
def declaration(flow: str, usecase: str) -> dict[str, Any]:
    """The `flow` block Hydra composes for flow x use case: the flow file's, its specialization's over it.

    The `flow` block holds plain values and lists only (a flow's defaults list brings knobs, never
    `flow` fields), so a key-by-key update is the merge Hydra does (tests/test_conf_layout.py checks).
    """
    special = (_load("flow_usecase", f"{flow}_{usecase}") or {}).get("flow", {})
    return {**flow_file(flow)["flow"], **special}


@cache
def variants() -> dict[str, dict[str, Any]]:
    """{variant name: its declaration + `flow` (the first flow option declaring it) + `usecases` (in that flow)}."""
    out: dict[str, dict[str, Any]] = {}
    for flow in group_options("flow"):
        for usecase in flow_file(flow)["flow"]["usecases"]:
            decl = declaration(flow, usecase)
            entry = out.setdefault(decl["variant"], {**decl, "flow": flow, "usecases": []})
            if entry["flow"] == flow:
                entry["usecases"].append(usecase)
    return out


@cache
def knob_names(flow: str, usecase: str) -> tuple[str, ...]:
    """The knobs Hydra composes for flow x use case (the flow's defaults list and specialization applied)."""
    from compiler.options import load_option

    names = list(load_option("flow", flow)["knobs"])
    if (CONF_DIR / "flow_usecase" / f"{flow}_{usecase}.yaml").is_file():
        names += [
            k for k in load_option("flow_usecase", f"{flow}_{usecase}").get("knobs", {}) if k not in names
        ]
    return tuple(names)


@cache
def variant_knob_sets() -> dict[str, list[str]]:
    """Knob names of each flow variant; a variant declared by two flows must have one knob set."""
    out: dict[str, list[str]] = {}
    for flow in group_options("flow"):
        for usecase in flow_file(flow)["flow"]["usecases"]:
            name, knobs = declaration(flow, usecase)["variant"], list(knob_names(flow, usecase))
            if out.setdefault(name, knobs) != knobs:
                raise ValueError(f"variant '{name}' has two different knob sets")
    return out


def uses_board(variant: dict[str, Any]) -> bool:
    """A variant renders a board when it mounts a cookbook the board group owns (conf/cookbooks.yaml)."""
    from compiler.contract import cookbook_owner

    return any(cookbook_owner(book) == "board" for book in variant.get("cookbooks", []))


def declared(config: dict[str, Any]) -> dict[str, Any]:
    """The declaration of the compiled config's variant."""
    return variants()[config["flow"]["variant"]]


def takes_run_name(config: dict[str, Any]) -> bool:
    """Setup flows write fixed artifact URLs and take no run name (spec/knobs.md §7)."""
    return bool(declared(config)["run_name"])


def calls_endpoint(config: dict[str, Any]) -> bool:
    return bool(declared(config)["endpoint"])


def final_stage(config: dict[str, Any]) -> tuple[str, str] | None:
    """(stage directory under runs/<name>/, the folder in it that holds the result), or None (setup)."""
    final = declared(config)["final_stage"]
    return (final[0], final[1]) if final else None


def resource_classes(config: dict[str, Any]) -> list[str]:
    return list(declared(config)["resources"])


def key_of(flow: str, usecase: str, board: str | None, pretrained: bool | None, usecase_free: bool) -> str:
    """The compile key, e.g. day0/pcb__0603_H100__pretrained (also the golden and generated file name)."""
    parts = ["shared" if usecase_free else usecase]
    if board is not None:
        parts.append(board)
    if pretrained is not None:
        parts.append("pretrained" if pretrained else "finetune")
    return f"{flow}/{'__'.join(parts)}"


def compile_key(config: dict[str, Any]) -> str:
    flow, knobs = config["flow"], config["knobs"]
    return key_of(
        flow["key"],
        config["usecase"]["key"],
        config["board"]["key"] if flow["uses_board"] else None,
        knobs.get("use_pretrained_checkpoint"),
        flow["usecase_free"],
    )


def submit_run_name(config: dict[str, Any]) -> str | None:
    """What `--set name=` gets at submit: None when the flow takes no name or the name is compiled in."""
    if not takes_run_name(config) or config["name"]:
        return None
    return f"{config['flow']['key']}-{STAMP}"


def run_name(config: dict[str, Any]) -> str | None:
    """The run name a person talks about: the compiled one, `<flow>-$STAMP`, or None (setup flows)."""
    if not takes_run_name(config):
        return None
    return config["name"] or f"{config['flow']['key']}-{STAMP}"


def submit_command(config: dict[str, Any], file: str, *, pool: str | None = None) -> str:
    """`osmo workflow submit FILE --pool P [--set name=<flow>-$STAMP]`: the one submit line."""
    cmd = f"osmo workflow submit {file} --pool {pool or config['pool'] or '<pool>'}"
    name = submit_run_name(config)
    return cmd + (f" --set name={name}" if name else "")
