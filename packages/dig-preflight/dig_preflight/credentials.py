"""Hugging Face token and OSMO `hf-token` credential checks; the token text never leaves this module."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .osmo import osmo_path, run_osmo_json
from .report import ERROR, FAIL, OK, SKIP, WARN, Report

EXIT_OK, EXIT_MISSING, EXIT_USAGE, EXIT_ENV = 0, 1, 2, 4
CRED_NAME, CRED_KEY = "hf-token", "token"
# HF user access tokens: "hf_" + 34 alphanumerics today; allow some slack for format changes.
_TOKEN_RE = re.compile(r"hf_[A-Za-z0-9]{30,96}")
SET_CMD = "osmo credential set hf-token --type GENERIC --payload token=$HF_TOKEN"


def token_file_candidates(env: Mapping[str, str]) -> list[Path]:
    """Where huggingface_hub stores a login token: HF_TOKEN_PATH, $HF_HOME/token, the XDG/home cache."""
    out: list[Path] = []
    if env.get("HF_TOKEN_PATH"):
        out.append(Path(env["HF_TOKEN_PATH"]).expanduser())
    if env.get("HF_HOME"):
        out.append(Path(env["HF_HOME"]).expanduser() / "token")
    else:
        cache = (
            Path(env["XDG_CACHE_HOME"]).expanduser() if env.get("XDG_CACHE_HOME") else Path.home() / ".cache"
        )
        out.append(cache / "huggingface" / "token")
    return out


def find_hf_token(env: Mapping[str, str] | None = None) -> tuple[str | None, str]:
    """(token, where it came from); the token is for checks only, never for output."""
    env = os.environ if env is None else env
    if env.get("HF_TOKEN", "").strip():
        return env["HF_TOKEN"].strip(), "environment variable HF_TOKEN"
    for path in token_file_candidates(env):
        try:
            text = path.read_text(encoding="utf-8").strip()
        except OSError:
            continue
        if text:
            return text, f"token file {path}"
    return None, ""


def token_problem(token: str) -> str | None:
    """Why `token` is not a well-formed HF token (the message never quotes it), or None."""
    if not token.startswith("hf_"):
        return "does not start with 'hf_' (is this an HF user access token?)"
    if not _TOKEN_RE.fullmatch(token):
        if len(token) < 33:
            return f"too short ({len(token)} characters; HF tokens have ~37)"
        if len(token) > 99:
            return f"too long ({len(token)} characters; HF tokens have ~37)"
        return (
            "contains characters other than letters and digits after 'hf_' (stray quote, space or newline?)"
        )
    return None


def _entry_keys(entry: Mapping[str, Any]) -> set[str] | None:
    """Payload key names an OSMO credential entry exposes, if the server lists them at all."""
    for field in ("keys", "payload_keys", "credential_keys"):
        if isinstance(entry.get(field), list):
            return {str(k) for k in entry[field]}
    for field in ("credential", "payload", "generic_credential"):
        value = entry.get(field)
        if isinstance(value, Mapping):
            inner = value.get("credential", value)
            if isinstance(inner, Mapping):
                return {str(k) for k in inner}
    return None


def check_credentials(
    report: Report, env: Mapping[str, str] | None = None, *, use_osmo: bool = True
) -> Report:
    env = os.environ if env is None else env
    token, source = find_hf_token(env)
    if token is None:
        report.add(
            "HF token",
            FAIL,
            "HF_TOKEN / token file",
            "no Hugging Face token found (HF_TOKEN unset; no token file at "
            + ", ".join(str(p) for p in token_file_candidates(env))
            + ")",
            "export HF_TOKEN=hf_... (a token whose account accepted the Cosmos-AnomalyGen and "
            "Cosmos-Predict2 licenses), or run `hf auth login`",
        )
    else:
        problem = token_problem(token)
        if problem:
            report.add(
                "HF token",
                FAIL,
                source,
                f"malformed: {problem}",
                "copy the token again from huggingface.co/settings/tokens",
            )
        else:
            report.add("HF token", OK, source, f"well-formed (hf_ + {len(token) - 3} characters; not shown)")
    del token  # nothing below needs it

    if not use_osmo:
        report.add("OSMO credential hf-token", SKIP, "", "skipped (--no-osmo)")
    elif osmo_path() is None:
        report.add(
            "OSMO credential hf-token",
            SKIP,
            "osmo CLI",
            "osmo CLI not on PATH: cannot check the OSMO credential store",
            f"install/login the osmo CLI, then `{SET_CMD}` if `osmo credential list` lacks hf-token",
        )
    else:
        _check_osmo_cred(report, have_token=source != "")
    report.exit_code = _exit_code(report)
    return report


def list_osmo_credentials() -> tuple[list[Mapping[str, Any]] | None, str]:
    """Entries of `osmo credential list` (JSON), or (None, why not)."""
    try:
        res = run_osmo_json("credential", "list")
    except (OSError, TimeoutError) as exc:
        return None, f"could not run osmo: {exc}"
    if res.returncode != 0:
        status = res.http_status()
        return None, f"`osmo credential list` exited {res.returncode}" + (
            f" (HTTP {status})" if status else ""
        )
    try:
        data = res.json()
    except json.JSONDecodeError:
        return None, "`osmo credential list --format-type json` did not print JSON"
    entries = data.get("credentials", []) if isinstance(data, Mapping) else data
    return [e for e in entries or [] if isinstance(e, Mapping)], ""


def check_osmo_credential(
    report: Report, entries: list[Mapping[str, Any]], cred_name: str, keys: set[str], next_step: str
) -> None:
    """Rows saying whether `cred_name` is stored in OSMO as GENERIC with every key in `keys`."""
    name = f"OSMO credential {cred_name}"
    entry = next((e for e in entries if (e.get("cred_name") or e.get("name")) == cred_name), None)
    if entry is None:
        names = sorted({str(e.get("cred_name") or e.get("name")) for e in entries})
        report.add(
            name,
            FAIL,
            "osmo credential list",
            f"{cred_name} missing (present: {', '.join(names) or 'none'})",
            next_step,
        )
        return
    ctype = str(entry.get("cred_type", entry.get("type", "GENERIC"))).upper()
    if ctype != "GENERIC":
        report.add(
            name,
            FAIL,
            "osmo credential list",
            f"{cred_name} has type {ctype}, workflows need GENERIC",
            f"osmo credential delete {cred_name}; then {next_step}",
        )
        return
    have = _entry_keys(entry)
    if have is None:
        report.add(name, OK, "osmo credential list", "present, type GENERIC")
        if keys:
            report.add(
                f"{name} keys",
                WARN,
                "osmo credential list",
                f"this OSMO does not list payload keys; key(s) {', '.join(sorted(keys))} unverified "
                "(`osmo workflow validate` checks them)",
            )
    elif keys - have:
        report.add(
            name,
            FAIL,
            "osmo credential list",
            f"{cred_name} lacks key(s) {', '.join(sorted(keys - have))} (has: {', '.join(sorted(have))})",
            next_step,
        )
    else:
        report.add(
            name, OK, "osmo credential list", f"present, type GENERIC, keys {', '.join(sorted(keys)) or '-'}"
        )


def _check_osmo_cred(report: Report, *, have_token: bool) -> None:
    entries, why = list_osmo_credentials()
    if entries is None:
        report.add(
            "OSMO credential hf-token",
            ERROR,
            "osmo credential list",
            why,
            "run `osmo login <url>` and re-run this check",
        )
        return
    next_step = SET_CMD if have_token else "export HF_TOKEN=hf_... then " + SET_CMD
    check_osmo_credential(report, entries, CRED_NAME, {CRED_KEY}, next_step)


def _exit_code(report: Report) -> int:
    statuses = {c.status for c in report.checks}
    if FAIL in statuses:
        return EXIT_MISSING
    if ERROR in statuses:
        return EXIT_ENV
    return EXIT_OK
