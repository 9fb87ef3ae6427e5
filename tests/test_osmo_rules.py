"""One test row per registered OSMO rule (compiler.osmo.rules.OSMO_RULES, compiler.osmo.task_rules.TASK_RULES):
a document that breaks it, the key path of the finding and words of its message."""

from __future__ import annotations

import pytest
import yaml

from compiler.osmo import validate_text
from compiler.osmo.findings import K8S_SECRET_LIMIT
from compiler.osmo.rules import OSMO_RULES
from compiler.osmo.task_rules import TASK_RULES


def task(**kw):
    return {"name": "t", "image": "ubuntu:24.04", "command": ["echo"], **kw}


def doc(**wf):
    return yaml.safe_dump({"version": 2, "workflow": {"name": "w", **wf}}, sort_keys=False)


ROWS = {
    "groups-xor-tasks": (
        doc(tasks=[task()], groups=[{"name": "g", "tasks": [task(name="u")]}]),
        "workflow",
        "use either `groups` or `tasks`",
    ),
    "max-num-tasks": (doc(tasks=[task(name=f"t{i}") for i in range(101)]), "workflow", "too many tasks"),
    "names": (doc(tasks=[task(name="9bad")]), "workflow.tasks[0].name", ""),
    "unique-k8s-names": (
        doc(tasks=[task(name="a_b"), task(name="A-b")]),
        "workflow.tasks[1].name",
        "clashes",
    ),
    "reserved-osmo-ctrl": (doc(tasks=[task(name="osmo-ctrl")]), "workflow.tasks[0].name", "osmo-ctrl"),
    "one-lead": (
        doc(groups=[{"name": "g", "tasks": [task(name="a"), task(name="b")]}]),
        "workflow.groups[0].tasks",
        "lead task",
    ),
    "task-inputs": (
        doc(tasks=[task(inputs=[{"task": "nope"}])]),
        "workflow.tasks[0].inputs[0].task",
        "Task input nope does not exist",
    ),
    "resources": (
        doc(resources={"default": {"memory": "64"}}, tasks=[task()]),
        "workflow.resources.default.memory",
        "whole Ki",
    ),
    "task-fields": (doc(tasks=[task(image="Not A/Ref!")]), "workflow.tasks[0].image", ""),
    # the task rules that task-fields runs on every task
    "image-reference": (doc(tasks=[task(image="Not A/Ref!")]), "workflow.tasks[0].image", "docker reference"),
    "task-resource": (
        doc(tasks=[task(resource="big")]),
        "workflow.tasks[0].resource",
        "undefined resource big",
    ),
    "files": (
        doc(tasks=[task(files=[{"path": "/osmo/x", "contents": "a"}])]),
        "workflow.tasks[0].files[0].path",
        "under /osmo",
    ),
    "exit-actions": (
        doc(tasks=[task(exitActions={"RETRY": "1"})]),
        "workflow.tasks[0].exitActions.RETRY",
        "Invalid exit action",
    ),
    "cache-size": (doc(tasks=[task(cacheSize="150%")]), "workflow.tasks[0].cacheSize", "0-100%"),
    "checkpoint": (
        doc(tasks=[task(checkpoint=[{"path": "/c", "url": "ftp://b/c", "frequency": 60}])]),
        "workflow.tasks[0].checkpoint[0].url",
        "Unknown URI scheme",
    ),
    "volume-mounts": (
        doc(tasks=[task(volumeMounts=["a:b:c"])]),
        "workflow.tasks[0].volumeMounts[0]",
        "src:dst",
    ),
    "same-topology-keys": (
        doc(
            resources={"default": {}, "r2": {"topology": [{"key": "zone"}]}},
            groups=[{"name": "g", "tasks": [task(name="a", lead=True), task(name="b", resource="r2")]}],
        ),
        "workflow.resources",
        "same topology key set",
    ),
    "labels": (doc(labels={"bad key!": "v"}, tasks=[task()]), "workflow.labels", ""),
}


def test_every_registered_rule_has_a_row_and_a_source():
    rules = [*OSMO_RULES, *TASK_RULES]
    assert len({r.name for r in rules}) == len(rules), "two rules share a name"
    assert sorted(r.name for r in rules) == sorted(ROWS)
    assert all(r.source and ("utils/" in r.source or "kb_objects" in r.source) for r in rules)


def test_a_file_over_a_secret_is_a_warning():
    text = doc(tasks=[task(files=[{"path": "/tmp/big", "contents": "x" * (K8S_SECRET_LIMIT + 1)}])])
    warnings = [f for f in validate_text(text) if f.severity == "warning"]
    assert any(f.path == "workflow.tasks[0].files[0].contents" and "1 MiB" in f.message for f in warnings)


@pytest.mark.parametrize("name", sorted(ROWS))
def test_rule_row(name):
    text, path, words = ROWS[name]
    errors = [f for f in validate_text(text) if f.severity == "error"]
    hits = [f for f in errors if f.path.startswith(path) and words in f.message]
    assert hits, (name, errors)


def test_the_schema_names_osmo_names_with_the_validators_pattern():
    import json

    from compiler.osmo.findings import NAME_RE, SCHEMA_PATH

    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert schema["$defs"]["name"]["pattern"] == NAME_RE.pattern
