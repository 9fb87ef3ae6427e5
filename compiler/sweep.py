"""Sweeps: expand Hydra sweep syntax in-process and compile every variant, composing each group combination once.

    python -m compiler -m flow=day0 usecase=pcb knobs.crop_max_emit=1,5,10 knobs.num_sdg=15,30
    python -m compiler -m flow=day0,good_image knobs.render_patches=range(1,4)

Writes build/sweeps/<sweep id>/<variant>.yaml and sweep.json (overrides -> file -> sha256); the
sweep id is a hash of the arguments, so the same sweep lands in the same directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compiler.compose import Composer, parse_overrides
from compiler.errors import DigError, error
from compiler.paths import BUILD_DIR

PROGRESS_THRESHOLD = 50


@dataclass
class Variant:
    overrides: list[str]
    file: str | None = None
    sha256: str | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)


def expand(args: list[str]) -> list[list[str]]:
    """Every variant of a sweep, in Hydra's order (the basic sweeper's own cartesian expansion)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(args)
    except HydraException as exc:
        raise error("sweep", "cannot be parsed", got=" ".join(args), allowed=str(exc).splitlines()[0]) from None
    batches = BasicSweeper.split_arguments(parsed, None)
    return [list(v) for batch in batches for v in batch]


def sweep_id(args: list[str]) -> str:
    return hashlib.sha256("\n".join(args).encode()).hexdigest()[:12]


def variant_file(key: str, overrides: list[str]) -> str:
    digest = hashlib.sha256("\n".join(overrides).encode()).hexdigest()[:10]
    return f"{key.replace('/', '__')}__{digest}.yaml"


def _compile_chunk(chunk: list[tuple[int, list[str]]], target: Path, prefs: dict[str, str] | None,
                   composer: Composer | None = None) -> list[tuple[int, Variant]]:
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
            result.warnings = [d.format().splitlines()[0] for d in compiled.diagnostics if d.severity == "warning"]
            write_atomic(target / result.file, compiled.text)
        out.append((index, result))
    return out


_WORKER: dict[str, Any] = {}


def _init_worker() -> None:
    _WORKER["composer"] = Composer()


def default_jobs(n_variants: int) -> int:
    # Worth a process pool only for big sweeps; each worker composes its group combinations once.
    return 1 if n_variants < 200 else max(1, min(os.cpu_count() or 1, 8))


def run_sweep(args: list[str], *, out_dir: Path | None = None, prefs: dict[str, str] | None = None,
              progress: bool | None = None, composer: Composer | None = None,
              jobs: int | None = None) -> tuple[Path, list[Variant]]:
    from compiler.pipeline import write_atomic

    variants = expand(args)
    for bad in (a for a in args if a.split("=", 1)[0] == "out"):
        raise error("out", "cannot be used in a sweep: each variant gets its own file", got=bad)
    target = out_dir or BUILD_DIR / "sweeps" / sweep_id(args)
    target.mkdir(parents=True, exist_ok=True)
    jobs = default_jobs(len(variants)) if jobs is None else jobs
    show = len(variants) > PROGRESS_THRESHOLD if progress is None else progress
    bar: Any = None
    if show:
        from compiler.progress import SweepProgress

        bar = SweepProgress(len(variants), f"sweep {target.name}")
    indexed = list(enumerate(variants))
    done: dict[int, Variant] = {}
    if jobs <= 1 or sys.platform == "win32":
        step = 1 if bar else 25  # with a bar, every variant moves it
        for start in range(0, len(indexed), step):
            for index, result in _compile_chunk(indexed[start:start + step], target, prefs, composer):
                done[index] = result
            if bar:
                bar.update(min(step, len(indexed) - start))
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        size = max(10, len(indexed) // (jobs * 8))
        chunks = [indexed[i:i + size] for i in range(0, len(indexed), size)]
        ctx = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_worker) as pool:
            futures = [pool.submit(_compile_chunk, chunk, target, prefs) for chunk in chunks]
            for future in as_completed(futures):
                part = future.result()
                done.update(part)
                if bar:
                    bar.update(len(part))
    if bar:
        bar.close()
    results = [done[i] for i in range(len(indexed))]
    index = {
        "sweep_id": target.name,
        "arguments": args,
        "variants": len(results),
        "failed": sum(r.error is not None for r in results),
        "results": [{"overrides": r.overrides, "file": r.file, "sha256": r.sha256, "error": r.error,
                     "warnings": r.warnings} for r in results],
    }
    write_atomic(target / "sweep.json", json.dumps(index, indent=2) + "\n")
    return target, results


def run_sweep_cli(args: list[str]) -> int:
    from compiler.pipeline import display
    from compiler.prefs import load_prefs

    # Fail fast on a malformed sweep (grammar, out=) before compiling anything.
    target, results = run_sweep(args, prefs=load_prefs())
    failed = [r for r in results if r.error]
    for r in failed:
        first = r.error.splitlines()[0] if r.error else ""
        print(f"FAILED [{' '.join(r.overrides)}]: {first}", file=sys.stderr)
    print(f"{len(results) - len(failed)} of {len(results)} variants compiled, {len(failed)} failed; files in "
          f"{display(target)}/ (index: sweep.json)", file=sys.stderr)
    print(display(target / "sweep.json"))
    return 1 if failed else 0
