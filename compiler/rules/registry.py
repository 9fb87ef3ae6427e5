"""The registry of cross-field config rules and the helpers they share.

A rule is a function `(config, explicit) -> list[Diagnostic]` registered with `@rule(ids, severities,
summary)`: the failure-mode id(s) of spec/failure_modes.md it covers, the severities it may emit and a
one-line summary. check_rules runs every registered rule in registration order and refuses a rule
that emits a severity it did not declare (so the registry cannot drift from what the rules do).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from compiler.errors import Diagnostic

MODEL_ID = "nvidia/Qwen-Image-Edit-NVPCB-OVSL2SL"
SEVERITIES = ("error", "warning", "notice")
Config = dict[str, Any]
RuleFn = Callable[[Config, set[str]], list[Diagnostic]]


@dataclass(frozen=True)
class ConfigRule:
    """One registered rule: failure-mode ids, the severities it may emit, a summary, the check."""

    ids: str
    severities: tuple[str, ...]
    summary: str
    fn: RuleFn


RULES: list[ConfigRule] = []


def rule(ids: str, severities: str, summary: str) -> Callable[[RuleFn], RuleFn]:
    """Register a rule; `severities` is a space-separated subset of error, warning, notice."""
    declared = tuple(severities.split())
    unknown = set(declared) - set(SEVERITIES)
    if not declared or unknown:
        raise ValueError(f"rule {ids}: severities must be among {SEVERITIES}, got {severities!r}")

    def deco(fn: RuleFn) -> RuleFn:
        RULES.append(ConfigRule(ids, declared, summary, fn))
        return fn

    return deco


def check_rules(config: Config, *, explicit: set[str]) -> list[Diagnostic]:
    """Every registered rule over one composed config, in registration order."""
    out: list[Diagnostic] = []
    for entry in RULES:
        found = entry.fn(config, explicit)
        stray = sorted({d.severity for d in found} - set(entry.severities))
        if stray:
            raise RuntimeError(
                f"rule {entry.ids} ({entry.fn.__name__}) emitted {stray}, declared {list(entry.severities)}"
            )
        out.extend(found)
    return out


def finetune_scheduled(config: Config) -> bool:
    knobs = config["knobs"]
    return bool(config["flow"]["key"] == "finetune" or knobs.get("use_pretrained_checkpoint") is False)


def err(key: str, message: str, got: object = None, allowed: str | None = None, rid: str = "") -> Diagnostic:
    return Diagnostic("error", key, message, got, allowed, rid)


def warn(key: str, message: str, got: object = None, allowed: str | None = None, rid: str = "") -> Diagnostic:
    return Diagnostic("warning", key, message, got, allowed, rid)


_GIB_PER_UNIT = {
    "Ti": 1024,
    "TiB": 1024,
    "T": 1e12 / 2**30,
    "Gi": 1,
    "GiB": 1,
    "G": 1e9 / 2**30,
    "Mi": 1 / 1024,
    "MiB": 1 / 1024,
    "M": 1e6 / 2**30,
    "Ki": 1 / 2**20,
    "KiB": 1 / 2**20,
    "K": 1e3 / 2**30,
    "B": 1 / 2**30,
}


def gib(quantity: str) -> float:
    """A Kubernetes quantity such as 64Gi in GiB (0.0 when it does not parse; bytes when unit-less)."""
    m = re.match(r"^([0-9.]+)([A-Za-z]*)$", quantity)
    if not m:
        return 0.0
    number, unit = float(m.group(1)), m.group(2)
    return number * _GIB_PER_UNIT.get(unit, 1 / 2**30)
