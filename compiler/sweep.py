"""Sweeps: expand Hydra sweep syntax in-process and compile every variant, composing each group combination once.

    python -m compiler -m flow=day0 usecase=pcb knobs.crop_max_emit=1,5,10 knobs.num_sdg=15,30
    python -m compiler -m flow=day0,good_image knobs.render_patches=range(1,4)

Writes build/sweeps/<sweep id>/<variant>.yaml and sweep.json (overrides -> file -> sha256); the
sweep id is a hash of the arguments, so the same sweep lands in the same directory.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compiler.compose import Composer, parse_overrides
from compiler.errors import DigError, error
from compiler.paths import BUILD_DIR

if TYPE_CHECKING:  # hydra is imported lazily: a plain compile never loads its override parser here
    from hydra.core.override_parser.types import RangeSweep

PROGRESS_THRESHOLD = 50


@dataclass
class Variant:
    overrides: list[str]
    file: str | None = None
    sha256: str | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)


def _parse(args: list[str]) -> list[Any]:
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        return OverridesParser.create().parse_overrides(args)
    except HydraException as exc:
        raise error(
            "sweep", "cannot be parsed", got=" ".join(args), allowed=str(exc).splitlines()[0]
        ) from None


def _range_length(value: RangeSweep) -> int:
    """len(range(...)) for an int range; the count of a float range's steps, without expanding it."""
    start, stop, step = value.start, value.stop, value.step
    if isinstance(start, int) and isinstance(stop, int) and isinstance(step, int):
        return len(range(start, stop, step))
    if not step or start is None or stop is None:
        return 0
    return max(0, math.ceil((stop - start) / step))


def count_variants(args: list[str]) -> int:
    """How many variants a sweep expands to, computed without expanding it (range(1,10**9) is cheap)."""
    from hydra.core.override_parser.types import ChoiceSweep, RangeSweep

    total = 1
    seen: set[str] = set()
    for ov in _parse(args):
        if ov.key_or_group in seen:  # the basic sweeper would keep only the last one
            raise error(
                ov.key_or_group,
                "is given twice in the sweep; give one list of values",
                got=ov.input_line,
                allowed=f"{ov.key_or_group}=a,b,c",
            )
        seen.add(ov.key_or_group)
        value = ov.value() if ov.is_sweep_override() else None
        if isinstance(value, RangeSweep):
            n = _range_length(value)
        elif isinstance(value, ChoiceSweep):
            n = len(value.list)
        elif ov.is_sweep_override():  # interval(): only a sampling sweeper plugin can expand it
            raise error(
                ov.key_or_group,
                "is an interval sweep, which Hydra's basic sweeper cannot expand",
                got=ov.input_line,
                allowed="a list (a,b), range(start,stop[,step]) or choice(a,b)",
            )
        else:
            n = 1
        total *= n
    return total


def expand(args: list[str]) -> list[list[str]]:
    """Every variant of a sweep, in Hydra's order (the basic sweeper's own cartesian expansion)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.errors import HydraException

    try:
        batches = BasicSweeper.split_arguments(_parse(args), None)
    except HydraException as exc:
        raise error(
            "sweep", "cannot be expanded", got=" ".join(args), allowed=str(exc).splitlines()[0]
        ) from None
    return [list(v) for batch in batches for v in batch]


def sweep_id(args: list[str]) -> str:
    return hashlib.sha256("\n".join(args).encode()).hexdigest()[:12]


def variant_file(key: str, overrides: list[str]) -> str:
    digest = hashlib.sha256("\n".join(overrides).encode()).hexdigest()[:10]
    return f"{key.replace('/', '__')}__{digest}.yaml"


def _compile_chunk(
    chunk: list[tuple[int, list[str]]],
    target: Path,
    prefs: dict[str, str] | None,
    composer: Composer | None = None,
) -> list[tuple[int, Variant]]:
    from compiler.pipeline import compile_request, default_composer, write_atomic

    composer = composer or _WORKER.get("composer") or default_composer()
    out = []
    for index, overrides in chunk:
        result = Variant(overrides)
        try:
            compiled = compile_request(parse_overrides(overrides), composer=composer, prefs=prefs)
        except DigError as exc:
            result.error = exc.format()
        else:
            result.file = variant_file(compiled.key, overrides)
            result.sha256 = hashlib.sha256(compiled.text.encode()).hexdigest()
            result.warnings = [d.format() for d in compiled.diagnostics if d.severity == "warning"]
            result.notices = [d.format() for d in compiled.diagnostics if d.severity == "notice"]
            write_atomic(target / result.file, compiled.text)
        out.append((index, result))
    return out


_WORKER: dict[str, Any] = {}
MAX_VARIANTS = 1000
MAX_BYTES = 1 << 30


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C so every `finally` and temp-file cleanup runs; exit 128 + signum."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated(signum)


def _die_with_parent() -> None:
    """Linux: the kernel sends SIGTERM to this worker when the parent dies, even by SIGKILL."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    if os.getppid() == 1:  # the parent is already gone
        os._exit(143)


def _init_worker() -> None:
    signal.signal(signal.SIGTERM, _raise_terminated)  # a write in progress removes its temp file
    _die_with_parent()
    _WORKER["composer"] = Composer()


def _run_chunk(
    payload: tuple[list[tuple[int, list[str]]], Path, dict[str, str] | None],
) -> list[tuple[int, Variant]]:
    return _compile_chunk(*payload)


def _remove_temps(target: Path) -> None:
    """Temp files of writes cut short (write_atomic names them .<file>.<random>.tmp)."""
    for tmp in target.glob(".*.tmp"):
        tmp.unlink(missing_ok=True)


def first_variant(args: list[str]) -> list[str]:
    """The sweep's first variant, without expanding the rest."""
    out = []
    for ov in _parse(args):
        value = (
            next(iter(ov.sweep_string_iterator()), None)
            if ov.is_sweep_override()
            else ov.get_value_element_as_str()
        )
        out.append(f"{ov.get_key_element()}={value}")
    return out


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def check_size(
    args: list[str], *, prefs: dict[str, str] | None, composer: Composer | None, confirmed: bool
) -> tuple[int, int]:
    """Count the variants and estimate their disk before anything is written; refuse a huge sweep unconfirmed."""
    from compiler.pipeline import compile_request, default_composer

    count = count_variants(args)
    try:
        sample = len(
            compile_request(
                parse_overrides(first_variant(args)), composer=composer or default_composer(), prefs=prefs
            ).text.encode()
        )
    except DigError:
        sample = 0  # the first variant fails: it writes nothing; the count still bounds the work
    estimate = count * sample
    if (count <= MAX_VARIANTS and estimate <= MAX_BYTES) or confirmed:
        return count, estimate
    what = f"{count} variants, about {_human(estimate)} on disk"
    if sys.stdin.isatty() and sys.stderr.isatty():
        print(f"This sweep writes {what}. Continue? [y/N] ", end="", file=sys.stderr, flush=True)
        if sys.stdin.readline().strip().lower() in ("y", "yes"):
            return count, estimate
    raise error(
        "sweep",
        f"would write {what} (limits: {MAX_VARIANTS} variants, {_human(MAX_BYTES)}); nothing was written",
        got=" ".join(args),
        allowed="narrow the sweep, or confirm with --yes",
    )


def default_jobs(n_variants: int) -> int:
    # Worth a process pool only for big sweeps; each worker composes its group combinations once.
    return 1 if n_variants < 200 else max(1, min(os.cpu_count() or 1, 8))


@dataclass(frozen=True)
class SweepRun:
    """How to run a sweep: where to write, the preferences, progress bar, composer, workers, size consent."""

    out_dir: Path | None = None
    prefs: dict[str, str] | None = None
    progress: bool | None = None  # None: a bar above PROGRESS_THRESHOLD variants
    composer: Composer | None = None
    jobs: int | None = None  # None: default_jobs()
    confirmed: bool = False  # --yes: past the size limits without asking


def run_sweep(args: list[str], run: SweepRun = SweepRun()) -> tuple[Path, list[Variant]]:
    from compiler.pipeline import write_atomic

    for bad in (a for a in args if a.split("=", 1)[0] == "out"):
        raise error("out", "cannot be used in a sweep: each variant gets its own file", got=bad)
    check_size(args, prefs=run.prefs, composer=run.composer, confirmed=run.confirmed)
    variants = expand(args)
    target = run.out_dir or BUILD_DIR / "sweeps" / sweep_id(args)
    target.mkdir(parents=True, exist_ok=True)
    show = len(variants) > PROGRESS_THRESHOLD if run.progress is None else run.progress
    bar: Any = None
    if show:
        from compiler.progress import SweepProgress

        bar = SweepProgress(len(variants), f"sweep {target.name}")
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if main_thread else None
    try:
        done = _compile_all(list(enumerate(variants)), target, run, bar)
    except BaseException:
        _remove_temps(target)
        raise
    finally:
        if bar:
            bar.close()
        if main_thread:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
    results = [done[i] for i in range(len(variants))]
    write_atomic(
        target / "sweep.json", json.dumps(_index(target, args, results), indent=2, allow_nan=False) + "\n"
    )
    return target, results


def _index(target: Path, args: list[str], results: list[Variant]) -> dict[str, Any]:
    """sweep.json: the arguments, and for each variant its overrides, file, sha256 and findings."""
    return {
        "sweep_id": target.name,
        "arguments": args,
        "variants": len(results),
        "failed": sum(r.error is not None for r in results),
        "results": [
            {
                "overrides": r.overrides,
                "file": r.file,
                "sha256": r.sha256,
                "error": r.error,
                "warnings": r.warnings,
                "notices": r.notices,
            }
            for r in results
        ],
    }


def _compile_all(
    indexed: list[tuple[int, list[str]]], target: Path, run: SweepRun, bar: Any
) -> dict[int, Variant]:
    done: dict[int, Variant] = {}
    jobs = default_jobs(len(indexed)) if run.jobs is None else run.jobs
    if jobs <= 1 or sys.platform == "win32":
        step = 1 if bar else 25  # with a bar, every variant moves it
        for start in range(0, len(indexed), step):
            for index, result in _compile_chunk(
                indexed[start : start + step], target, run.prefs, run.composer
            ):
                done[index] = result
            if bar:
                bar.update(min(step, len(indexed) - start))
        return done
    import multiprocessing

    size = max(10, len(indexed) // (jobs * 8))
    chunks = [(indexed[i : i + size], target, run.prefs) for i in range(0, len(indexed), size)]
    pool = multiprocessing.get_context("fork").Pool(jobs, initializer=_init_worker)
    try:
        for part in pool.imap_unordered(_run_chunk, chunks):
            done.update(part)
            if bar:
                bar.update(len(part))
        pool.close()
    except BaseException:
        pool.terminate()  # SIGTERM to every worker: each removes the temp file it was writing
        raise
    finally:
        pool.join()
    return done


def run_sweep_cli(args: list[str]) -> int:
    from compiler.pipeline import display
    from compiler.prefs import load_prefs

    confirmed = any(a in ("--yes", "-y") for a in args)
    args = [a for a in args if a not in ("--yes", "-y")]
    # Fail fast on a malformed sweep (grammar, out=, size) before compiling anything.
    target, results = run_sweep(args, SweepRun(prefs=load_prefs(), confirmed=confirmed))
    failed = [r for r in results if r.error]
    for r in failed:
        text = (r.error or "").replace("\n", "\n    ")
        print(f"FAILED [{' '.join(r.overrides)}]: {text}", file=sys.stderr)
    print(
        f"{len(results) - len(failed)} of {len(results)} variants compiled, {len(failed)} failed; files in "
        f"{display(target)}/ (index: sweep.json)",
        file=sys.stderr,
    )
    print(display(target / "sweep.json"))
    return 1 if failed else 0
