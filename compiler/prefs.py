"""User preferences outside the repo (storage root, pool, external endpoint, default board).

Only what spec/endpoint_and_sizing.md §7 allows to persist; applied silently, the command line wins.
Path: $DIG_PREFERENCES, else $XDG_CONFIG_HOME/dig/preferences.yaml, else ~/.config/dig/preferences.yaml.

    python -m compiler.prefs                      # show
    python -m compiler.prefs set dig_url_root=s3://my-bucket/dig pool=my-pool
    python -m compiler.prefs unset pool
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import yaml

from compiler.errors import DigError, did_you_mean, error

ALLOWED = ("dig_url_root", "pool", "external_endpoint_url", "default_board")


def prefs_path() -> Path:
    if os.environ.get("DIG_PREFERENCES"):
        return Path(os.environ["DIG_PREFERENCES"]).expanduser()
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "dig" / "preferences.yaml"


def load_prefs() -> dict[str, str]:
    path = prefs_path()
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise error(f"preferences ({path})", "is not valid YAML; fix or delete the file", got=str(exc)) from None
    if not isinstance(data, dict):
        raise error(f"preferences ({path})", "must be a mapping of key: value", got=type(data).__name__)
    for key, value in data.items():
        if key not in ALLOWED:
            raise error(f"preferences.{key}", f"is not a preference{did_you_mean(key, ALLOWED)}",
                        got=key, allowed=", ".join(ALLOWED))
        if value is not None and not isinstance(value, str):
            raise error(f"preferences.{key}", "must be a string", got=value)
    return {k: v for k, v in data.items() if v}


def save_prefs(values: dict[str, str | None]) -> Path:
    path = prefs_path()
    current = load_prefs()
    for key, value in values.items():
        if key not in ALLOWED:
            raise error(f"preferences.{key}", f"cannot be saved{did_you_mean(key, ALLOWED)}",
                        got=key, allowed=", ".join(ALLOWED))
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
            if "dig_url_root" in pairs or "default_board" in pairs:
                from compiler.knobs import check_pref_values

                check_pref_values(pairs)
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
