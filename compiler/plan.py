"""`python -m compiler.plan key=value ...`: compile one workflow and explain how to run it (Markdown or JSON).

    python -m compiler.plan flow=day0 usecase=pcb
    python -m compiler.plan flow=structural --images 100
    python -m compiler.plan flow=day1 usecase=glass --json
    python -m compiler.plan --write-examples          # regenerate docs/plans/<flow>.md

Same override grammar and errors as `python -m compiler`; writes the same file the compiler would.
Sections: Workflow, Preflights, Required URL Artifacts, Submit Command, Group Order, Output Location,
Notes. Exit 0 on success, 1 on a config error, 2 on a usage error.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from compiler.plan_build import SECTIONS, build_plan

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


from compiler.cli import UsageError  # noqa: E402  (one usage-error type for every verb)


def to_markdown(plan: dict[str, Any]) -> str:
    wf = plan["workflow"]
    out = [f"# Plan: {wf['title']} (`{plan['compile_key']}`)", ""]

    out += [
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
    out += [f"| `{cls}` | {size} |" for cls, size in wf["resources"].items()]

    out += [
        "",
        f"## {SECTIONS['preflights']}",
        "",
        "Run in this order; each exits non-zero when something needs fixing.",
        "",
        "```bash",
    ]
    for p in plan["preflights"]:
        out += [f"# {p['why']}", p["command"]]
    out += ["```"]

    out += ["", f"## {SECTIONS['required_url_artifacts']}", ""]
    arts = plan["required_url_artifacts"]
    if not arts:
        out.append("None: this flow downloads everything it needs (from Hugging Face / GitHub).")
    for a in arts:
        readers = f" — read by {', '.join(f'`{t}`' for t in a['read_by'])}" if a["read_by"] else ""
        out.append(f"- `{a['url']}/` ({a['role']}){readers}")
        out += [f"  - `{item}`" for item in a["contains"]]

    sub = plan["submit_command"]
    out += ["", f"## {SECTIONS['submit_command']}", "", "```bash", *sub["lines"], "```", "", sub["note"]]

    go = plan["group_order"]
    out += [
        "",
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

    loc = plan["output_location"]
    out += ["", f"## {SECTIONS['output_location']}", ""]
    if loc["run_root"]:
        out.append(f"Run root: `{loc['run_root']}`")
        out.append("")
    out += [f"- `{s['task']}` → `{s['url']}`: {s['holds']}" for s in loc["stages"]]
    out += [
        "",
        f"**Final result**: `{loc['final']}`" if loc.get("download") else f"**Final result**: {loc['final']}",
    ]
    if loc.get("download"):
        out += ["", f"Download: `{loc['download']}`"]
    if loc.get("reuse"):
        out += ["", f"**Reuse**: {loc['reuse']}"]

    out += ["", f"## {SECTIONS['notes']}", ""]
    out += [f"- {n}" for n in plan["notes"]] or ["- (none)"]
    return "\n".join(out) + "\n"


def to_json(plan: dict[str, Any]) -> str:
    doc = {
        "compile_key": plan["compile_key"],
        "headings": SECTIONS,
        "sections": {key: plan[key] for key in SECTIONS},
    }
    return json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False)


def make_plan(
    overrides: list[str],
    *,
    images: int | None = None,
    composer: Any = None,
    prefs: dict[str, str] | None = None,
    write: bool = True,
    file: str | None = None,
) -> dict[str, Any]:
    """Compile (and write, like `python -m compiler`) one request, then build its plan."""
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
    return build_plan(compiled, file or display(path), images)


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
        path.write_text(header + to_markdown(build_plan(compiled, rel)), encoding="utf-8", newline="\n")
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


def parse_args(args: list[str]) -> tuple[list[str], dict[str, Any]]:
    opts: dict[str, Any] = {"json": False, "images": None, "write_examples": False}
    rest: list[str] = []
    it = iter(args)
    for arg in it:
        if arg == "--json":
            opts["json"] = True
        elif arg == "--write-examples":
            opts["write_examples"] = True
        elif arg == "--images" or arg.startswith("--images="):
            value = arg.split("=", 1)[1] if "=" in arg else next(it, None)
            if value is None or not value.isdigit() or int(value) < 1:
                raise UsageError(f"--images needs a positive integer, got {value!r}")
            opts["images"] = int(value)
        elif arg.startswith("-"):
            raise UsageError(f"unknown option {arg!r} (options: --json, --images N, --write-examples)")
        else:
            rest.append(arg)
    return rest, opts


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    from compiler.errors import DigError, cli_error

    try:
        overrides, opts = parse_args(args)
        if opts["write_examples"]:
            for path in write_examples():
                print(path)
            print(refresh_readme())
            return 0
        plan = make_plan(overrides, images=opts["images"])
        print(to_json(plan) if opts["json"] else to_markdown(plan), end="" if not opts["json"] else "\n")
        return 0
    except UsageError as exc:
        print(f"usage error: {exc}", file=sys.stderr)
        return 2
    except DigError as exc:
        return cli_error(exc)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
