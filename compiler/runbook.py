"""The run-book as text: Markdown and JSON of the sections compiler.runbook_build builds, the
docs/plans examples and the README block made from them. `python -m compiler.plan` (compiler/plan.py)
is its command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from compiler.runbook_build import SECTIONS, build_runbook

DOCS_PLANS = Path(__file__).resolve().parent.parent / "docs" / "plans"
# One example per flow: (file stem, overrides); name unset and no preferences, so the text is stable.
EXAMPLES = {
    "day0": ["flow=day0", "usecase=pcb"],
    "good_image": ["flow=good_image", "usecase=pcb"],
    "structural": ["flow=structural", "usecase=pcb"],
    "day1": ["flow=day1", "usecase=pcb"],
    "day1_manual_roi": ["flow=day1_manual_roi", "usecase=pcb"],
    "finetune": ["flow=finetune", "usecase=pcb"],
    "setup": ["flow=setup", "usecase=pcb"],
    "setup_pretrained": ["flow=setup_pretrained"],
}


def to_markdown(plan: dict[str, Any]) -> str:
    wf = plan["workflow"]
    out = [f"# Plan: {wf['title']} (`{plan['compile_key']}`)"]
    for section in (_workflow, _preflights, _artifacts, _submit, _group_order, _outputs, _notes):
        out += ["", *section(plan)]
    return "\n".join(out) + "\n"


def _workflow(plan: dict[str, Any]) -> list[str]:
    wf = plan["workflow"]
    out = [
        f"## {SECTIONS['workflow']}",
        "",
        f"- **Flow**: `{wf['flow']}` — {wf['title']} (variant `{wf['variant']}`, "
        f"OSMO workflow name `{wf['workflow_name']}`)",
        f"- **Compiled file**: `{wf['file']}`",
        f"- **Composed from**: `{' '.join(f'{g}={o}' for g, o in wf['choices'].items())}`",
        f"- **Timeouts**: exec {wf['timeouts']['exec_timeout']}, queue {wf['timeouts']['queue_timeout']}",
    ]
    out += [f"- **{v['name']}**: `{v['value']}`" for v in wf["values"]]
    out += ["", "| resource class | size |", "|---|---|"]
    return out + [f"| `{cls}` | {size} |" for cls, size in wf["resources"].items()]


def _preflights(plan: dict[str, Any]) -> list[str]:
    out = [
        f"## {SECTIONS['preflights']}",
        "",
        "Run in this order; each exits non-zero when something needs fixing.",
        "",
        "```bash",
    ]
    for p in plan["preflights"]:
        out += [f"# {p['why']}", p["command"]]
    return out + ["```"]


def _artifacts(plan: dict[str, Any]) -> list[str]:
    out = [f"## {SECTIONS['required_url_artifacts']}", ""]
    arts = plan["required_url_artifacts"]
    if not arts:
        out.append("None: this flow downloads everything it needs (from Hugging Face / GitHub).")
    for a in arts:
        readers = f" — read by {', '.join(f'`{t}`' for t in a['read_by'])}" if a["read_by"] else ""
        out.append(f"- `{a['url']}/` ({a['role']}){readers}")
        out += [f"  - `{item}`" for item in a["contains"]]
    return out


def _submit(plan: dict[str, Any]) -> list[str]:
    sub = plan["submit_command"]
    return [f"## {SECTIONS['submit_command']}", "", "```bash", *sub["lines"], "```", "", sub["note"]]


def _group_order(plan: dict[str, Any]) -> list[str]:
    go = plan["group_order"]
    return [
        f"## {SECTIONS['group_order']}",
        "",
        "Edges come only from `- task:` inputs.",
        "",
        "```text",
        *go["lines"],
        "```",
        "",
        "```mermaid",
        go["mermaid"],
        "```",
    ]


def _outputs(plan: dict[str, Any]) -> list[str]:
    loc = plan["output_location"]
    out = [f"## {SECTIONS['output_location']}", ""]
    if loc["run_root"]:
        out += [f"Run root: `{loc['run_root']}`", ""]
    out += [f"- `{s['task']}` → `{s['url']}`: {s['holds']}" for s in loc["stages"]]
    final = f"`{loc['final']}`" if loc.get("download") else loc["final"]
    out += ["", f"**Final result**: {final}"]
    if loc.get("download"):
        out += ["", f"Download: `{loc['download']}`"]
    if loc.get("reuse"):
        out += ["", f"**Reuse**: {loc['reuse']}"]
    return out


def _notes(plan: dict[str, Any]) -> list[str]:
    return [f"## {SECTIONS['notes']}", "", *([f"- {n}" for n in plan["notes"]] or ["- (none)"])]


def to_json(plan: dict[str, Any]) -> str:
    doc = {
        "compile_key": plan["compile_key"],
        "headings": SECTIONS,
        "sections": {key: plan[key] for key in SECTIONS},
    }
    return json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False)


def make_runbook(
    overrides: list[str],
    *,
    images: int | None = None,
    composer: Any = None,
    prefs: dict[str, str] | None = None,
    write: bool = True,
    file: str | None = None,
) -> dict[str, Any]:
    """Compile (and write, like `python -m compiler`) one request, then build its run-book."""
    from compiler.compose import parse_overrides
    from compiler.pipeline import compile_request, display, output_path, write_atomic
    from compiler.prefs import load_prefs

    prefs = load_prefs() if prefs is None else prefs
    if images is not None:  # compile the sized workflow (compiler.sizing); the plan's notes say what was set
        from compiler.sizing import size_request

        overrides = size_request(overrides, images, composer=composer, prefs=prefs).overrides
    compiled = compile_request(parse_overrides(overrides), composer=composer, prefs=prefs)
    path = output_path(compiled)
    if write:
        write_atomic(path, compiled.text)
    return build_runbook(compiled, file or display(path), images)


def write_examples(target: Path = DOCS_PLANS) -> list[Path]:
    """docs/plans/<flow>.md, byte-stable: no preferences, name unset, repo-relative file paths."""
    from compiler.compose import Composer, parse_overrides
    from compiler.paths import REPO_ROOT
    from compiler.pipeline import compile_request, output_path

    composer, written = Composer(), []
    target.mkdir(parents=True, exist_ok=True)
    for stem, overrides in EXAMPLES.items():
        compiled = compile_request(parse_overrides(overrides), composer=composer, prefs={})
        rel = output_path(compiled).relative_to(REPO_ROOT).as_posix()
        header = (
            f"<!-- Generated by `python -m compiler.plan --write-examples` from `python -m compiler.plan "
            f"{' '.join(overrides)}`; do not edit. -->\n\n"
        )
        path = target / f"{stem}.md"
        path.write_text(header + to_markdown(build_runbook(compiled, rel)), encoding="utf-8", newline="\n")
        written.append(path)
    return written


README_BEGIN = "<!-- example plans: generated by `python -m compiler.plan --write-examples`; do not edit -->"
README_END = "<!-- end of example plans -->"


def readme_plans_block(plans_dir: Path = DOCS_PLANS) -> str:
    """The README's example-plan section: each flow's plan from docs/plans, collapsed."""
    parts = [README_BEGIN]
    for stem, overrides in EXAMPLES.items():
        body = (plans_dir / f"{stem}.md").read_text(encoding="utf-8").split("\n", 2)[2]
        body = body.replace("\n# Plan:", "\n#### Plan:", 1).replace("\n## ", "\n##### ")
        parts.append(
            f"<details><summary><code>python -m compiler.plan {' '.join(overrides)}</code></summary>\n\n"
            f"{body.strip()}\n\n</details>\n"
        )
    parts.append(README_END)
    return "\n".join(parts)


def refresh_readme(readme: Path | None = None) -> Path:
    from compiler.paths import REPO_ROOT

    readme = readme or REPO_ROOT / "README.md"
    text = readme.read_text(encoding="utf-8")
    start, end = text.index(README_BEGIN), text.index(README_END) + len(README_END)
    readme.write_text(text[:start] + readme_plans_block() + text[end:], encoding="utf-8", newline="\n")
    return readme
