"""`dig submit`: compile (or take a compiled file), preflight, stamp a run name, record, submit to OSMO."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dig_runs.cli_context import Ctx, UsageError, confirm
from dig_runs.osmo import OsmoError, OsmoMissing, label_refused, workflow_id_of
from dig_runs.recovery import resolve_one
from dig_runs.store import NOT_SUBMITTED, SUBMIT_FAILED, SUBMITTED, SUBMITTING, NewRun


@dataclass
class Input:
    path: Path
    text: str
    key: str | None
    overrides: list[str]
    choices: dict[str, str]


def compiled_input(target: list[str]) -> Input:
    from dig_runs.compiled import key_from_path

    if len(target) == 1 and "=" not in target[0]:
        path = Path(target[0])
        if not path.is_file():
            raise UsageError(f"submit: {target[0]!r} is not a file and not a key=value override")
        return Input(path, path.read_text(encoding="utf-8"), key_from_path(path), [], {})
    if not target:
        raise UsageError(
            "submit: give overrides (flow=day0 usecase=pcb ...), a compiled FILE, or --sweep DIR"
        )
    from compiler.compose import parse_overrides
    from compiler.errors import DigError
    from compiler.pipeline import compile_request, display, output_path, write_atomic
    from compiler.prefs import load_prefs

    try:
        compiled = compile_request(parse_overrides(target), prefs=load_prefs())
    except DigError as exc:
        raise UsageError(exc.format()) from None
    for diag in compiled.diagnostics:
        print(diag.format(), file=sys.stderr)
    path = write_atomic(output_path(compiled), compiled.text)
    print(f"compiled {compiled.key} -> {display(path)}", file=sys.stderr)
    return Input(path, compiled.text, compiled.key, list(target), dict(compiled.choices))


def _capture(fn: Any, argv: list[str]) -> tuple[int, str]:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = fn(argv)
    return code, buf.getvalue()


def preflight(ctx: Ctx, inp: Input, run: Any, name: str | None) -> bool:
    """The preflights the compiled file asks for: storage + OSMO credentials, pod template, endpoint."""
    from dig_preflight.cli import main as preflight_main

    ok = True
    argv = ["workflow", str(inp.path), "--json"] + (["--name", name] if name else [])
    code, text = _capture(preflight_main, argv)
    ok &= _report_preflight(ctx, "workflow (storage, run name, credentials)", code, text, passing=(0,))
    checks = "render" if run.render else "train"
    code, text = _capture(preflight_main, ["pod-template", "--checks", checks, "--json"])
    ok &= _report_preflight(ctx, f"pod-template --checks {checks}", code, text, passing=(0, 3))
    if run.endpoint_url:
        from dig_runs.endpoint import check

        res = check(run.endpoint_url, timeout=3.0)
        if not res.reachable:
            ctx.say(
                f"preflight endpoint: SKIP {res.url} is not reachable from here ({res.message}); "
                "check it from inside the cluster (`dig endpoint check URL` in a pod)"
            )
        else:
            ctx.say(f"preflight endpoint: {'OK' if res.ok else 'FAIL'} {res.url}: {res.message}")
            ok &= res.ok
    return ok


def _report_preflight(ctx: Ctx, label: str, code: int, text: str, *, passing: tuple[int, ...]) -> bool:
    try:
        report = json.loads(text)
    except ValueError:
        report = {"checks": [], "notes": [text.strip()]}
    good = code in passing
    ctx.say(f"preflight {label}: {'OK' if good else 'FAILED'} (exit {code})")
    for check in report.get("checks", []):
        if check.get("status") in ("fail", "error") or not good:
            hint = f" -> {check['hint']}" if check.get("hint") else ""
            ctx.say(
                f"  {check.get('status', '').upper()} {check.get('name')}: {check.get('target') or ''} "
                f"{check.get('detail') or ''}{hint}".rstrip()
            )
    return good


@dataclass
class _Submission:
    """One workflow on its way to OSMO: its input, what the compiled file says, the name and labels it gets."""

    inp: Input
    run: Any  # dig_runs.compiled.CompiledRun
    name: str
    set_name: bool  # pass the name to OSMO (flows that take a run name)
    labels: dict[str, str]


def _run_name(run: Any) -> tuple[str, bool]:
    """(the record's run name, whether OSMO gets it as the workflow name)."""
    if run.takes_name:
        return f"{run.workflow_name}-{secrets.token_hex(4)}", True
    if run.compiled_name:
        return run.compiled_name, False
    # setup flows take no run name: the record still needs one, OSMO does not
    return f"{run.workflow_name}-{secrets.token_hex(4)}", False


def _checks_pass(ctx: Ctx, inp: Input, run: Any, name: str, args: argparse.Namespace) -> bool:
    if args.skip_preflight:
        ctx.say("preflight: skipped (--skip-preflight)")
    elif not preflight(ctx, inp, run, name if run.takes_name or run.compiled_name else None):
        ctx.say("submit: stopped by the preflight above (fix it, or --skip-preflight to submit anyway)")
        return False
    confirm(f"submit {name} to pool {args.pool or '(default)'}?", args.yes)
    return True


def submit_one(
    ctx: Ctx,
    inp: Input,
    args: argparse.Namespace,
    *,
    sweep: str | None = None,
    variant: str | None = None,
    check: bool = True,
) -> tuple[int, dict[str, Any]]:
    from dig_runs.compiled import label_value, read_compiled

    run = read_compiled(inp.text, str(inp.path))
    name, set_name = _run_name(run)
    if ctx.store.get(name) is not None:
        ctx.say(
            f"submit: run name {name!r} is already recorded (`dig runs`); compile without name= to get a fresh one"
        )
        return 1, {"run": name, "error": "run name taken"}
    if check and not _checks_pass(ctx, inp, run, name, args):
        return 1, {"run": name, "error": "preflight failed"}
    key = inp.key or f"file-{hashlib.sha256(inp.text.encode()).hexdigest()[:8]}"
    labels = {"dig-key": label_value(key), "dig-run": label_value(name)}
    if sweep:
        labels.update({"dig-sweep": label_value(sweep), "dig-variant": label_value(variant or "")})
    ctx.store.begin_submit(
        NewRun(
            run_name=name,
            compiled=inp.text.encode(),
            compile_key=key,
            overrides=inp.overrides,
            pool=args.pool,
            priority=args.priority,
            labels=labels,
            workflow_name=run.workflow_name,
            choices=inp.choices or run.choices,
            output_root=run.output_root,
            sweep_id=sweep,
            variant=variant,
        )
    )
    sub = _Submission(inp, run, name, set_name, labels)
    try:
        answer, note = _osmo_submit(ctx, sub, args)
    except OsmoMissing as exc:
        ctx.store.finish_submit(name, workflow_id=None, state=NOT_SUBMITTED, note=str(exc))
        ctx.say(f"submit: {exc}")
        return 4, {"run": name, "error": str(exc)}
    except OsmoError as err:
        return _submit_error(ctx, sub, err)
    return _submitted(ctx, sub, args, answer, note)


def _osmo_submit(ctx: Ctx, sub: _Submission, args: argparse.Namespace) -> tuple[dict[str, Any], str | None]:
    """`osmo workflow submit`; an OSMO before 6.4 refuses --label: submit again without (sub.labels emptied)."""

    def call(labels: dict[str, str]) -> dict[str, Any]:
        return ctx.osmo.submit(
            str(sub.inp.path),
            pool=args.pool,
            name=sub.name if sub.set_name else None,
            labels=labels,
            priority=args.priority,
        )

    try:
        return call(sub.labels), None
    except OsmoError as err:
        if not label_refused(err):
            raise
    note = "this OSMO does not support --label (before 6.4): submitted without labels"
    ctx.say(f"note: {note}")
    ctx.store.finish_submit(sub.name, workflow_id=None, state=SUBMITTING, labels={})
    answer = call({})
    sub.labels = {}
    return answer, note


def _submit_error(ctx: Ctx, sub: _Submission, err: OsmoError) -> tuple[int, dict[str, Any]]:
    name = sub.name
    if err.transient:
        ctx.say(f"submit: {err}; outcome unknown: resolving with `osmo workflow list --label dig-run={name}`")
        state = resolve_one(ctx, ctx.store.get(name))
        if state == SUBMITTED:
            rec = ctx.store.get(name)
            return 0, {"run": name, "workflow_id": rec.workflow_id if rec else None}
        return 4, {"run": name, "error": err.message}
    ctx.store.finish_submit(name, workflow_id=None, state=SUBMIT_FAILED, note=err.message)
    ctx.say(f"submit: OSMO refused {sub.inp.path}: {err.message}")
    return 1, {"run": name, "error": err.message}


def _submitted(
    ctx: Ctx, sub: _Submission, args: argparse.Namespace, answer: dict[str, Any], note: str | None
) -> tuple[int, dict[str, Any]]:
    name, run = sub.name, sub.run
    wid = workflow_id_of(answer)
    ctx.store.finish_submit(name, workflow_id=wid, state=SUBMITTED, note=note)
    body = {
        "run": name,
        "workflow_id": wid,
        "pool": args.pool,
        "labels": sub.labels,
        "output_root": run.output_root,
        "overview": answer.get("overview"),
        "warnings": answer.get("warnings") or [],
        "note": note,
    }
    ctx.say(
        f"submitted {name} as {wid} (pool {args.pool or 'default'}); outputs: {run.output_root}/runs/{name}/"
        if run.output_root
        else f"submitted {name} as {wid}"
    )
    for warning in answer.get("warnings") or []:
        ctx.say(f"  osmo warning: {warning}")
    return 0, body


def cmd_submit(ctx: Ctx, args: argparse.Namespace) -> int:
    from dig_runs.cli_sweep import submit_sweep  # it builds on submit_one: imported here, not at the top

    if args.sweep:
        return submit_sweep(ctx, args)
    if args.max_inflight is not None:
        raise UsageError("--max-inflight goes with --sweep DIR")
    code, body = submit_one(ctx, compiled_input(args.target), args)
    if ctx.json:
        print(json.dumps(body, indent=2), file=ctx.out)
    elif code == 0:
        ctx.say(f"watch: dig watch {body['run']}")
    return code
