"""The code a pod runs is the code the tests ran: injected dig_stages modules, byte for byte."""

from __future__ import annotations

import ast
import re

import pytest
import yaml

from compiler.inject import (
    NEVER_INJECTED,
    POD_DIR,
    _imports,
    modules_for_step,
    step_table,
)
from compiler.matrix import shipped_matrix
from compiler.paths import STAGES_DIR

POD_STEPS = [
    "render-day0",
    "render-structural",
    "render-day1",
    "image-edit",
    "infer-day0",
    "infer-day1",
    "infer-manual",
    "finetune",
    "setup-pretrained",
    "setup-model",
    "setup-data",
    "setup-assets",
]


def _tasks(text):
    doc = yaml.load(text, Loader=yaml.CSafeLoader)
    for group in doc["workflow"]["groups"]:
        yield from group["tasks"]


@pytest.mark.parametrize("key", [e.path for e in shipped_matrix()])
def test_injected_modules_are_byte_identical_to_the_package(key, matrix_texts):
    for task in _tasks(matrix_texts[key]):
        injected = [f for f in task["files"] if f["path"].startswith(POD_DIR + "/")]
        assert injected, f"{key}:{task['name']} runs no dig_stages code"
        for f in injected:
            module = f["path"].rsplit("/", 1)[1][:-3]
            assert f["contents"] == (STAGES_DIR / f"{module}.py").read_text(encoding="utf-8"), f["path"]
        # Exactly the step's import closure, nothing more.
        launcher = next(f for f in task["files"] if f["path"] == task["args"][0])["contents"]
        step = re.search(r"-m dig_stages (\S+)", launcher).group(1)
        assert sorted(f["path"] for f in injected) == sorted(
            f"{POD_DIR}/{m}.py" for m in modules_for_step(step)
        )


@pytest.mark.parametrize("step", POD_STEPS)
def test_pod_steps_never_pull_usd_code(step):
    mods = set(modules_for_step(step))
    assert not mods & NEVER_INJECTED
    assert {"__init__", "__main__"} <= mods


def test_every_pod_step_is_registered():
    table = step_table()
    assert set(POD_STEPS) <= set(table)


def test_launchers_are_a_few_lines(matrix_texts):
    for key, text in matrix_texts.items():
        for task in _tasks(text):
            launcher = next(f for f in task["files"] if f["path"] == task["args"][0])["contents"]
            assert len(launcher.strip().splitlines()) <= 8, (key, task["name"])
            assert "exec " in launcher and "--spec /tmp/dig/spec.json" in launcher


def imports_by_ast(module: str) -> tuple[str, ...]:
    """The same as inject._imports, by a full ast walk (any depth): the oracle that keeps the line scan honest."""
    tree = ast.parse((STAGES_DIR / f"{module}.py").read_text(encoding="utf-8"))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "dig_stages":
                found += [a.name for a in node.names]
            elif node.module.startswith("dig_stages."):
                found.append(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found += [a.name.split(".")[1] for a in node.names if a.name.startswith("dig_stages.")]
    return tuple(m for m in dict.fromkeys(found) if (STAGES_DIR / f"{m}.py").is_file())


def test_import_scan_agrees_with_a_full_ast_walk():
    for path in sorted(STAGES_DIR.glob("*.py")):
        assert sorted(_imports(path.stem)) == sorted(imports_by_ast(path.stem)), path.name


def test_stage_contract_lists_exactly_the_functions_the_compiler_imports():
    from compiler.paths import PACKAGE_DIR, REPO_ROOT

    used = set()
    for path in PACKAGE_DIR.rglob("*.py"):
        if path.name in ("board_new.py", "board_scene.py"):  # the `dig board new` verb, not part of a compile
            continue
        for mod, names in re.findall(r"^\s*from (dig_stages\.\w+) import ([\w, ]+)$", path.read_text(), re.M):
            used |= {f"{mod}.{n.strip()}" for n in names.split(",")}
    doc = (REPO_ROOT / "docs" / "stage-contract.md").read_text(encoding="utf-8")
    section = doc.split("## Functions the compiler imports from dig_stages at compile time", 1)[1].split(
        "\n## ", 1
    )[0]
    listed = set(re.findall(r"^- `(dig_stages\.[\w.]+)[(`]", section, re.M))
    assert listed == used, f"docs/stage-contract.md lists {sorted(listed)}; compiler/ imports {sorted(used)}"
