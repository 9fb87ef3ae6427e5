"""Download a run's stage trees and task logs into `<dest>/download/` and zip them to `<dest>/<name>.zip`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .source import Entry, OutputsError, RunSource
from .workflow import RunLayout

LOG_LINES = 5000  # endpoint_and_sizing.md §5: `osmo workflow logs <id> -t <task> -n 5000`
LARGE_RUN_BYTES = 2 << 30  # above ~2 GB the upstream offers `anomaly/` + logs only
# Already-compressed payloads gain nothing from deflate and cost CPU on multi-GB runs.
_STORED_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".pt", ".npy", ".zip", ".gz", ".safetensors"}


@dataclass
class DownloadResult:
    zip_path: Path
    download_dir: Path
    stages: list[str]
    files: int
    bytes: int
    logs: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _say(msg: str) -> None:
    print(msg, file=sys.stderr)


def fetch_logs(
    flow: RunLayout, stages: list[str], workflow_id: str, logs_dir: Path
) -> tuple[list[str], list[str]]:
    """Dump `osmo workflow logs <id> -t <task> -n 5000` per task whose stage exists; `(tasks, notes)`."""
    osmo = shutil.which("osmo")
    if osmo is None:
        return [], ["osmo CLI not found on PATH: task logs skipped (install/login osmo, then re-run)"]
    done: list[str] = []
    notes: list[str] = []
    tasks = list(dict.fromkeys(flow.stage(s).task for s in stages))
    logs_dir.mkdir(parents=True, exist_ok=True)
    for task in tasks:
        cmd = [osmo, "workflow", "logs", workflow_id, "-t", task, "-n", str(LOG_LINES)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
        except subprocess.TimeoutExpired:
            notes.append(f"log of task {task}: `osmo workflow logs` timed out after 300 s, skipped")
            continue
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            notes.append(f"log of task {task}: osmo exited {proc.returncode} ({tail[0]}), skipped")
            continue
        (logs_dir / f"{task}.log").write_text(proc.stdout, encoding="utf-8")
        done.append(task)
    return done, notes


def _fetch_all(source: RunSource, entries: list[Entry], runs_dir: Path, jobs: int) -> None:
    from tqdm import tqdm

    total = sum(e.size or 0 for e in entries)
    # disable=None: a bar on a terminal, silence in CI logs and pipes.
    with tqdm(
        total=total,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        file=sys.stderr,
        desc=f"download {source.name}",
        disable=None,
    ) as bar:

        def one(e: Entry) -> None:
            source.fetch(e.path, runs_dir / e.path)
            bar.update(e.size or 0)

        if jobs <= 1:
            for e in entries:
                one(e)
        else:
            with ThreadPoolExecutor(max_workers=jobs) as pool:
                # list() re-raises the first worker error here.
                list(pool.map(one, entries))


def write_zip(download_dir: Path, zip_path: Path, name: str) -> None:
    """Zip `download_dir` with entries `<name>/runs/…` and `<name>/logs/…` (atomic rename)."""
    tmp = zip_path.with_name(f".{zip_path.name}.part")
    with zipfile.ZipFile(tmp, "w") as zf:
        for path in sorted(p for p in download_dir.rglob("*") if p.is_file()):
            arc = f"{name}/{path.relative_to(download_dir).as_posix()}"
            method = zipfile.ZIP_STORED if path.suffix.lower() in _STORED_SUFFIXES else zipfile.ZIP_DEFLATED
            zf.write(path, arc, compress_type=method)
    os.replace(tmp, zip_path)


@dataclass(frozen=True)
class DownloadOptions:
    """What `download_run` fetches and how: `only` these stages, the task logs of `workflow_id`."""

    only: list[str] | None = None
    workflow_id: str | None = None
    force: bool = False  # replace an earlier download/zip at dest
    jobs: int = 8  # parallel object fetches
    allow_missing: bool = False  # a stage the run did not write is a note, not an error


def download_run(
    source: RunSource, flow: RunLayout, dest: Path, opts: DownloadOptions | None = None
) -> DownloadResult:
    """Fetch the workflow's stages (or `only` those) plus task logs, zip them; the zip path is in the result."""
    opts = opts or DownloadOptions()
    only = opts.only
    if only:
        unknown = [s for s in only if s not in flow.stage_dirs]
        if unknown:
            raise OutputsError(
                f"--only {', '.join(unknown)}: not a stage workflow {flow.title} writes",
                hint=f"stages of {flow.title}: {', '.join(flow.stage_dirs)}",
            )
    dest = dest.expanduser().resolve()
    download_dir = dest / "download"
    zip_path = dest / f"{source.name}.zip"
    existing = [p for p in (download_dir, zip_path) if p.exists()]
    if existing and not opts.force:
        raise OutputsError(
            f"refusing to overwrite {', '.join(str(p) for p in existing)}",
            hint="pass --force to replace them, or choose another --dest",
        )
    stages, entries, notes = _listing(source, flow, opts)
    total = sum(e.size or 0 for e in entries)
    if total > LARGE_RUN_BYTES and not only:
        notes.append(f"run is {total / 2**30:.1f} GiB; `--only anomaly` fetches the defects and logs only")
    for n in notes:
        _say(f"note: {n}")

    if opts.force:
        if download_dir.exists():
            shutil.rmtree(download_dir)
        zip_path.unlink(missing_ok=True)
    runs_dir = download_dir / "runs"
    runs_dir.mkdir(parents=True)
    _fetch_all(source, entries, runs_dir, opts.jobs)

    logs: list[str] = []
    if opts.workflow_id:
        # Every task the workflow schedules, even with --only or a missing stage (a failed task's
        # log is the one most wanted).
        logs, log_notes = fetch_logs(flow, list(flow.stage_dirs), opts.workflow_id, download_dir / "logs")
        for n in log_notes:
            _say(f"note: {n}")
        notes += log_notes
    write_zip(download_dir, zip_path, source.name)
    return DownloadResult(zip_path, download_dir, stages, len(entries), total, logs, notes)


def _listing(
    source: RunSource, flow: RunLayout, opts: DownloadOptions
) -> tuple[list[str], list[Entry], list[str]]:
    """(the stages to fetch, their files, notes); refuses a selection that holds no file."""
    stages, notes = source.check_stages(flow, opts.only, allow_missing=opts.allow_missing)
    entries = [e for s in stages for e in source.list_stage(s)]
    if not entries:
        raise OutputsError(
            f"nothing to download: {', '.join(d + '/' for d in (opts.only or flow.stage_dirs))} of run "
            f"{source.name!r} at {source.where} hold no files",
            hint="check --only / --workflow against the stages the run wrote",
        )
    if source.skipped_keys:
        notes.append(
            f"skipped {len(source.skipped_keys)} key(s) with unsafe paths, e.g. {source.skipped_keys[0]!r}"
        )
    return stages, entries, notes
