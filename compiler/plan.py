"""`python -m compiler.plan key=value ...` (`dig plan`): compile one workflow and print its run-book
(Markdown or JSON).

    python -m compiler.plan flow=day0 usecase=pcb
    python -m compiler.plan flow=structural --images 100
    python -m compiler.plan flow=day1 usecase=glass --json
    python -m compiler.plan --write-examples          # regenerate docs/plans/<flow>.md

Same override grammar and errors as `python -m compiler`; writes the same file the compiler would.
Sections: Workflow, Preflights, Required URL Artifacts, Submit Command, Group Order, Output Location,
Notes. Exit 0 on success, 1 on a config error, 2 on a usage error.
"""

from __future__ import annotations

import sys
from typing import Any

from compiler.cli import UsageError  # one usage-error type for every verb


def parse_args(args: list[str]) -> tuple[list[str], dict[str, Any]]:
    opts: dict[str, Any] = {"json": False, "images": None, "write_examples": False}
    rest: list[str] = []
    it = iter(args)
    for arg in it:
        if arg == "--json":
            opts["json"] = True
        elif arg == "--write-examples":
            opts["write_examples"] = True
        elif arg == "--images" or arg.startswith("--images="):
            value = arg.split("=", 1)[1] if "=" in arg else next(it, None)
            if value is None or not value.isdigit() or int(value) < 1:
                raise UsageError(f"--images needs a positive integer, got {value!r}")
            opts["images"] = int(value)
        elif arg.startswith("-"):
            raise UsageError(f"unknown option {arg!r} (options: --json, --images N, --write-examples)")
        else:
            rest.append(arg)
    return rest, opts


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    from compiler import runbook
    from compiler.errors import DigError, cli_error

    try:
        overrides, opts = parse_args(args)
        if opts["write_examples"]:
            for path in runbook.write_examples():
                print(path)
            print(runbook.refresh_readme())
            return 0
        plan = runbook.make_runbook(overrides, images=opts["images"])
        print(
            runbook.to_json(plan) if opts["json"] else runbook.to_markdown(plan),
            end="" if not opts["json"] else "\n",
        )
        return 0
    except UsageError as exc:
        print(f"usage error: {exc}", file=sys.stderr)
        return 2
    except DigError as exc:
        return cli_error(exc)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
