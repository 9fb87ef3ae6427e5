"""Where a compiled file may go: refuse anything but a missing path or a regular file (invariant 10)."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from compiler.errors import DigError, error

# Pseudo file systems: writing there is never a workflow file, whatever the permissions say.
PSEUDO_ROOTS = ("/proc", "/sys")


def _refuse(key: str, path: Path, why: str) -> DigError:
    return error(
        key,
        f"cannot be written: {why}",
        got=str(path),
        allowed="a new file or an existing regular file, in a writable directory",
    )


def refuse_directory(key: str, given: str) -> DigError:
    return _refuse(key, Path(given), "it names a directory; give a file name, e.g. DIR/workflow.yaml")


def _name_max(directory: Path) -> int:
    try:
        return os.pathconf(directory, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def check_destination(path: Path, key: str = "out") -> None:
    """Raise a DigError naming `key` unless `path` can take an atomic write of a regular file."""
    text = str(path)
    if text.endswith(os.sep) or path.name in ("", ".", ".."):
        raise _refuse(key, path, "it names a directory; give a file name, e.g. DIR/workflow.yaml")
    resolved = Path(os.path.realpath(path))
    for root in PSEUDO_ROOTS:
        if str(resolved) == root or str(resolved).startswith(root + "/"):
            raise _refuse(key, path, f"it is under {root} (a kernel pseudo file system)")
    try:
        st = os.stat(path)  # follows symlinks: a link to a device is refused like the device
    except FileNotFoundError:
        st = None
    except NotADirectoryError:
        raise _refuse(key, path, "a parent of it is a regular file, not a directory") from None
    except OSError as exc:
        raise _refuse(key, path, exc.strerror or str(exc)) from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file (device, pipe or socket)"
        raise _refuse(key, path, f"it is {kind}; only a regular file is ever replaced")
    _check_parent(path, key)


def _check_parent(path: Path, key: str) -> None:
    parent = path.parent
    for ancestor in [parent, *parent.parents]:
        if ancestor.exists() or ancestor.is_symlink():
            if not ancestor.is_dir():
                raise _refuse(key, path, f"{ancestor} is not a directory")
            if not os.access(ancestor, os.W_OK | os.X_OK):
                raise _refuse(key, path, f"directory {ancestor} is not writable")
            break
    if len(path.name.encode()) + 16 > _name_max(parent if parent.is_dir() else Path("/")):
        raise _refuse(
            key,
            path,
            f"the file name is {len(path.name.encode())} bytes long (the limit is "
            f"{_name_max(parent if parent.is_dir() else Path('/'))}, less room for the temp file)",
        )


def os_error(key: str, path: Path, exc: OSError) -> DigError:
    """An OSError met while writing, as a clean error naming the key."""
    why = {
        errno.ENOSPC: "no space left on the device",
        errno.EROFS: "the file system is read-only",
        errno.EACCES: "permission denied",
        errno.ENAMETOOLONG: "the file name is too long",
    }.get(exc.errno or 0, exc.strerror or str(exc))
    return _refuse(key, path, why)
