"""The run record: SQLite in the user's state directory, WAL mode, versioned migrations."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Record states (not OSMO states): `submitting` is written before the submit call, so a crash
# between the call and its answer leaves a row the next command resolves with `list --label`.
SUBMITTING, SUBMITTED, NOT_SUBMITTED, UNRESOLVED, SUBMIT_FAILED = (
    "submitting",
    "submitted",
    "not_submitted",
    "unresolved",
    "submit_failed",
)

MIGRATIONS = (
    # 1: runs, their compiled files (by sha256, apart from the rows so listing never reads them), statuses
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        run_name TEXT NOT NULL UNIQUE,
        workflow_id TEXT,
        record_state TEXT NOT NULL,
        sha256 TEXT NOT NULL REFERENCES workflows(sha256),
        compile_key TEXT,
        overrides TEXT NOT NULL DEFAULT '[]',
        pool TEXT,
        priority TEXT,
        labels TEXT NOT NULL DEFAULT '{}',
        workflow_name TEXT,
        flow TEXT, usecase TEXT, board TEXT,
        output_root TEXT,
        submit_time REAL NOT NULL,
        last_status TEXT,
        last_status_time REAL,
        terminal_state TEXT,
        submitter TEXT,
        note TEXT
    );
    CREATE TABLE workflows (
        sha256 TEXT PRIMARY KEY,
        compiled BLOB NOT NULL
    );
    CREATE TABLE statuses (
        run_id INTEGER NOT NULL REFERENCES runs(id),
        time REAL NOT NULL,
        status TEXT NOT NULL,
        detail TEXT
    );
    CREATE INDEX statuses_run ON statuses(run_id, time);
    """,
    # 2: sweeps (one workflow per variant)
    """
    ALTER TABLE runs ADD COLUMN sweep_id TEXT;
    ALTER TABLE runs ADD COLUMN variant TEXT;
    CREATE INDEX runs_sweep ON runs(sweep_id);
    CREATE INDEX runs_submit_time ON runs(submit_time);
    CREATE INDEX runs_record_state ON runs(record_state);
    """,
)

COLUMNS = (
    "id",
    "run_name",
    "workflow_id",
    "record_state",
    "sha256",
    "compile_key",
    "overrides",
    "pool",
    "priority",
    "labels",
    "workflow_name",
    "flow",
    "usecase",
    "board",
    "output_root",
    "submit_time",
    "last_status",
    "last_status_time",
    "terminal_state",
    "submitter",
    "note",
    "sweep_id",
    "variant",
)


def db_path() -> Path:
    """DIG_RUNS_DB, else $DIG_STATE_DIR/runs.sqlite, else $XDG_STATE_HOME/dig/runs.sqlite (~/.local/state)."""
    if os.environ.get("DIG_RUNS_DB"):
        return Path(os.environ["DIG_RUNS_DB"]).expanduser()
    if os.environ.get("DIG_STATE_DIR"):
        return Path(os.environ["DIG_STATE_DIR"]).expanduser() / "runs.sqlite"
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state).expanduser() / "dig" / "runs.sqlite"


@dataclass(frozen=True)
class NewRun:
    """What `begin_submit` records of a run before it goes to OSMO."""

    run_name: str
    compiled: bytes  # the compiled workflow's bytes, stored once per sha256
    compile_key: str | None
    overrides: list[str]
    pool: str | None
    priority: str | None
    labels: dict[str, str]
    workflow_name: str
    choices: dict[str, str]  # flow/usecase/board as compiled
    output_root: str | None
    sweep_id: str | None = None
    variant: str | None = None


@dataclass
class Run:
    row: dict[str, Any]

    def __getattr__(self, key: str) -> Any:
        try:
            return self.row[key]
        except KeyError:
            raise AttributeError(key) from None

    @property
    def labels_dict(self) -> dict[str, str]:
        return json.loads(self.row["labels"] or "{}")


def _use_wal(db: sqlite3.Connection, timeout_s: float = 30.0) -> None:
    """Switch the record to WAL mode (persistent in the file, so usually already on).

    Changing the journal mode needs the database to itself and SQLite's busy handler does not wait for
    it: two processes opening a new record at once get "database is locked". Retry until the timeout.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class Store:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or db_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit mode; writes take BEGIN IMMEDIATE so two processes serialise instead of deadlocking.
        self.db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA busy_timeout = 30000")
        _use_wal(self.db)
        self.db.execute("PRAGMA synchronous = NORMAL")
        self.migrate()

    def close(self) -> None:
        self.db.close()

    def migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version >= len(MIGRATIONS):
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            version = self.db.execute("PRAGMA user_version").fetchone()[0]  # another process may have won
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in filter(str.strip, script.split(";")):
                    self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version = {number}")
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def _write(self, sql: str, params: tuple | dict = ()) -> sqlite3.Cursor:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            cur = self.db.execute(sql, params)
            self.db.execute("COMMIT")
            return cur
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def begin_submit(self, new: NewRun, *, now: float | None = None) -> int:
        """The row written BEFORE `osmo workflow submit` (raises sqlite3.IntegrityError on a taken name)."""
        compiled = new.compiled
        digest = hashlib.sha256(compiled).hexdigest()
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.execute(
                "INSERT OR IGNORE INTO workflows (sha256, compiled) VALUES (?, ?)", (digest, compiled)
            )
            cur = self.db.execute(
                "INSERT INTO runs (run_name, record_state, sha256, compile_key, overrides, pool, priority,"
                " labels, workflow_name, flow, usecase, board, output_root, submit_time, submitter, sweep_id, variant)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    new.run_name,
                    SUBMITTING,
                    digest,
                    new.compile_key,
                    json.dumps(new.overrides),
                    new.pool,
                    new.priority,
                    json.dumps(new.labels, sort_keys=True),
                    new.workflow_name,
                    new.choices.get("flow"),
                    new.choices.get("usecase"),
                    new.choices.get("board"),
                    new.output_root,
                    time.time() if now is None else now,
                    f"{socket.gethostname()}:{os.getpid()}",
                    new.sweep_id,
                    new.variant,
                ),
            )
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return int(cur.lastrowid or 0)

    def finish_submit(
        self,
        run_name: str,
        *,
        workflow_id: str | None,
        state: str,
        note: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> None:
        sets = "workflow_id = ?, record_state = ?, note = ?"
        params: list[Any] = [workflow_id, state, note]
        if labels is not None:
            sets += ", labels = ?"
            params.append(json.dumps(labels, sort_keys=True))
        self._write(f"UPDATE runs SET {sets} WHERE run_name = ?", (*params, run_name))
        if state == SUBMITTED:
            self.observe(run_name, "SUBMITTED", detail={"workflow_id": workflow_id})

    def observe(
        self, run_name: str, status: str, *, detail: dict | None = None, now: float | None = None
    ) -> None:
        """Record one observed status; the terminal state is kept when the status is terminal."""
        from dig_runs.signatures import is_terminal

        now = time.time() if now is None else now
        self.db.execute("BEGIN IMMEDIATE")
        try:
            row = self.db.execute("SELECT id FROM runs WHERE run_name = ?", (run_name,)).fetchone()
            if row is None:
                raise KeyError(run_name)
            self.db.execute(
                "INSERT INTO statuses (run_id, time, status, detail) VALUES (?,?,?,?)",
                (row["id"], now, status, json.dumps(detail) if detail else None),
            )
            self.db.execute(
                "UPDATE runs SET last_status = ?, last_status_time = ?,"
                " terminal_state = CASE WHEN ? THEN ? ELSE terminal_state END WHERE id = ?",
                (status, now, is_terminal(status), status, row["id"]),
            )
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def set_workflow_id(self, run_name: str, workflow_id: str) -> None:
        self._write(
            "UPDATE runs SET workflow_id = ?, terminal_state = NULL WHERE run_name = ?",
            (workflow_id, run_name),
        )

    def get(self, ref: str) -> Run | None:
        """A run by run name or workflow id."""
        cols = ", ".join(COLUMNS)
        row = self.db.execute(
            f"SELECT {cols} FROM runs WHERE run_name = ? OR workflow_id = ? ORDER BY id DESC LIMIT 1",
            (ref, ref),
        ).fetchone()
        return Run(dict(row)) if row else None

    def compiled(self, run_name: str) -> bytes:
        row = self.db.execute(
            "SELECT w.compiled FROM runs r JOIN workflows w ON w.sha256 = r.sha256 WHERE r.run_name = ?",
            (run_name,),
        ).fetchone()
        return bytes(row[0])

    def list(
        self, *, status: str | None = None, sweep: str | None = None, limit: int | None = None
    ) -> list[Run]:
        sql, params = _select(COLUMNS, status, sweep, limit)
        return [Run(dict(r)) for r in self.db.execute(sql, params)]

    def rows(
        self,
        columns: tuple[str, ...],
        *,
        status: str | None = None,
        sweep: str | None = None,
        limit: int | None = None,
    ) -> list[tuple]:
        """Plain tuples of some columns, newest first: the fast path `dig runs` lists with.

        Newest first by rowid (rows are inserted at submit time): a sequential scan of the table,
        where ordering by the submit_time index costs one random lookup per row.
        """
        assert all(c in COLUMNS or c.startswith("strftime(") for c in columns)
        sql, params = _select(columns, status, sweep, limit)
        cur = self.db.cursor()
        cur.row_factory = None
        return cur.execute(sql, params).fetchall()

    def pending(self) -> list[Run]:
        cols = ", ".join(COLUMNS)
        return [
            Run(dict(r))
            for r in self.db.execute(f"SELECT {cols} FROM runs WHERE record_state = ?", (SUBMITTING,))
        ]

    def forget(self, run_name: str) -> None:
        """Drop a record that never reached OSMO (a resumed sweep submits that variant under a new name)."""
        self._write("DELETE FROM runs WHERE run_name = ? AND record_state = ?", (run_name, NOT_SUBMITTED))

    def history(self, run_name: str) -> list[tuple[float, str]]:
        return [
            (r[0], r[1])
            for r in self.db.execute(
                "SELECT s.time, s.status FROM statuses s JOIN runs r ON r.id = s.run_id WHERE r.run_name = ?"
                " ORDER BY s.time, s.rowid",
                (run_name,),
            )
        ]


def _select(
    columns: tuple[str, ...], status: str | None, sweep: str | None, limit: int | None
) -> tuple[str, list[str]]:
    """The one run query: some columns, optionally one status and one sweep, newest first."""
    sql, params = f"SELECT {', '.join(columns)} FROM runs WHERE 1=1", []
    if status:
        sql += " AND (last_status = ? OR record_state = ?)"
        params += [status.upper(), status.lower()]
    if sweep:
        sql += " AND sweep_id = ?"
        params.append(sweep)
    sql += " ORDER BY id DESC"
    if limit:
        sql += f" LIMIT {int(limit)}"
    return sql, params
