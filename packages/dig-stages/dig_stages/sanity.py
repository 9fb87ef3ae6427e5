"""Output sanity counts: the `[OK] <artifact>: <n> files, <bytes> bytes` line or an actionable error."""

from __future__ import annotations

from pathlib import Path

from dig_stages import _common


def count_check(root: str | Path, artifact: str) -> tuple[int, int]:
    """Fail with `0 files in <root>` when the artifact is empty; else log files and bytes."""
    files, size = _common.tree_stats(root)
    if files == 0:
        _common.fail(f"0 files in {root}")
    _common.info(f"[OK] {artifact}: {files} files, {size} bytes")
    return files, size


def remove_root_entries(root: str | Path, names: tuple[str, ...] = (".cache", ".gitattributes")) -> list[str]:
    """Delete HF download leftovers (cache dir, .gitattributes) at the artifact root."""
    import shutil

    removed = []
    for name in names:
        p = Path(root) / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()
        else:
            continue
        removed.append(name)
    return removed
