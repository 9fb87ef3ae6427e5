"""User preferences outside the repo (storage root, pool, external endpoint, default board).

Only what spec/endpoint_and_sizing.md §7 allows to persist; applied silently, the command line wins.
Path: $DIG_PREFERENCES, else $XDG_CONFIG_HOME/dig/preferences.yaml, else ~/.config/dig/preferences.yaml.

    python -m compiler.prefs                      # show
    python -m compiler.prefs set dig_url_root=s3://my-bucket/dig pool=my-pool
    python -m compiler.prefs unset pool
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path

import yaml

from compiler.errors import DigError, did_you_mean, error

ALLOWED = ("dig_url_root", "pool", "external_endpoint_url", "default_board")


def prefs_path() -> Path:
    if os.environ.get("DIG_PREFERENCES"):
        return Path(os.environ["DIG_PREFERENCES"]).expanduser()
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "dig" / "preferences.yaml"


MAX_BYTES = 64 * 1024


def _read(path: Path) -> str | None:
    """The file's text, None when it does not exist; a clean error naming the file otherwise."""
    where = f"preferences ({path})"
    if str(path) == os.devnull:
        return None
    try:
        if path.is_dir():
            raise error(where, "is a directory; DIG_PREFERENCES must name a YAML file", got=str(path))
        if not path.exists():
            return None
        if not path.is_file():
            raise error(where, "is not a regular file", got=str(path))
        if path.stat().st_size > MAX_BYTES:
            raise error(where, f"is larger than {MAX_BYTES} bytes; it holds four short values", got=str(path))
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(where, "is not UTF-8 text; fix or delete the file", got=str(exc)) from None
    except OSError as exc:
        raise error(where, f"cannot be read: {exc.strerror or exc}", got=str(path)) from None


def load_prefs() -> dict[str, str]:
    path = prefs_path()
    text = _read(path)
    if text is None:
        return {}
    try:
        data = yaml.load(text, Loader=_BoundedLoader) or {}
    except yaml.YAMLError as exc:
        raise error(
            f"preferences ({path})", "is not valid YAML; fix or delete the file", got=str(exc)
        ) from None
    if not isinstance(data, dict):
        raise error(f"preferences ({path})", "must be a mapping of key: value", got=type(data).__name__)
    for key, value in data.items():
        if key not in ALLOWED:
            raise error(
                f"preferences.{key} ({path})",
                f"is not a preference{did_you_mean(key, ALLOWED)}",
                got=key,
                allowed=", ".join(ALLOWED),
            )
        if value is not None and not isinstance(value, str):
            raise error(f"preferences.{key} ({path})", "must be a string", got=value)
    prefs = {k: v for k, v in data.items() if v}
    check_values(prefs, where=f" ({path})")
    return prefs


class _BoundedLoader(yaml.SafeLoader):
    """A preferences file has no use for aliases: refuse them (no alias bombs)."""

    def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("aliases (*name) are not allowed in the preferences file")
        return super().compose_node(parent, index)


def check_values(prefs: dict[str, str], where: str = "") -> None:
    """Each value judged by the compiler's own rules (the same checks a command-line value gets)."""
    from compiler.knobs import TOP_LEVEL_SCHEMAS, pattern_hint
    from compiler.paths import group_options
    from compiler.values import endpoint_url_problem, storage_root_problem

    def bad(key: str, why: str, allowed: str | None = None) -> DigError:
        return error(f"preferences.{key}{where}", why, got=prefs[key], allowed=allowed)

    for key in ("dig_url_root", "pool"):
        schema = TOP_LEVEL_SCHEMAS[key]
        value = prefs.get(key)
        if value is not None and (len(value) > schema["maxLength"] or not re.match(schema["pattern"], value)):
            raise bad(
                key,
                "is not a storage prefix" if key == "dig_url_root" else "is not an OSMO name",
                pattern_hint(schema["pattern"]),
            )
    if prefs.get("dig_url_root") and (why := storage_root_problem(prefs["dig_url_root"])):
        raise bad("dig_url_root", why, "an OSMO storage prefix such as s3://my-bucket/dig")
    if prefs.get("external_endpoint_url") and (why := endpoint_url_problem(prefs["external_endpoint_url"])):
        raise bad("external_endpoint_url", why, "http(s)://<host>[:<port>]/v1")
    board = prefs.get("default_board")
    if board is not None and board not in group_options("board"):
        raise bad(
            "default_board",
            f"is not a board of conf/board{did_you_mean(board, group_options('board'))}",
            ", ".join(group_options("board")),
        )


def save_prefs(values: Mapping[str, str | None]) -> Path:
    path = prefs_path()
    current = load_prefs()
    for key, value in values.items():
        if key not in ALLOWED:
            raise error(
                f"preferences.{key}",
                f"cannot be saved{did_you_mean(key, ALLOWED)}",
                got=key,
                allowed=", ".join(ALLOWED),
            )
        if value is None:
            current.pop(key, None)
        else:
            current[key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(dict(sorted(current.items())), sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)
    return path


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help", "help"):
        print(__doc__)
        return 0
    try:
        if not args:
            print(f"# {prefs_path()}")
            for key, value in sorted(load_prefs().items()):
                print(f"{key}: {value}")
            return 0
        verb, rest = args[0], args[1:]
        if verb == "set":
            pairs = {}
            for item in rest:
                key, sep, value = item.partition("=")
                if not sep or not value:
                    raise error(item, "expected key=value", got=item, allowed=", ".join(ALLOWED))
                pairs[key] = value
            unknown = [k for k in pairs if k not in ALLOWED]
            if not unknown:
                check_values(pairs)
            print(save_prefs(pairs))
            return 0
        if verb == "unset":
            print(save_prefs({key: None for key in rest}))
            return 0
        print(__doc__, file=sys.stderr)
        return 2
    except DigError as exc:
        print(exc.format(), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
