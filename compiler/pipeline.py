"""One compile, end to end: compose -> validate config -> plan -> render/emit -> validate output -> write."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from compiler.compose import Composer, Request
from compiler.contract import check_cookbook_overrides, check_tasks
from compiler.emit import dump_yaml, manifest_modules, splice_modules
from compiler.errors import Diagnostic, DigError
from compiler.flows import compile_key, submit_command, takes_run_name
from compiler.inject import POD_DIR, module_source
from compiler.paths import BUILD_DIR, REPO_ROOT
from compiler.render import build_workflow
from compiler.task import Task
from compiler.tasks import plan_tasks
from compiler.validate_config import refusals, validate_config


def header(
    config: dict[str, Any],
    choices: dict[str, str],
    req: Request | None = None,
    prefs: dict[str, str] | None = None,
) -> str:
    """What the file was composed from (groups, overrides, preferences) and how to submit it."""
    picked = " ".join(f"{g}={o}" for g, o in choices.items())
    submit = submit_command(config, "<this file>")
    if not takes_run_name(config):
        submit += "  # setup flows take no run name"
    elif config["name"]:
        submit += "  # the run name is compiled in"
    lines = [f"# Compiled by dig from conf/ ({picked})."]
    values = [
        _header_safe(r)
        for r in (req.value_overrides() if req else [])
        if r.split("=", 1)[0] not in ("out", "strict")
    ]  # where it goes is not what it is
    if values:
        lines.append(f"# Overrides: {' '.join(values)}")
    used = prefs_used(config, req, prefs or {})
    if used:
        lines.append(f"# Preferences: {' '.join(_header_safe(f'{k}={v}') for k, v in used.items())}")
    lines.append(f"# Submit: {submit}")
    return "\n".join(lines) + "\n"


_HEADER_VALUE = re.compile(r"^[A-Za-z0-9._,=:/@+\-\[\]' \"]{0,120}$")


def _header_safe(raw: str) -> str:
    """An override as the header shows it: verbatim when plain, else its key and a digest (a comment line
    must stay one line and carry no template syntax OSMO would render)."""
    key, _, value = raw.partition("=")
    if _HEADER_VALUE.match(value) and _HEADER_VALUE.match(key):
        return raw
    return (
        f"{key if _HEADER_VALUE.match(key) else '<key>'}=<{len(value)} chars, sha256 "
        f"{hashlib.sha256(value.encode()).hexdigest()[:8]}>"
    )


def prefs_used(config: dict[str, Any], req: Request | None, prefs: dict[str, str]) -> dict[str, str]:
    """The saved preferences that shaped this compile (the command line wins over each)."""
    given = {k for k, _ in req.values} if req else set()
    given |= set(req.choices) if req else set()
    used = {}
    if prefs.get("dig_url_root") and "dig_url_root" not in given:
        used["dig_url_root"] = prefs["dig_url_root"]
    if prefs.get("pool") and "pool" not in given:
        used["pool"] = prefs["pool"]
    if (
        prefs.get("external_endpoint_url")
        and config["endpoint"]["key"] == "external"
        and "endpoint.url" not in given
    ):
        used["external_endpoint_url"] = prefs["external_endpoint_url"]
    if prefs.get("default_board") == config["board"]["key"] and "board" not in given:
        used["default_board"] = prefs["default_board"]
    return used


@dataclass
class Compiled:
    text: str
    key: str  # compile key, e.g. day0/pcb__0603_H100__pretrained
    config: dict[str, Any]
    choices: dict[str, str]
    diagnostics: list[Diagnostic]
    default_path: Path
    # The text before the dig_stages modules were spliced in, and those modules' sources.
    unspliced: str = ""
    modules: dict[str, str] = field(default_factory=dict)
    # The planned tasks the text was rendered from (the run-book reads them; it does not plan again).
    tasks: list[Task] = field(default_factory=list)

    @property
    def review_text(self) -> str:
        """What golden/ holds: the compiled text with one manifest line (path, sha256, size) per module."""
        return manifest_modules(self.unspliced, self.modules)


_SAFE_PART = re.compile(r"^[A-Za-z0-9._,=+-]{1,48}$")
MAX_SUFFIX = 64


def name_suffix(
    req: Request,
    choices: dict[str, str],
    config: dict[str, Any] | None = None,
    prefs: dict[str, str] | None = None,
) -> str | None:
    """What the compile key does not show, for the file name: the overrides themselves when short and
    filesystem-safe (`num_sdg=15`), else a short hash of them. Overrides the key already shows
    (use_pretrained_checkpoint) and out=/strict= add nothing; a storage root or endpoint URL (from the
    command line or preferences) adds `root-<hash>` / `url-<hash>`, since it changes the content."""

    def digest(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()[:8]

    parts = [
        choices[g] if g == "knobs" else f"endpoint={choices[g]}"
        for g, default in (("knobs", "default"), ("endpoint", "cluster"))
        if choices.get(g) != default
    ]
    for raw in req.value_overrides():
        key, _, value = raw.partition("=")
        if key in ("out", "strict") or key == "knobs.use_pretrained_checkpoint" and config is not None:
            continue
        if key in ("dig_url_root", "endpoint.url"):
            parts.append(
                f"{'root' if key == 'dig_url_root' else 'url'}-{digest(value.strip(chr(39) + chr(34)))}"
            )
            continue
        value = value.strip("'\"").replace("[", "").replace("]", "").replace(" ", "")
        parts.append(f"{key.removeprefix('knobs.')}={value}")
    used = prefs_used(config, req, prefs or {}) if config is not None else {}
    if "dig_url_root" in used:
        parts.append(f"root-{digest(used['dig_url_root'])}")
    if "external_endpoint_url" in used:
        parts.append(f"url-{digest(used['external_endpoint_url'])}")
    if not parts:
        return None
    joined = "__".join(parts)
    if len(joined) <= MAX_SUFFIX and all(_SAFE_PART.match(p) for p in parts):
        return joined
    return digest("\n".join(parts))


def override_hash(req: Request, choices: dict[str, str]) -> str | None:
    """Kept for callers that name by hash only (a short hash of what the compile key does not show)."""
    extra = [
        f"{g}={choices[g]}"
        for g, default in (("knobs", "default"), ("endpoint", "cluster"))
        if choices.get(g) != default
    ]
    extra += [r for r in req.value_overrides() if r.split("=", 1)[0] not in ("out", "strict")]
    if not extra:
        return None
    return hashlib.sha256("\n".join(extra).encode()).hexdigest()[:8]


def check_output(text: str, source: str) -> None:
    """Raise if the offline OSMO validator finds an error in `text` (invariant 5).

    The compile path calls this on the text with module placeholders and on each module once
    (check_module), not on the spliced bytes it writes; tests/test_generated_files.py validates
    those, every file of workflows_generated/.
    """
    from compiler.osmo import validate_text

    findings = [f for f in validate_text(text, source=source) if f.severity == "error"]
    if findings:
        raise DigError(
            [
                Diagnostic("error", f"output:{f.path}", f"{f.message} (compiler bug: please report)")
                for f in findings
            ]
        )


@cache
def check_module(module: str, source: str) -> None:
    """An injected module passes the validator's second-render scan (checked once per source text)."""
    doc = {
        "version": 2,
        "workflow": {
            "name": "module-check",
            "groups": [
                {
                    "name": "g",
                    "tasks": [
                        {
                            "name": "t",
                            "image": "busybox",
                            "command": ["true"],
                            "files": [{"path": f"/tmp/dig/dig_stages/{module}.py", "contents": source}],
                        }
                    ],
                }
            ],
        },
    }
    check_output(dump_yaml(doc), f"dig_stages/{module}.py")


def emit_checked(workflow: dict[str, Any], header: str, key: str) -> tuple[str, str, dict[str, str]]:
    """Dump with module placeholders, validate that text and each module, then splice the modules in.

    Returns (submit-ready text, text with placeholders, {module: source}).
    """
    text = header + dump_yaml(workflow)
    check_output(text, key)
    sources = {}
    for group in workflow["workflow"]["groups"]:
        for task in group["tasks"]:
            for f in task["files"]:
                if f["path"].startswith(POD_DIR + "/"):
                    module = f["path"].rsplit("/", 1)[1][:-3]
                    sources[module] = module_source(module)
                    check_module(module, sources[module])
    return splice_modules(text, sources), text, sources


@lru_cache(maxsize=1)
def default_composer() -> Composer:
    """One Composer per process: each group combination is composed once, whatever calls compile."""
    return Composer()


def compile_request(
    req: Request, *, composer: Composer | None = None, prefs: dict[str, str] | None = None
) -> Compiled:
    composer = composer or default_composer()
    composed = composer.compose(req, prefs)
    explicit = {k.split(".", 1)[1] for k, _ in req.values if k.startswith("knobs.")}
    config, diagnostics = validate_config(
        composed.config, explicit=explicit, choices=composed.choices, early=composed.notices
    )
    tasks = plan_tasks(config)
    refused = check_tasks(tasks) + check_cookbook_overrides(
        config, [(k, v) for k, v in req.values if k.startswith("cookbooks.")], tasks
    )
    errors = refusals(refused, strict=bool(config.get("strict")))
    if errors:
        raise DigError(errors, choices=composed.choices)
    diagnostics = diagnostics + [d for d in refused if d.severity != "error"]
    workflow = build_workflow(config, tasks, placeholders=True)
    key = compile_key(config)
    text, unspliced, modules = emit_checked(workflow, header(config, composed.choices, req, prefs), key)
    suffix = name_suffix(req, composed.choices, config, prefs)
    default = BUILD_DIR / f"{key}{'__' + suffix if suffix else ''}.yaml"
    return Compiled(text, key, config, composed.choices, diagnostics, default, unspliced, modules, tasks)


def output_path(compiled: Compiled) -> Path:
    out = compiled.config.get("out")
    if out:
        if out.endswith(("/", "/.", "/..")) or out in (".", "..", "~"):  # Path() would drop the slash
            from compiler.output import refuse_directory

            raise refuse_directory("out", out)
        path = Path(out).expanduser()
        return path if path.is_absolute() else Path.cwd() / path
    return compiled.default_path


def write_atomic(path: Path, text: str, key: str = "out") -> Path:
    """Write via a temp file in the same directory and os.replace: never a half-written file.

    The destination is checked first (compiler.output): only a missing path or a regular file is
    replaced; any OSError becomes a clean error naming `key`.
    """
    from compiler.output import check_destination, os_error

    check_destination(path, key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:64]}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise os_error(key, path, exc) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise os_error(key, path, exc) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO_ROOT)) if Path.cwd() == REPO_ROOT else str(path.resolve())
    except ValueError:
        return str(path.resolve())
