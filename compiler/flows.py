"""What a flow variant is, read once from its declaration in conf/flow/*.yaml (and conf/cookbooks.yaml).

Every compiler stage asks here: compose (knob set, board use), schema (knob sets), matrix and
pipeline (compile key), pipeline and plan (run name, submit line), rules (run name, endpoint),
model (resource classes), plan (final stage). A new flow's facts go into its conf/flow/<flow>.yaml
variant block: `usecases`, `title`, `cookbooks`, `run_name`, `endpoint`, `final_stage`,
`resources` (+ `set_knobs`, `drop_knobs`, `usecase_free`), and a `Planner.flow_<variant>` in
compiler/model.py for its tasks.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from compiler.paths import CONF_DIR, group_options

STAMP = "$STAMP"


@cache
def flow_file(flow: str) -> dict[str, Any]:
    """conf/flow/<flow>.yaml as plain data (interpolations unresolved)."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(CONF_DIR / "flow" / f"{flow}.yaml"), resolve=False)  # type: ignore


@cache
def variants() -> dict[str, dict[str, Any]]:
    """{variant name: its declaration + `flow` (the flow option) + `knobs` (its knob names)}."""
    out: dict[str, dict[str, Any]] = {}
    for flow in group_options("flow"):
        data = flow_file(flow)
        for name, variant in data["flow"]["variants"].items():
            knobs = list(knob_set(data["knobs"], variant))
            previous = out.get(name)
            if previous is not None and previous["knobs"] != knobs:
                raise ValueError(f"variant '{name}' has two different knob sets")
            out.setdefault(name, {**variant, "flow": flow, "knobs": knobs})
    return out


def knob_set(flow_knobs: dict[str, Any], variant: dict[str, Any]) -> dict[str, Any]:
    """The variant's knobs with their flow defaults: the flow's knobs less `drop_knobs`, `set_knobs` applied."""
    knobs = {k: v for k, v in flow_knobs.items() if k not in variant.get("drop_knobs", [])}
    knobs.update(variant.get("set_knobs", {}))
    return knobs


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
