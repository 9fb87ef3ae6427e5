"""CLI: validate OSMO workflow YAML offline by OSMO's rules (`python -m compiler.validate FILE ...`).

Exit codes: 0 every file valid (warnings and notes allowed); 1 at least one file invalid, which
includes text that is not UTF-8 or not YAML (the file was read, its content is wrong); 2 usage
error: bad arguments, a `--set` without `=`, or a file that cannot be read.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from compiler import osmo as osmo_validate


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m compiler.validate",
        description=(
            "Validate OSMO workflow YAML offline: render it the way OSMO does (default-values, then "
            "--set), then check OSMO's schema and submit rules and that the text survives OSMO's "
            "second Jinja render."
        ),
    )
    parser.add_argument("files", nargs="+", metavar="FILE.yaml")
    parser.add_argument(
        "--set",
        dest="sets",
        nargs="+",
        action="extend",
        default=[],
        metavar="K=V",
        help="values as for `osmo workflow submit --set`: cast with int(), else float(), else string",
    )
    parser.add_argument(
        "--set-string",
        dest="set_strings",
        nargs="+",
        action="extend",
        default=[],
        metavar="K=V",
        help="values kept as strings (win over --set), as `--set-string`",
    )
    parser.add_argument(
        "--allow-unset",
        dest="allow_unset",
        action="append",
        default=None,
        metavar="NAME[,NAME]",
        help=(
            "variables that are set at submit time and may be undefined here (default: name); "
            "repeat or comma-separate; `--allow-unset ''` allows none"
        ),
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("-q", "--quiet", action="store_true", help="print errors only")
    return parser


def _format(path: str, finding: osmo_validate.Finding) -> str:
    key = finding.path or "<file>"
    label = "" if finding.severity == "error" else f"{finding.severity}: "
    return f"{path}: {key}: {label}{finding.message}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the validator; return the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        sets = osmo_validate.parse_sets(args.sets)
        sets.update(osmo_validate.parse_sets(args.set_strings, cast=False))
    except ValueError as exc:
        parser.print_usage(sys.stderr)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.allow_unset is None:
        allow_unset = {"name"}
    else:
        allow_unset = {n.strip() for item in args.allow_unset for n in item.split(",") if n.strip()}

    results = []
    usage_error = False
    for path in args.files:
        try:
            findings = osmo_validate.validate_file(path, sets=sets, allow_unset=allow_unset)
        except OSError as exc:
            print(f"{path}: cannot read: {exc.strerror or exc}", file=sys.stderr)
            usage_error = True
            continue
        results.append((path, findings))

    invalid = any(osmo_validate.has_errors(f) for _, f in results)
    if args.json:
        doc = {
            "valid": not invalid and not usage_error,
            "files": [
                {
                    "file": path,
                    "valid": not osmo_validate.has_errors(findings),
                    "findings": [f.to_dict() for f in findings],
                }
                for path, findings in results
            ],
        }
        print(json.dumps(doc, indent=2, allow_nan=False))
    else:
        for path, findings in results:
            shown = [f for f in findings if not args.quiet or f.severity == "error"]
            for finding in shown:
                print(_format(path, finding))
            errors = sum(1 for f in findings if f.severity == "error")
            if not args.quiet:
                print(f"{path}: {'OK' if not errors else f'INVALID ({errors} error(s))'}")
    if usage_error:
        return 2
    return 1 if invalid else 0


if __name__ == "__main__":
    sys.exit(main())
