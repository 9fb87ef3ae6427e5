"""What a compiled OSMO workflow needs before submit: its storage requirements and its credentials."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .requirements import Requirement, WorkflowError, requirements, tasks_of

__all__ = ["WorkflowError", "WorkflowNeeds", "workflow_needs"]


@dataclass
class WorkflowNeeds:
    artifacts: list[Requirement] = field(default_factory=list)
    credentials: dict[str, set[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    run_name: str | None = None


def workflow_needs(doc: Any, *, name: str | None = None) -> WorkflowNeeds:
    """Every storage requirement (requirements()), the runs/<name>/ to keep free, the credentials."""
    needs = WorkflowNeeds()
    needs.artifacts = requirements(doc, name=name, notes=needs.notes)
    for task in tasks_of(doc):
        creds = task.get("credentials") or {}
        if not isinstance(creds, dict):
            raise WorkflowError(f"task {task.get('name')!r}: credentials is not a mapping")
        for cred, value in creds.items():
            keys = needs.credentials.setdefault(str(cred), set())
            if isinstance(value, dict):
                keys.update(str(v) for v in value.values())
    runs = [a.params["name"] for a in needs.artifacts if a.kind == "run_absent"]
    needs.run_name = runs[-1] if runs else None
    return needs
