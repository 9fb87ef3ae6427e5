"""The compiled workflow is the contract downstream: preflight reads and outputs' stages equal the compiled tasks.

Over the shipped matrix plus the variants that broke (issue 11). The oracle is the compiler's own
planned tasks (`Compiled.tasks`, from compiler.tasks.plan_tasks) and the composed config's knobs, not the YAML the packages parse.
"""

from __future__ import annotations

import re

import pytest
import yaml
from dig_outputs.workflow import run_layout
from dig_preflight.requirements import checkpoint_filename, requirements

from compiler.compose import parse_overrides
from compiler.matrix import shipped_matrix
from compiler.pipeline import compile_request

VARIANTS = {
    "day1-pcb-0603": ("flow=day1", "usecase=pcb", "board=0603_H100"),
    "day1-pcb-1152819000": ("flow=day1", "usecase=pcb", "board=1152819000"),
    "day1-pcb-no-render": ("flow=day1", "usecase=pcb", "knobs.use_usd2roi_day1=false"),
    "day1-glass": ("flow=day1", "usecase=glass"),
    "day1-metal": ("flow=day1", "usecase=metal_surface"),
    "day0-smoke": ("flow=day0", "knobs=smoke"),
    "day0-full-board": ("flow=day0", "knobs=full_board"),
    "structural-full-board": ("flow=structural", "knobs=full_board", "board=1152819000"),
    "day0-external": ("flow=day0", "endpoint=external", "endpoint.url=https://edit.example.com/v1"),
    "day1-named": ("flow=day1", "usecase=pcb", "name=day1-1a2b3c4d"),
    "setup-glass-own-zip": ("flow=setup", "usecase=glass", "knobs.uc3_zip_url_root=s3://bkt/uploads/z"),
}
CASES = {e.key: e.overrides for e in shipped_matrix()} | VARIANTS
_INPUT = re.compile(r"\{\{input:(\d+)\}\}")


@pytest.fixture(scope="module")
def compiled(composer):
    cache = {}

    def get(case):
        if case not in cache:
            c = compile_request(parse_overrides(list(CASES[case])), composer=composer, prefs={})
            cache[case] = (c, yaml.safe_load(c.text), c.tasks)
        return cache[case]

    return get


def _reads(tasks) -> set[tuple[str, str]]:
    """(URL, task) for every storage input a compiled task mounts, minus a checkpoint the run trains itself."""
    out = set()
    for t in tasks:
        keys_by_index: dict[int, set[str]] = {}
        for key, value in t.spec.items():
            for m in _INPUT.finditer(value if isinstance(value, str) else ""):
                keys_by_index.setdefault(int(m.group(1)), set()).add(key)
        for i, inp in enumerate(t.inputs.values()):
            if "url" not in inp:
                continue
            if "ckpt_dataset" in keys_by_index.get(i, set()) and t.spec.get("fresh_checkpoint"):
                continue
            out.add((inp["url"].rstrip("/"), t.name))
    return out


@pytest.mark.parametrize("case", CASES)
def test_preflight_requirements_equal_what_the_compiled_tasks_read(case, compiled):
    c, doc, tasks = compiled(case)
    k = c.config["knobs"]
    reqs = requirements(doc, name=None)
    assert {(r.url, t) for r in reqs if r.kind != "run_absent" for t in r.read_by} == _reads(tasks)
    for r in reqs:
        if r.kind == "checkpoint":
            assert r.params["step"] == k["checkpoint_step"]
            assert checkpoint_filename(k["checkpoint_step"]) in r.contains()
            assert r.params["pairs"] == k["anomaly_types_json"]
        elif r.kind == "raw" and r.params["pairs"] is not None:
            assert r.params["pairs"] == k["anomaly_types_json"]
            assert [
                f"{m}/mask/{d}/ (at least one image)" for m, d in k["anomaly_types_json"]
            ] == r.contains()[1:]
        elif r.kind == "assets":
            assert r.params["scene"] == k["scene_filename"]
            renders_day1 = any(t.step == "render-day1" for t in tasks)
            assert r.params["real_image"] == (k["real_image_filename"] if renders_day1 else None)
        elif r.kind == "zip":
            assert r.url == k["uc3_zip_url_root"].rstrip("/")
    run_outputs = [t.output for t in tasks if "/runs/" in t.output]
    named = requirements(doc, name="fresh-run")
    assert [r.url for r in named if r.kind == "run_absent"] == (
        [f"{c.config['dig_url_root']}/runs/{c.config['name'] or 'fresh-run'}"] if run_outputs else []
    )


@pytest.mark.parametrize("case", CASES)
def test_outputs_stages_equal_what_the_compiled_tasks_write(case, compiled):
    c, doc, tasks = compiled(case)
    writes = [(t.output.rstrip("/").rsplit("/", 1)[1], t.name) for t in tasks if "/runs/" in t.output]
    if not writes:
        with pytest.raises(Exception, match="writes no runs/<name>/<stage> output"):
            run_layout(doc)
        return
    layout = run_layout(doc)
    assert [(s.dir, s.task) for s in layout.stages] == writes
    assert layout.root == c.config["dig_url_root"]
    assert layout.name == c.config["name"]


def test_the_variants_that_broke(compiled):
    """The three measured cases of issue 11, stated directly."""
    _, doc, _ = compiled("day1-pcb-1152819000")
    raw = next(r for r in requirements(doc) if r.kind == "raw")
    assert raw.params["pairs"] == [["IC", "bridge"]]
    _, doc, _ = compiled("day1-pcb-no-render")
    assert not any(r.kind == "assets" for r in requirements(doc))
    _, doc, _ = compiled("day1-glass")
    assert run_layout(doc).stage_dirs == ("anomaly",) and run_layout(doc).layout == "manual"
