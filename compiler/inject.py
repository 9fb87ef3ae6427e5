"""Which dig_stages modules a pod step needs: the step's module and its intra-package imports, transitively."""

from __future__ import annotations

import ast
import re
from functools import cache

from compiler.errors import error
from compiler.paths import STAGES_DIR

POD_DIR = "/tmp/dig/dig_stages"
# Never shipped to a pod: USD needs usd-core, which the containers lack (ARCHITECTURE: "What runs in the pods").
NEVER_INJECTED = {"usd_scan", "usd_preview", "synthetic_board", "synthetic_layouts", "synthetic_mesh"}


@cache
def step_table() -> dict[str, tuple[str, str]]:
    """STEPS of dig_stages/__main__.py, read statically (no import of the package)."""
    tree = ast.parse((STAGES_DIR / "__main__.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == "STEPS":
            table: dict[str, tuple[str, str]] = ast.literal_eval(node.value)  # type: ignore[arg-type]
            return table
    raise RuntimeError("dig_stages/__main__.py has no STEPS table")


# dig_stages keeps intra-package imports absolute and at module top level (column 0), so a line scan
# finds them; parsing every module with ast cost ~60 ms per compile. tests/test_injection.py checks
# that this scan and a full ast walk agree on every module.
_FROM = re.compile(r"^from dig_stages(?:\.(\w+))? import (\([^)]*\)|[^\n]+)", re.M)
_IMPORT = re.compile(r"^import dig_stages\.(\w+)", re.M)


@cache
def _imports(module: str) -> tuple[str, ...]:
    path = STAGES_DIR / f"{module}.py"
    if not path.is_file():
        raise error(f"dig_stages.{module}", "module not found in packages/dig-stages", got=str(path))
    text = path.read_text(encoding="utf-8")
    found: list[str] = []
    for sub, names in _FROM.findall(text):
        if sub:
            found.append(sub)
        else:
            found += [n.split(" as ")[0].strip() for n in names.strip("()").replace("\n", " ").split(",")]
    found += _IMPORT.findall(text)
    return tuple(m for m in dict.fromkeys(found) if m and (STAGES_DIR / f"{m}.py").is_file())


@cache
def modules_for_step(step: str) -> tuple[str, ...]:
    """Sorted module names (without .py) that `python -m dig_stages <step>` imports."""
    table = step_table()
    if step not in table:
        raise error(
            "dig_stages step",
            f"'{step}' is not in dig_stages.__main__.STEPS",
            got=step,
            allowed=", ".join(sorted(table)),
        )
    start = table[step][0].split(".")[1]
    seen: set[str] = set()
    todo = [start]
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        seen.add(mod)
        todo.extend(_imports(mod))
    bad = seen & NEVER_INJECTED
    if bad:
        raise error(
            f"dig_stages.{start}", f"imports USD modules {sorted(bad)}, which are never shipped to pods"
        )
    return tuple(sorted(seen | {"__init__", "__main__"}))


@cache
def module_source(module: str) -> str:
    return (STAGES_DIR / f"{module}.py").read_text(encoding="utf-8")


def stage_files(step: str, *, placeholders: bool = False) -> list[dict[str, str]]:
    """`files:` entries for a step: each module's exact source at /tmp/dig/dig_stages/<module>.py.

    With placeholders, contents are short markers that compiler.emit.splice_modules replaces by
    the source after dumping (same bytes, emitted once per module).
    """
    from compiler.emit import module_placeholder

    return [
        {"path": f"{POD_DIR}/{m}.py", "contents": module_placeholder(m) if placeholders else module_source(m)}
        for m in modules_for_step(step)
    ]
