"""Shared helpers for in-pod steps: errors, logging, spec/CLI options, file search, tool calls."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from collections import deque
from collections.abc import Callable, Iterable, Sequence
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
# options: JSON spec merged with --flags (flags win)

_KINDS = ("str", "int", "bool", "json", "path")


def _coerce(name: str, kind: str, value: Any) -> Any:
    if value is None:
        return None
    if kind in ("str", "path"):
        if isinstance(value, (dict, list, bool)):
            fail(f"option '{name}' must be a string, got {value!r}")
        return str(value)
    if kind == "int":
        if isinstance(value, bool):
            fail(f"option '{name}' must be an integer, got {value!r}")
        if isinstance(value, int):
            return value
        try:
            return int(str(value).strip())
        except ValueError:
            fail(f"option '{name}' must be an integer, got {value!r}")
    if kind == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "1", "yes"):
            return True
        if text in ("false", "0", "no", ""):
            return False
        fail(f"option '{name}' must be true or false, got {value!r}")
    if kind == "json":
        if isinstance(value, str):
            try:
                return json.loads(value)
            except json.JSONDecodeError as exc:
                fail(f"option '{name}' is not valid JSON ({exc.msg}): {value!r}")
        return value
    raise ValueError(f"unknown option kind {kind!r}")


def load_options(
    argv: Sequence[str],
    step: str,
    fields: dict[str, tuple[str, Any]],
    required: Iterable[str] = (),
) -> dict[str, Any]:
    """Merge `--spec FILE.json` with `--<key>` flags (flags win); fields maps key -> (kind, default)."""
    parser = argparse.ArgumentParser(prog=f"python -m dig_stages {step}")
    parser.add_argument("--spec", help="JSON task spec (keys = option names)")
    for key in fields:
        flags = ["--" + key] + (["--" + key.replace("_", "-")] if "_" in key else [])
        parser.add_argument(*flags, dest=key, default=None)
    ns = parser.parse_args(list(argv))
    spec: dict[str, Any] = {}
    if ns.spec:
        try:
            spec = json.loads(Path(ns.spec).read_text(encoding="utf-8"))
        except FileNotFoundError:
            fail(f"spec file {ns.spec} not found")
        except json.JSONDecodeError as exc:
            fail(f"spec file {ns.spec} is not valid JSON: {exc}")
        if not isinstance(spec, dict):
            fail(f"spec file {ns.spec} must hold a JSON object, got {type(spec).__name__}")
    opts: dict[str, Any] = {}
    for key, (kind, default) in fields.items():
        if kind not in _KINDS:
            raise ValueError(f"unknown option kind {kind!r} for {key}")
        flag = getattr(ns, key)
        value = flag if flag is not None else spec.get(key, default)
        opts[key] = _coerce(key, kind, value)
    missing = [k for k in required if opts.get(k) in (None, "")]
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
