"""What a run holds, read from its compiled workflow: stage directories, the tasks writing them, output URLs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .source import OutputsError

_RUN_OUTPUT = re.compile(r"^(?P<root>.+)/runs/(?P<name>[^/]+)/(?P<stage>[^/]+)/?$")
_NAME_TOKEN = re.compile(r"^\{\{\s*name\s*\}\}$")
# The preview's row layout is chosen by the stage that anchors a sample (storage_layout.md §5):
# the first of these the workflow writes. A fact about file naming, keyed by stage directory.
ANCHORS = (
    ("usd2roi-components", "crops"),
    ("structural_defect", "structural"),
    ("usd2roi-day1", "day1"),
    ("anomaly", "manual"),
)


@dataclass(frozen=True)
class Stage:
    """One stage directory under `runs/<name>/`, the OSMO task that writes it, and its output URL."""

    dir: str
    task: str
    url: str


@dataclass(frozen=True)
class RunLayout:
    """A compiled workflow's run outputs: its name, stages in task order, where they go."""

    title: str  # the workflow name, e.g. texture_defect_gen_day0
    stages: tuple[Stage, ...]
    root: str | None  # dig_url_root as compiled
    name: str | None  # the run name when compiled in, else None ({{ name }})

    @property
    def stage_dirs(self) -> tuple[str, ...]:
        return tuple(s.dir for s in self.stages)

    def stage(self, dir_name: str) -> Stage:
        for s in self.stages:
            if s.dir == dir_name:
                return s
        raise KeyError(dir_name)

    @property
    def layout(self) -> str:
        """Which preview row layout applies: `crops` (+`anomaly`), `structural`, `day1`, `manual`, or `none`."""
        for stage, layout in ANCHORS:
            if stage in self.stage_dirs:
                return layout
        return "none"


def run_layout(doc: Any, source: str = "workflow") -> RunLayout:
    """Stages from every task output URL `<root>/runs/<name>/<stage>` of the compiled document."""
    wf = doc.get("workflow") if isinstance(doc, dict) else None
    if not isinstance(wf, dict):
        raise OutputsError(f"{source}: no top-level 'workflow:' mapping (expected a compiled DIG workflow)")
    groups = wf.get("groups") or []
    tasks = [t for g in groups if isinstance(g, dict) for t in (g.get("tasks") or []) if isinstance(t, dict)]
    tasks += [t for t in wf.get("tasks") or [] if isinstance(t, dict)]
    stages: list[Stage] = []
    roots, names = set(), set()
    for task in tasks:
        for out in task.get("outputs") or []:
            m = _RUN_OUTPUT.match(str(out.get("url", ""))) if isinstance(out, dict) else None
            if not m:
                continue
            roots.add(m.group("root"))
            if not _NAME_TOKEN.match(m.group("name")):
                names.add(m.group("name"))
            if m.group("stage") not in (s.dir for s in stages):
                stages.append(Stage(m.group("stage"), str(task.get("name", "?")), m.group(0)))
    if not stages:
        raise OutputsError(
            f"{source}: the workflow writes no runs/<name>/<stage> output (setup flows write "
            "models/ and datasets/, not a run)"
        )
    return RunLayout(
        str(wf.get("name", "?")),
        tuple(stages),
        roots.pop() if len(roots) == 1 else None,
        names.pop() if len(names) == 1 else None,
    )


def read_workflow(path: str | Path) -> RunLayout:
    """`run_layout` of a compiled workflow file; a clean `OutputsError` for anything unreadable."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise OutputsError(f"--workflow {path}: not a regular file", hint="pass the compiled workflow YAML")
    try:
        text = p.read_bytes().decode("utf-8")
        doc = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except UnicodeDecodeError:
        raise OutputsError(f"--workflow {path}: not UTF-8 text") from None
    except (OSError, yaml.YAMLError) as exc:
        raise OutputsError(f"--workflow {path}: cannot read: {str(exc).splitlines()[0]}") from None
    return run_layout(doc, f"--workflow {path}")
