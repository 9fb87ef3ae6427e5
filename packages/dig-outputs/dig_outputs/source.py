"""Where a run's files come from: `runs/<name>/` on S3 (via dig_preflight.s3) or a local directory."""

from __future__ import annotations

import os
import shutil
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .workflow import RunLayout


class OutputsError(Exception):
    """A user-facing failure: first line says what is wrong, `hint` says what to do."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


@dataclass(frozen=True)
class Entry:
    """One file of the run: `path` is relative to `runs/<name>/`, `/`-separated."""

    path: str
    size: int | None = None

    @property
    def stage(self) -> str:
        return self.path.split("/", 1)[0]


def is_safe_relpath(rel: str) -> bool:
    """Keys come from storage: refuse anything that would escape the destination when joined."""
    if not rel or rel.startswith("/") or "\\" in rel or "\x00" in rel:
        return False
    return all(part not in ("", ".", "..") for part in rel.split("/"))


class RunSource(ABC):
    """Read access to one run's stage trees, cached per stage."""

    def __init__(self, name: str, where: str):
        self.name = name
        self.where = where
        self.skipped_keys: list[str] = []
        self._cache: dict[str, list[Entry]] = {}

    @abstractmethod
    def present_stages(self) -> list[str]:
        """Names of the stage directories that hold at least one file."""

    @abstractmethod
    def _list(self, stage: str) -> list[Entry]: ...

    @abstractmethod
    def fetch(self, path: str, dest: Path) -> None:
        """Copy the run file `path` to `dest` (parents created)."""

    def list_stage(self, stage: str) -> list[Entry]:
        """Every file under `<stage>/`, sorted by path."""
        if stage not in self._cache:
            self._cache[stage] = sorted(self._list(stage), key=lambda e: e.path)
        return self._cache[stage]

    def materialize(self, path: str, scratch: Path) -> Path:
        """A local file holding `path`: the file itself for local runs, a fetched copy otherwise."""
        dest = scratch / path
        if not dest.exists():
            self.fetch(path, dest)
        return dest

    def check_stages(
        self, run: RunLayout, wanted: list[str] | None = None, *, allow_missing: bool = False
    ) -> tuple[list[str], list[str]]:
        """`(stages to use, notes)`; a stage the workflow writes but the run lacks raises `OutputsError`."""
        present = set(self.present_stages())
        wanted = list(wanted) if wanted else list(run.stage_dirs)
        missing = [s for s in wanted if s not in present]
        notes: list[str] = []
        if missing and allow_missing:
            notes += [
                f"{s}/ missing (written by task {run.stage(s).task}); fetching the rest" for s in missing
            ]
        elif missing:
            have = ", ".join(sorted(present)) or "nothing"
            raise OutputsError(
                f"run {self.name!r} at {self.where} is missing stage(s) "
                f"{', '.join(d + '/' for d in missing)} that workflow {run.title} writes "
                f"({', '.join(f'{s.dir}/ by {s.task}' for s in run.stages)}); present: {have}",
                hint="the run may have failed or still be running (check `osmo workflow query <id>`), "
                "or --workflow / --name does not match the run; `download --allow-missing` fetches what exists",
            )
        return [s for s in wanted if s in present], notes


class LocalRun(RunSource):
    """A run directory on disk: its children are the stage directories."""

    def __init__(self, run_dir: Path, name: str):
        super().__init__(name, str(run_dir))
        self.run_dir = run_dir

    def present_stages(self) -> list[str]:
        return sorted(
            p.name for p in self.run_dir.iterdir() if p.is_dir() and any(f.is_file() for f in p.rglob("*"))
        )

    def _list(self, stage: str) -> list[Entry]:
        base = self.run_dir / stage
        out: list[Entry] = []
        if not base.is_dir():
            return out
        for dirpath, _dirs, files in os.walk(base):
            for f in files:
                full = Path(dirpath) / f
                rel = full.relative_to(self.run_dir).as_posix()
                out.append(Entry(rel, full.stat().st_size))
        return out

    def fetch(self, path: str, dest: Path) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.run_dir / path, dest)

    def materialize(self, path: str, scratch: Path) -> Path:
        return self.run_dir / path


class S3Run(RunSource):
    """`<root>/runs/<name>/` in an S3 bucket, read through `dig_preflight.s3.S3Store`."""

    def __init__(self, store, bucket: str, root_prefix: str, name: str):
        from dig_preflight.s3 import dir_prefix

        self.store = store
        self.bucket = bucket
        self.runs_prefix = dir_prefix(root_prefix) + "runs/"
        self.run_prefix = self.runs_prefix + name + "/"
        super().__init__(name, f"s3://{bucket}/{self.run_prefix}")

    def present_stages(self) -> list[str]:
        dirs, _files = self.store.list_children(self.bucket, self.run_prefix)
        if not dirs:
            others, _ = self.store.list_children(self.bucket, self.runs_prefix)
            shown = ", ".join(sorted(others)[:20]) or "none"
            raise OutputsError(
                f"no run named {self.name!r} at {self.where}",
                hint=f"runs under s3://{self.bucket}/{self.runs_prefix}: {shown}"
                + (" …" if len(others) > 20 else ""),
            )
        return sorted(dirs)

    def _list(self, stage: str) -> list[Entry]:
        out: list[Entry] = []
        for obj in self.store.iter_objects(self.bucket, self.run_prefix + stage + "/"):
            key = obj["Key"]
            if key.endswith("/"):  # directory markers written by some S3 tools
                continue
            rel = key[len(self.run_prefix) :]
            if not is_safe_relpath(rel):
                self.skipped_keys.append(key)
                continue
            out.append(Entry(rel, obj.get("Size")))
        return out

    def fetch(self, path: str, dest: Path) -> None:
        self.store.download(self.bucket, self.run_prefix + path, dest)


def resolve_local(local: Path, name: str | None) -> tuple[Path, str]:
    """Find the run directory inside `local`; `(run_dir, run name)`.

    Accepted, in this order: a `download` destination of this tool (`<dir>/download/runs/`),
    a storage-root mirror (`<dir>/runs/<name>/`, needs --name), a `runs/` dir holding the
    stages, or the run directory itself.
    """
    local = local.expanduser().resolve()
    if not local.is_dir():
        raise OutputsError(f"--local {local} is not a directory")
    if (local / "download" / "runs").is_dir():
        return local / "download" / "runs", name or local.name
    if name and (local / "runs" / name).is_dir():
        return local / "runs" / name, name
    if local.name == "runs" and local.parent.name == "download":
        return local, name or local.parent.parent.name
    if (local / "runs").is_dir():
        runs = sorted(p.name for p in (local / "runs").iterdir() if p.is_dir())
        raise OutputsError(
            f"--local {local} looks like a storage root (it has runs/) but "
            + (f"runs/{name}/ is not there" if name else "no --name was given"),
            hint=f"pass --name with one of: {', '.join(runs[:20]) or 'none'}",
        )
    return local, name or local.name


def open_source(
    *,
    root: str | None,
    local: str | None,
    name: str | None,
    endpoint_url: str | None = None,
    profile: str | None = None,
    region: str | None = None,
) -> RunSource:
    """The run to read: `--root s3://…` with `--name`, or `--local DIR`."""
    if bool(root) == bool(local):
        raise OutputsError("give exactly one of --root s3://BUCKET/PREFIX or --local DIR")
    if local:
        run_dir, run_name = resolve_local(Path(local), name)
        return LocalRun(run_dir, run_name)
    assert root is not None
    if not root.startswith("s3://"):
        raise OutputsError(
            f"--root {root!r} is not an s3:// URL",
            hint="--root takes the storage root (dig_url_root, e.g. s3://osmo-workflows/dig); "
            "for a run already on disk use --local DIR",
        )
    if not name:
        raise OutputsError("--name RUN is required with --root", hint="the run name, e.g. day0-1a2b3c4d")
    if not is_safe_relpath(name) or "/" in name:
        raise OutputsError(f"--name {name!r} is not a run name (one path segment, no '/')")
    from dig_preflight.s3 import S3Store, parse_url

    bucket, prefix = parse_url(root)
    store = S3Store(endpoint_url=endpoint_url, profile=profile, region=region)
    return S3Run(store, bucket, prefix, name)
