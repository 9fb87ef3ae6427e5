"""Shared helpers for in-pod steps: errors, logging, spec/CLI options, file search, tool calls."""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

IMAGE_EXTS = (".png", ".jpg", ".jpeg")


class StageError(Exception):
    """A check failed; `code` is the exit status (1, or a container tool's own code passed through)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def info(msg: str) -> None:
    print(msg, flush=True)


def warn(msg: str) -> None:
    print("WARN: " + msg, file=sys.stderr, flush=True)


def fail(msg: str, code: int = 1) -> None:
    """Raise the error a step's `run_main` turns into `ERROR: <msg>` and exit `code`."""
    raise StageError(msg, code)


def run_main(body: Callable[[dict[str, Any]], int | None], opts_factory: Callable[[], dict[str, Any]]) -> int:
    """Run a step body with its options; StageError becomes `ERROR: ...` on stderr and its exit code."""
    try:
        return int(body(opts_factory()) or 0)
    except StageError as exc:
        for i, line in enumerate(str(exc).splitlines() or [""]):
            print(("ERROR: " if i == 0 else "  ") + line, file=sys.stderr, flush=True)
        return exc.code


# ---------------------------------------------------------------------------------------------
# options: one declaration per step (name, type, range or enum, required), enforced by the pod's
# loader here and checked by the compiler against every task's spec.json (compiler/contract.py).

_KINDS = ("str", "int", "float", "bool", "json", "path")
# spec.json key holding facts for the readers of the compiled workflow (dig-preflight, dig-outputs):
# not an option, never read by a step's loader.
CONTRACT_KEY = "contract"


@dataclass(frozen=True)
class Option:
    """One step option: its kind, default, whether it is required, and the values allowed.

    Integers are integers: an integral float such as 15.0 is refused, never truncated. Numbers must
    be finite. `length` is the exact item count of a list value (`item` the kind of each item).
    """

    kind: str
    default: Any = None
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[Any, ...] | None = None
    length: int | None = None
    item: str | None = None

    def allowed(self) -> str:
        """What the option accepts, in words (used in every error message)."""
        if self.choices is not None:
            text = " or ".join(str(c) for c in self.choices)
        elif self.length is not None:
            text = f"a list of {self.length} {self.item or 'value'}s"
        else:
            text = {
                "int": "an integer",
                "float": "a finite number",
                "bool": "true or false",
                "json": "a JSON value",
                "str": "a string",
                "path": "a path",
            }[self.kind]
        if self.minimum is not None and self.maximum is not None:
            text += f" in [{self.minimum}, {self.maximum}]"
        elif self.minimum is not None:
            text += f" >= {self.minimum}"
        elif self.maximum is not None:
            text += f" <= {self.maximum}"
        return text + ("" if self.required else " (or unset)")


def options(fields: dict[str, Any], required: Iterable[str] = ()) -> dict[str, Option]:
    """Normalise a declaration: `(kind, default)` pairs become Options; names in `required` are required."""
    req = set(required)
    out: dict[str, Option] = {}
    for key, spec in fields.items():
        opt = spec if isinstance(spec, Option) else Option(spec[0], spec[1])
        if opt.kind not in _KINDS:
            raise ValueError(f"unknown option kind {opt.kind!r} for {key}")
        if key in req and not opt.required:
            opt = Option(**{**opt.__dict__, "required": True})
        out[key] = opt
    return out


def _non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_non_finite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_non_finite(v) for v in value)
    return False


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not standard JSON")


def _coerce(kind: str, value: Any) -> tuple[Any, str | None]:
    """(value in the option's kind, None) or (value, what is wrong). Strings are read as the kind
    (CLI flags and hand-written specs); an integral float is not an integer; numbers are finite."""
    if kind in ("str", "path"):
        if isinstance(value, (dict, list, bool)):
            return value, "must be a string"
        if isinstance(value, float) and not math.isfinite(value):
            return value, "must be a string"
        return str(value), None
    if kind in ("int", "float"):
        what = "an integer" if kind == "int" else "a finite number"
        if isinstance(value, bool) or isinstance(value, (dict, list)):
            return value, f"must be {what}"
        if isinstance(value, str):
            try:
                value = int(value.strip()) if kind == "int" else float(value)
            except ValueError:
                return value, f"must be {what}"
        if isinstance(value, float) and not math.isfinite(value):
            return value, "must be a finite number (NaN and Infinity are refused)"
        if kind == "int" and not isinstance(value, int):
            return value, "must be an integer (an integral float such as 15.0 is refused, not truncated)"
        return value, None
    if kind == "bool":
        if isinstance(value, bool):
            return value, None
        text = str(value).strip().lower()
        if text in ("true", "1", "yes"):
            return True, None
        if text in ("false", "0", "no", ""):
            return False, None
        return value, "must be true or false"
    # json
    if isinstance(value, str):
        try:
            value = json.loads(value, parse_constant=_refuse_constant)
        except (json.JSONDecodeError, ValueError) as exc:
            return value, f"is not valid JSON ({getattr(exc, 'msg', exc)})"
    if _non_finite(value):
        return value, "holds a non-finite number (NaN and Infinity are refused)"
    return value, None


def parse_option(opt: Option, value: Any) -> tuple[Any, str | None]:
    """The pod's reading of one option value: (parsed value, None) or (value, the reason it is refused)."""
    if value is None or (
        value == "" and opt.kind in ("str", "path") and (opt.required or opt.choices is None)
    ):
        # blank is "not given" for a free string; for an enum it is a wrong value (checked below)
        return value, ("is required" if opt.required else None)
    value, problem = _coerce(opt.kind, value)
    if problem:
        return value, problem
    if opt.length is not None:
        if not isinstance(value, (list, tuple)) or len(value) != opt.length:
            return value, f"must be a list of {opt.length} items"
        for item in value:
            _v, bad = _coerce(opt.item or "json", item)
            if bad or (opt.item in ("int", "float") and isinstance(item, str)):
                return value, f"must hold {opt.item} items, got {item!r}"
        return value, None
    if opt.choices is not None and value not in opt.choices:
        return value, f"must be one of {', '.join(map(str, opt.choices))}"
    if opt.minimum is not None and value < opt.minimum:
        return value, f"must be >= {opt.minimum}"
    if opt.maximum is not None and value > opt.maximum:
        return value, f"must be <= {opt.maximum}"
    return value, None


def parse_options(
    decl: dict[str, Option],
    values: dict[str, Any],
    *,
    unknown: bool = False,
    flags: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], list[tuple[str, Any, str, str]]]:
    """The pod's reading of a spec: (options, problems) with problems as (name, given, reason, allowed).

    `unknown` also reports keys the declaration does not name (the compiler asks for it: it must not
    write a key that no pod reads)."""
    opts: dict[str, Any] = {}
    problems = []
    for key, opt in decl.items():
        given = flags[key] if flags and key in flags else values.get(key, opt.default)
        opts[key], problem = parse_option(opt, given)
        if problem:
            problems.append((key, given, problem, opt.allowed()))
    if unknown:
        problems.extend(
            (key, values[key], "is not an option of this step", ", ".join(decl))
            for key in values
            if key not in decl and key != CONTRACT_KEY
        )
    return opts, problems


def load_options(
    argv: Sequence[str],
    step: str,
    fields: dict[str, Any],
    required: Iterable[str] = (),
) -> dict[str, Any]:
    """Merge `--spec FILE.json` with `--<key>` flags (flags win) and enforce the step's declaration.

    `fields` maps key -> Option (or a `(kind, default)` pair); the declaration is the one the compiler
    checks every compiled spec.json against, so a compiled value is never refused here.
    """
    decl = options(fields, required)
    parser = argparse.ArgumentParser(prog=f"python -m dig_stages {step}")
    parser.add_argument("--spec", help="JSON task spec (keys = option names)")
    for key in decl:
        flags = ["--" + key] + (["--" + key.replace("_", "-")] if "_" in key else [])
        parser.add_argument(*flags, dest=key, default=None)
    ns = parser.parse_args(list(argv))
    spec: dict[str, Any] = {}
    if ns.spec:
        try:
            spec = json.loads(Path(ns.spec).read_text(encoding="utf-8"), parse_constant=_refuse_constant)
        except FileNotFoundError:
            fail(f"spec file {ns.spec} not found")
        except (json.JSONDecodeError, ValueError) as exc:
            fail(f"spec file {ns.spec} is not valid JSON: {exc}")
        if not isinstance(spec, dict):
            fail(f"spec file {ns.spec} must hold a JSON object, got {type(spec).__name__}")
    flags = {key: getattr(ns, key) for key in decl if getattr(ns, key) is not None}
    opts, problems = parse_options(decl, spec, flags=flags)
    bad = [p for p in problems if p[2] != "is required"]
    if bad:
        fail(
            "\n".join(
                f"option '{k}' {reason}, got {v!r} (allowed: {allowed})" for k, v, reason, allowed in bad
            )
        )
    missing = [p[0] for p in problems if p[2] == "is required"]
    if missing:
        fail(
            f"{step}: missing required option(s) {', '.join(missing)}\n"
            f"give them in the --spec JSON or as --{missing[0]} on the command line"
        )
    return opts


# ---------------------------------------------------------------------------------------------
# file search (deterministic: shallowest first, then sorted by name; symlinked dirs not entered)


def walk(root: str | Path, maxdepth: int, mindepth: int = 1) -> Iterable[tuple[Path, int, bool]]:
    """Yield (path, depth, is_dir) breadth-first, sorted per directory; root's children are depth 1."""
    queue: deque[tuple[Path, int]] = deque([(Path(root), 0)])
    while queue:
        base, depth = queue.popleft()
        if depth >= maxdepth:
            continue
        try:
            entries = sorted(os.scandir(base), key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        for entry in entries:
            is_dir = entry.is_dir(follow_symlinks=False)
            path = Path(entry.path)
            if depth + 1 >= mindepth:
                yield path, depth + 1, is_dir
            if is_dir:
                queue.append((path, depth + 1))


def find_first(
    root: str | Path,
    name: str,
    maxdepth: int,
    kind: str = "any",
    where: Callable[[Path], bool] | None = None,
) -> Path | None:
    """First entry called `name` within `maxdepth` of root (kind: file/dir/any), or None."""
    for path, _depth, is_dir in walk(root, maxdepth):
        if path.name != name:
            continue
        if kind == "dir" and not is_dir:
            continue
        if kind == "file" and (is_dir or not path.is_file()):
            continue
        if where is not None and not where(path):
            continue
        return path
    return None


def list_images(folder: str | Path, exts: Sequence[str] = IMAGE_EXTS) -> list[Path]:
    """Image files directly in `folder` (sorted); [] when it does not exist."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [Path(e.path) for e in entries if e.is_file() and Path(e.name).suffix.lower() in exts]


def subdirs(folder: str | Path) -> list[Path]:
    """Immediate subdirectories (sorted by name); [] when `folder` does not exist."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [Path(e.path) for e in entries if e.is_dir()]


def count_files(root: str | Path, pattern: str, exts: Sequence[str] = IMAGE_EXTS) -> int:
    """Number of files under root matching glob `pattern` whose suffix is in exts."""
    root = Path(root)
    if not root.is_dir():
        return 0
    return sum(1 for p in root.glob(pattern) if p.is_file() and p.suffix.lower() in exts)


def tree_stats(root: str | Path) -> tuple[int, int]:
    """(file count, total bytes) of every regular file under root."""
    files = 0
    size = 0
    for dirpath, _dirs, names in os.walk(root):
        for n in names:
            p = os.path.join(dirpath, n)
            if os.path.isfile(p):
                files += 1
                size += os.path.getsize(p)
    return files, size


def listing(root: str | Path, limit: int = 40) -> str:
    """A short recursive listing for error messages (first `limit` paths)."""
    paths = [str(p) for p, _d, _ in walk(root, 8)]
    more = f"\n  ... ({len(paths) - limit} more)" if len(paths) > limit else ""
    return "\n".join("  " + p for p in paths[:limit]) + more if paths else f"  ({root} is empty or missing)"


# ---------------------------------------------------------------------------------------------
# config sentinels and tool calls

SENTINELS = ("__SCENE__", "__REAL_IMAGE__", "__OUTPUT__")


def fill_sentinels(text: str, values: dict[str, str], required: Iterable[str] = ()) -> str:
    """Replace each sentinel (optionally quoted) by its JSON-quoted value, a valid YAML scalar."""
    for sentinel in required:
        if sentinel not in text:
            fail(
                f"config has no {sentinel} placeholder; it must be rendered by the dig compiler "
                "(re-run `dig compile` instead of editing the task file)"
            )
    for sentinel, value in values.items():
        pattern = re.compile(r"""(["']?)""" + re.escape(sentinel) + r"\1")
        quoted = json.dumps(str(value))
        text = pattern.sub(lambda _m, q=quoted: q, text)
    left = sorted(set(re.findall(r"__(?:SCENE|REAL_IMAGE|OUTPUT)__", text)))
    if left:
        fail(f"config still holds placeholder(s) {', '.join(left)} that this step cannot fill")
    return text


def run_tool(
    cmd: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
    log_file: str | Path | None = None,
) -> int:
    """Run a container tool, streaming its output (and teeing it to log_file); return its exit code."""
    full_env = None
    if env:
        full_env = dict(os.environ)
        full_env.update(env)
    info("+ " + " ".join(_shell_quote(c) for c in cmd))
    try:
        if log_file is None:
            return subprocess.run(list(cmd), env=full_env, cwd=cwd, check=False).returncode
        with (
            open(log_file, "w", encoding="utf-8") as log,
            subprocess.Popen(
                list(cmd), env=full_env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            ) as proc,
        ):
            assert proc.stdout is not None
            for line in proc.stdout:
                sys.stdout.write(line)
                log.write(line)
            return proc.wait()
    except FileNotFoundError:
        fail(f"tool not found: {cmd[0]} (is this the right container image?)")
    except PermissionError:
        fail(f"tool not executable: {cmd[0]}")
    return 1  # unreachable; fail() raises


def require_tool(cmd: Sequence[str], *, what: str, **kwargs: Any) -> None:
    """run_tool, failing with `<what> failed (exit N)` and that code when the tool fails."""
    code = run_tool(cmd, **kwargs)
    if code != 0:
        fail(f"{what} failed (exit {code})", code)


def _shell_quote(text: str) -> str:
    return text if re.fullmatch(r"[\w@%+=:,./-]+", text) else "'" + text.replace("'", "'\"'\"'") + "'"


def split_cmd(value: str | Sequence[str]) -> list[str]:
    """A command prefix from a spec value: a JSON list or a whitespace-separated string."""
    if isinstance(value, str):
        return value.split()
    return [str(v) for v in value]


def reset_dir(path: str | Path) -> Path:
    """Wipe and recreate a scratch directory (never an input mount)."""
    import shutil

    path = Path(path)
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def symlink(src: str | Path, dst: str | Path) -> None:
    """Create (or replace) a symlink dst -> src."""
    dst = Path(dst)
    if dst.is_symlink() or dst.exists():
        dst.unlink()
    dst.symlink_to(Path(src).resolve() if not Path(src).is_absolute() else src)


def copy_tree(src: str | Path, dst: str | Path) -> int:
    """Copy src's contents into dst, following links, without timestamps/modes (`cp -r`, not `cp -a`)."""
    import shutil

    src, dst = Path(src), Path(dst)
    n = 0
    for dirpath, _dirs, names in os.walk(src, followlinks=True):
        rel = Path(dirpath).relative_to(src)
        (dst / rel).mkdir(parents=True, exist_ok=True)
        for name in names:
            # copyfile, not copy2: preserving times fails for the non-root user on a root-owned mount
            shutil.copyfile(Path(dirpath) / name, dst / rel / name)
            n += 1
    return n
