"""Planning (compiler.tasks, compiler.task): named inputs numbered by declaration order, Task as data,
and the run-book reading the compile's own tasks."""

from __future__ import annotations

import dataclasses
import re

import pytest

from compiler.errors import DigError
from compiler.task import Cookbook, Task, assign_inputs, ref

_INDEX = re.compile(r"\{\{input:(\d+)\}\}")
_NAMED = re.compile(r"\{\{input:[A-Za-z_]")


def _task(**kw):
    base = dict(
        name="t",
        group="g",
        image="img",
        resource="cpu-download",
        script="/tmp/run.sh",
        step="setup-data",
        summary="",
        spec={},
        output="s3://b/out",
    )
    return Task(**(base | kw))


def test_names_become_the_position_of_the_input():
    task = _task(
        inputs={"b_in": {"url": "s3://b/x"}, "a_in": {"task": "up"}},
        spec={"a": ref("a_in"), "nested": {"b": [ref("b_in") + "/sub"]}, "n": 3},
        environment={"A": ref("a_in"), "PLAIN": "{{output}}"},
        cookbooks=[Cookbook("/tmp/c.yaml", {"dir": ref("b_in"), "k": 1}, "cookbooks.c")],
    )
    done = assign_inputs(task)
    assert done.spec == {"a": "{{input:1}}", "nested": {"b": ["{{input:0}}/sub"]}, "n": 3}
    assert done.environment == {"A": "{{input:1}}", "PLAIN": "{{output}}"}
    assert done.cookbooks[0].data == {"dir": "{{input:0}}", "k": 1}
    assert task.spec["a"] == ref("a_in"), "the planned task itself is left as it was"


def test_a_reference_to_an_undeclared_input_is_refused():
    with pytest.raises(DigError, match="does not declare"):
        assign_inputs(_task(inputs={"a_in": {"url": "s3://b/x"}}, spec={"x": ref("typo")}))


def test_task_is_frozen_data_without_behaviour():
    assert dataclasses.is_dataclass(Task) and Task.__dataclass_params__.frozen
    own = {n for n, v in vars(Task).items() if callable(v) and not n.startswith("__")}
    assert own == set()


def test_every_compiled_input_reference_is_numbered_and_in_range(matrix_compiled):
    for key, compiled in matrix_compiled.items():
        for task in compiled.tasks:
            values = [str(task.spec), str(task.environment), *(str(b.data) for b in task.cookbooks)]
            assert not any(_NAMED.search(v) for v in values), (key, task.name)
            used = {int(i) for v in values for i in _INDEX.findall(v)}
            assert used <= set(range(len(task.inputs))), (key, task.name, used)


def test_inference_names_its_inputs_by_the_spec_keys(compile_args):
    (infer,) = [t for t in compile_args("flow=day0").tasks if t.step == "infer-day0"]
    assert list(infer.inputs) == [
        "clean_in",
        "mask_in",
        "submask_base_in",
        "pretrained_src_in",
        "ckpt_dataset",
    ]
    assert [infer.spec[name] for name in infer.inputs] == [f"{{{{input:{i}}}}}" for i in range(5)]
    assert infer.inputs["clean_in"] == {"task": "image-edit"}


def test_the_runbook_reads_the_compiled_tasks_and_plans_nothing(compile_args, monkeypatch):
    import compiler.tasks
    from compiler.runbook_build import build_runbook

    compiled = compile_args("flow=day0")

    def refuse(config):
        raise AssertionError("the run-book planned the tasks again")

    monkeypatch.setattr(compiler.tasks, "plan_tasks", refuse)
    monkeypatch.setattr(compiler.tasks, "FLOWS", {})
    plan = build_runbook(compiled, "wf.yaml")
    assert [s["task"] for s in plan["output_location"]["stages"]] == [t.name for t in compiled.tasks]
