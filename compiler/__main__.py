"""`python -m compiler [-m] key=value ...`: compile one DIG workflow (or a sweep) into an OSMO YAML.

    python -m compiler flow=day0 usecase=pcb
    python -m compiler flow=day1 usecase=glass knobs=smoke name=day1-1a2b3c4d
    python -m compiler -m flow=day0 knobs.crop_max_emit=1,5,10 knobs.num_sdg=15,30

Writes exactly one file (build/<compile key>[__<override hash>].yaml unless out=) and prints its
path as the last line. Errors name the key, what was given and what is allowed; nothing is written
on error. DIG_FULL_ERROR=1 shows tracebacks.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    if args and args[0] == "board":
        from compiler.board_new import main as board_main

        return board_main(args[1:])
    from compiler.errors import DigError, cli_error

    try:
        if args and args[0] in ("-m", "--multirun"):
            from compiler.sweep import run_sweep_cli

            return run_sweep_cli(args[1:])
        from compiler.compose import parse_overrides
        from compiler.pipeline import compile_request, display, output_path, write_atomic
        from compiler.prefs import load_prefs

        compiled = compile_request(parse_overrides(args), prefs=load_prefs())
        for diag in compiled.diagnostics:
            print(diag.format(), file=sys.stderr)
        path = write_atomic(output_path(compiled), compiled.text)
        print(display(path))
        return 0
    except DigError as exc:
        return cli_error(exc)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM during a sweep (compiler.sweep.Terminated)
        return 128 + getattr(exc, "signum", 2)


if __name__ == "__main__":
    sys.exit(main())
