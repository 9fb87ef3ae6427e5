"""Shell completion with Hydra's interface: `dig --shell-completion install=bash|zsh|fish` (and query=)."""

from __future__ import annotations

import os
import sys
from typing import Any

from compiler.paths import GROUPS, group_options

SHELLS = ("bash", "zsh", "fish")
FLAGS = (
    "--help",
    "--cfg",
    "--resolve",
    "--package",
    "--info",
    "--shell-completion",
    "--config-dir",
    "--images",
    "--multirun",
    "--version",
)
TOP_KEYS = ("name=", "dig_url_root=", "pool=", "out=", "strict=", "endpoint.url=")

_BASH = r"""# dig completion for bash (eval "$(dig --shell-completion install=bash)")
_dig_completion() {
    local IFS=$'\n'
    COMPREPLY=( $(COMP_LINE="${COMP_LINE:0:$COMP_POINT}" dig --shell-completion query=bash 2>/dev/null) )
}
COMP_WORDBREAKS=${COMP_WORDBREAKS//=}
COMP_WORDBREAKS=${COMP_WORDBREAKS//:}
complete -o nospace -o default -F _dig_completion dig
"""
_ZSH = r"""# dig completion for zsh (eval "$(dig --shell-completion install=zsh)")
autoload -Uz bashcompinit && bashcompinit
""" + _BASH.split("\n", 1)[1]
_FISH = r"""# dig completion for fish (dig --shell-completion install=fish | source)
function __dig_complete
    set -lx COMP_LINE (commandline -cp)
    dig --shell-completion query=fish 2>/dev/null
end
complete -c dig -f -a '(__dig_complete)'
"""
_UNINSTALL = {"bash": "complete -r dig\n", "zsh": "complete -r dig\n", "fish": "complete -c dig -e\n"}


def install_script(shell: str) -> str:
    return {"bash": _BASH, "zsh": _ZSH, "fish": _FISH}[shell]


def _leaf_paths(node: Any, prefix: str) -> list[str]:
    if isinstance(node, dict) and node:
        return [p for k, v in node.items() for p in _leaf_paths(v, f"{prefix}.{k}")]
    return [prefix]


def _composed(words: list[str]) -> Any:
    """The config the words so far select (group choices only; a bad choice falls back to defaults)."""
    from compiler.compose import parse_overrides
    from compiler.errors import DigError
    from compiler.pipeline import default_composer

    picks = [w for w in words if w.split("=", 1)[0] in GROUPS and "," not in w]
    for attempt in (picks, []):
        try:
            return default_composer().compose(parse_overrides(attempt), {}).config
        except DigError:
            continue
    return None


def complete(line: str) -> list[str]:
    """Candidates for the last word of a command line that starts with `dig` (or `python -m compiler`)."""
    from compiler.cli import VERBS

    words = line.split()
    if line.endswith(" ") or not words:
        words.append("")
    # drop the program: `dig` or `python -m compiler`
    if words[:3] == ["python", "-m", "compiler"]:
        words = words[3:]
    elif words and os.path.basename(words[0]) in ("dig", "__main__.py"):
        words = words[1:]
    current, before = words[-1], [w for w in words[:-1] if w not in ("-m", "--multirun")]
    if before and before[0] in VERBS and before[0] != "plan":
        return []  # other verbs have their own flags (dig VERB --help)
    if current.startswith("-"):
        return [f for f in FLAGS if f.startswith(current)]
    if before and before[-1] in ("--info", "-i"):
        from compiler.cli import INFO_CHOICES

        return [c for c in INFO_CHOICES if c.startswith(current)]
    if before and before[-1] in ("--cfg", "-c"):
        return [c for c in ("job", "all") if c.startswith(current)]
    key, eq, _ = current.partition("=")
    if eq and key in GROUPS:
        return [f"{key}={o}" for o in group_options(key) if f"{key}={o}".startswith(current)]
    if current.startswith("knobs.") or current.startswith("cookbooks."):
        config = _composed(before)
        if config is None:
            return []
        if eq and key.startswith("knobs."):
            return [c for c in _knob_values(key.removeprefix("knobs.")) if c.startswith(current)]
        if current.startswith("knobs."):
            return [f"knobs.{k}=" for k in config["knobs"] if f"knobs.{k}=".startswith(current)]
        paths = [
            p for name, book in config["cookbooks"].items() for p in _leaf_paths(book, f"cookbooks.{name}")
        ]
        return [f"{p}=" for p in paths if f"{p}=".startswith(current)]
    if eq:
        if key == "strict":
            return [c for c in ("strict=true", "strict=false") if c.startswith(current)]
        return []
    out = [f"{g}=" for g in GROUPS] + ["knobs.", "cookbooks.", *TOP_KEYS]
    if not before:
        out = [*VERBS, *out]
    return [c for c in out if c.startswith(current)]


def _knob_values(name: str) -> list[str]:
    from compiler.schema import load_schema

    frag = load_schema()["$defs"].get(f"knob_{name}", {})
    values: list[Any] = list(frag.get("enum", []))
    if frag.get("type") == "boolean":
        values = ["true", "false"]
    return [f"knobs.{name}={v}" for v in values]


def shell_completion(arg: str) -> int:
    from compiler.cli import UsageError

    action, _, shell = arg.partition("=")
    if action not in ("install", "uninstall", "query") or shell not in SHELLS:
        raise UsageError(
            f"--shell-completion takes install=SHELL, uninstall=SHELL or query=SHELL "
            f"(SHELL: {', '.join(SHELLS)}), got {arg!r}"
        )
    if action == "install":
        print(install_script(shell), end="")
    elif action == "uninstall":
        print(_UNINSTALL[shell], end="")
    else:
        print("\n".join(complete(os.environ.get("COMP_LINE", ""))))
    sys.stdout.flush()
    return 0
