"""File helpers for steps: deterministic search (shallowest first, then sorted by name; symlinked dirs not
entered), listings for error messages, and scratch-tree operations."""

from __future__ import annotations

import os
import shutil
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

IMAGE_EXTS = (".png", ".jpg", ".jpeg")


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


def reset_dir(path: str | Path) -> Path:
    """Wipe and recreate a scratch directory (never an input mount)."""
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
