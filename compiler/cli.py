"""`dig`: one command for every tool (verbs), and the compile command line with Hydra's app flags.

dig flow=day0 usecase=pcb                  # compile (same as python -m compiler)
dig -m flow=day0 knobs.num_sdg=15,30       # sweep
dig plan flow=structural --images 100      # a verb: plan, validate, diff, prefs, schema, ...
dig --help | dig flow=day0 --help | dig --cfg job | dig --info defaults-tree | dig --version
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from compiler.compose import Composer

# Exit codes shared by every verb (README "Exit codes").
EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_ENV, EXIT_INTERRUPTED = 0, 1, 2, 4, 130


class UsageError(Exception):
    """A command line dig cannot act on: printed as `usage error: ...`, exit 2."""


@dataclass(frozen=True)
class Verb:
    module: str
    func: str
    summary: str
    keep_verb: bool = False  # pass argv starting with the verb (dig_runs dispatches on it itself)
    package: str = ""  # where it comes from, for the "not installed" message


_RUNS = "dig-runs (packages/dig-runs)"
VERBS: dict[str, Verb] = {
    "plan": Verb(
        "compiler.plan", "main", "compile one workflow and explain how to run it (--images N sizes it)"
    ),
    "validate": Verb(
        "compiler.validate", "main", "check OSMO workflow files offline (compiled or hand-written)"
    ),
    "diff": Verb("compiler.diff", "main", "compare two compiled workflows task by task"),
    "prefs": Verb(
        "compiler.prefs", "main", "show / set saved preferences (storage root, pool, endpoint, board)"
    ),
    "schema": Verb("compiler.schema", "main", "write or --check the config JSON Schema"),
    "preflight": Verb(
        "dig_preflight.cli",
        "main",
        "storage, credential and pod-template checks",
        package="dig-preflight (packages/dig-preflight)",
    ),
    "outputs": Verb(
        "dig_outputs.__main__",
        "main",
        "list / check a run's stage outputs",
        package="dig-outputs (packages/dig-outputs)",
    ),
    "board": Verb(
        "compiler.board_new",
        "main",
        "add a new board (conf/board/<key>.yaml) from a USD scene",
        package="the dig compiler's board_new module",
    ),
    **{
        v: Verb("dig_runs.cli", "main", s, keep_verb=True, package=_RUNS)
        for v, s in (
            ("submit", "submit a compiled workflow to OSMO and record the run"),
            ("runs", "list recorded runs"),
            ("watch", "follow a run until it ends"),
            ("logs", "show a run's task logs"),
            ("cancel", "cancel a run"),
            ("restart", "restart a failed run from its failed group"),
            ("fetch", "download a run's outputs"),
            ("endpoint", "image-edit endpoint status"),
        )
    },
}


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("dig")
    except PackageNotFoundError:  # run from a checkout: read the root pyproject's [project] version
        return _checkout_version()


def _checkout_version() -> str:
    """`version = "..."` of pyproject's [project] table (read by pattern: Python 3.10 has no tomllib)."""
    import re

    from compiler.paths import REPO_ROOT

    text = (REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8")
    table = re.search(r"(?ms)^\[project\]\s*$(.*?)(?=^\[)", text + "\n[")
    found = re.search(r'(?m)^version\s*=\s*"([^"]+)"', table.group(1) if table else "")
    return found.group(1) if found else "unknown"


def run_verb(name: str, args: list[str]) -> int:
    verb = VERBS[name]
    try:
        module = importlib.import_module(verb.module)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if not (verb.module == missing or verb.module.startswith(missing + ".")):
            raise
        print(
            f"dig {name}: not installed: module {verb.module} is missing; install {verb.package or verb.module}",
            file=sys.stderr,
        )
        return EXIT_ENV
    main = getattr(module, verb.func)
    code = main([name, *args] if verb.keep_verb else list(args))
    return int(code or 0)


# -- flags on the compile line ------------------------------------------------------------------------
@dataclass
class Line:
    overrides: list[str]
    help: bool = False
    version: bool = False
    multirun: bool = False
    cfg: str | None = None
    resolve: bool = False
    package: str | None = None
    info: str | None = None
    completion: str | None = None
    config_dir: str | None = None
    images: int | None = None


INFO_CHOICES = ("defaults", "defaults-tree", "config", "searchpath")


def _value(arg: str, it: _Popper, flag: str) -> str:
    if "=" in arg and arg.startswith("--"):
        return arg.split("=", 1)[1]
    value = next(it, None)
    if value is None:
        raise UsageError(f"{flag} needs a value")
    return value


class _Popper:
    """Iterate a list by popping its front, so `rest` always shows what is left."""

    def __init__(self, items: list[str]) -> None:
        self.items = items

    def __iter__(self) -> _Popper:
        return self

    def __next__(self) -> str:
        if not self.items:
            raise StopIteration
        return self.items.pop(0)


def parse_line(args: list[str]) -> Line:
    """Split dig's flags (Hydra's spellings) from key=value overrides; flags may stand anywhere."""
    line = Line(overrides=[])
    rest = list(args)  # consumed from the front; a flag's value is popped with it
    it = _Popper(rest)
    for arg in it:
        flag = arg.split("=", 1)[0] if arg.startswith("--") else arg
        if flag in ("-h", "--help", "--hydra-help"):
            line.help = True
        elif flag == "--version":
            line.version = True
        elif flag in ("-m", "--multirun"):
            line.multirun = True
        elif flag in ("-c", "--cfg"):
            line.cfg = _value(arg, it, flag)
            if line.cfg == "hydra":
                raise UsageError(
                    "--cfg hydra: dig switches Hydra's run directories, logging and launcher off; "
                    "use --cfg all to see the choices dig composes with"
                )
            if line.cfg not in ("job", "all"):
                raise UsageError(f"--cfg takes job or all, got {line.cfg!r}")
        elif flag == "--resolve":
            line.resolve = True
        elif flag in ("-p", "--package"):
            line.package = _value(arg, it, flag)
        elif flag in ("-i", "--info"):
            line.info = "defaults"
            if "=" in arg and arg.startswith("--"):
                line.info = arg.split("=", 1)[1]
            elif rest and rest[0] in (*INFO_CHOICES, "all"):
                line.info = next(it)
            if line.info == "all":
                line.info = "config"
            if line.info not in INFO_CHOICES:
                raise UsageError(f"--info takes one of {', '.join(INFO_CHOICES)}, got {line.info!r}")
        elif flag == "--shell-completion":
            line.completion = _value(arg, it, flag)
        elif flag in ("-cd", "--config-dir"):
            line.config_dir = _value(arg, it, flag)
        elif flag == "--images":
            value = _value(arg, it, flag)
            if not value.isdigit() or int(value) < 1:
                raise UsageError(f"--images needs a positive integer, got {value!r}")
            line.images = int(value)
        elif flag in ("-cn", "--config-name", "-cp", "--config-path", "--run", "-r", "--experimental-rerun"):
            raise UsageError(f"{flag}: {HYDRA_USE}")
        elif arg.startswith("-") and "=" not in arg:
            raise UsageError(f"unknown option {arg!r} (see dig --help)")
        elif arg.split("=", 1)[0].lstrip("+~").startswith("hydra.") or arg.split("=", 1)[0] == "hydra":
            raise UsageError(f"{arg.split('=', 1)[0]}: {HYDRA_USE}")
        else:
            line.overrides.append(arg)
    return line


HYDRA_USE = (
    "dig uses Hydra's config groups, defaults list and override grammar (compose API) with the "
    "config root conf/ (plus --config-dir DIR); it does not use Hydra's app runner, so hydra.* "
    "settings, run/sweep directories, .hydra/ copies, logging, launchers and sweepers do not apply "
    "(sweeps: dig -m; output: out=; config: --cfg / --info)"
)


def make_composer(config_dir: str | None) -> Composer | None:
    """A Composer over conf/ plus the user's config directory (None: the default composer)."""
    from compiler.compose import Composer

    if config_dir is None:
        return None
    from pathlib import Path

    path = Path(config_dir).expanduser()
    if not path.is_dir():
        raise UsageError(f"--config-dir {config_dir}: not a directory")
    return Composer(searchpath=[str(path.resolve())])


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    from compiler.errors import DigError, cli_error

    try:
        if args and args[0] in VERBS:
            return run_verb(args[0], args[1:])
        return _run_line(parse_line(args))
    except UsageError as exc:
        print(f"usage error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except DigError as exc:
        return cli_error(exc)
    except (
        KeyboardInterrupt
    ) as exc:  # Ctrl-C, or SIGTERM during a sweep (compiler.sweep.Terminated): 128 + signal
        return EXIT_INTERRUPTED - 2 + getattr(exc, "signum", 2)
    except BrokenPipeError:  # `dig --help | head`: the reader left; say nothing more
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def _run_line(line: Line) -> int:
    """The compile command line: --version, completion, --help, --cfg/--info, a sweep, or one compile."""
    if line.version:
        print(f"dig {version()}")
        return EXIT_OK
    if line.completion is not None:
        from compiler.completion import shell_completion

        return shell_completion(line.completion)
    composer = make_composer(line.config_dir)
    if line.help:
        from compiler.help import app_help, flow_help

        if any(o.split("=", 1)[0] in ("flow", "usecase", "board") for o in line.overrides):
            print(flow_help(line.overrides, composer=composer), end="")
        else:
            print(app_help(), end="")
        return EXIT_OK
    if line.cfg or line.info:
        print(_introspect(line, composer), end="")
        return EXIT_OK
    if line.multirun:
        if line.images is not None:
            raise UsageError("--images sizes one compile; drop -m")
        from compiler.sweep import run_sweep_cli

        return run_sweep_cli(line.overrides)
    return compile_line(line.overrides, composer=composer, images=line.images)


def _introspect(line: Line, composer: Composer | None) -> str:
    """--info or --cfg: the composed config or its inputs, as text."""
    from compiler.introspect import show_cfg, show_info

    if line.multirun:
        raise UsageError("--cfg / --info show one composed config; drop -m")
    if line.info:
        return show_info(line.info, line.overrides, composer=composer, config_dir=line.config_dir)
    return show_cfg(
        line.cfg or "job", line.overrides, composer=composer, package=line.package, resolve=line.resolve
    )


def compile_line(overrides: list[str], *, composer: Composer | None = None, images: int | None = None) -> int:
    from compiler.compose import parse_overrides
    from compiler.pipeline import compile_request, display, output_path, write_atomic
    from compiler.prefs import load_prefs

    prefs = load_prefs()
    if images is not None:
        from compiler.sizing import size_request

        sized = size_request(overrides, images, composer=composer, prefs=prefs)
        print(sized.report(), file=sys.stderr)
        overrides = sized.overrides
    compiled = compile_request(parse_overrides(overrides), composer=composer, prefs=prefs)
    for diag in compiled.diagnostics:
        print(diag.format(), file=sys.stderr)
    path = write_atomic(output_path(compiled), compiled.text)
    print(display(path))
    return EXIT_OK
