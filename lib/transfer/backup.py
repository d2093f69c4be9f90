"""``backup PATH`` and ``restore PATH``.

SQLite: the online backup API (``sqlite3.Connection.backup``), page by page, while the app keeps
running; the copy is a single self-contained file (rollback journal, not WAL). Restoring copies a
backup into the live database file with the same API, so open connections see either the old or the
new database, never a half-copied file; a database that holds tickets is only replaced with ``force``.

PostgreSQL: ``pg_dump -Fc`` and ``pg_restore --clean --if-exists --no-owner`` (the PostgreSQL client
tools must be installed; the password goes through the environment, never the command line).

Backups hold everything the database holds (password hashes included), so they are written owner-only
(mode 0600): the file is created with that mode before a byte goes in. A restored SQLite database gets the
same mode (lib.filemodes).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

from lib.errors import HelpdeskError, ValidationError
from lib.filemodes import PRIVATE, secure_sqlite_file

Progress = Callable[[int, int | None], None] | None
PAGES_PER_STEP = 4096


class BackupError(HelpdeskError):
    pass


def backup(engine: Engine, path: Path, *, progress: Progress = None) -> int:
    """Write a backup of the database to ``path`` (which must not exist yet); return its size in bytes."""
    path = Path(path)
    if path.exists():
        raise ValidationError({"path": f"{path} exists already; choose a new file name"})
    if not path.parent.is_dir():
        raise ValidationError({"path": f"folder {path.parent} does not exist"})
    if engine.dialect.name == "sqlite":
        return _sqlite_backup(_sqlite_file(engine), path, progress)
    if engine.dialect.name == "postgresql":
        return _pg_dump(engine, path, progress)
    raise BackupError(f"backups of {engine.dialect.name} databases are not supported")


def restore(engine: Engine, path: Path, *, force: bool = False) -> None:
    """Replace the database's contents with the backup at ``path``; refused over tickets unless ``force``."""
    path = Path(path)
    if not path.is_file():
        raise ValidationError({"path": f"{path} is not a file"})
    tickets = _ticket_count(engine)
    if tickets and not force:
        raise ValidationError({"--force": f"the database holds {tickets:,} tickets; restoring replaces them all. "
                                          "Pass --force if that is what you want (back it up first)"})
    if engine.dialect.name == "sqlite":
        _sqlite_restore(engine, path)
    elif engine.dialect.name == "postgresql":
        _pg_restore(engine, path)
    else:
        raise BackupError(f"restoring {engine.dialect.name} databases is not supported")
    engine.dispose()  # no pooled connection keeps a view of the old database
    from lib.db import upgrade_schema

    upgrade_schema(engine)  # a backup from an older release is brought up to date


def _private_part(target: Path) -> Path:
    """A new, empty, owner-only (0600) file beside ``target`` to write the backup into before it takes the
    final name (a unique name: a file left by an interrupted run is never reused)."""
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        os.fchmod(fd, PRIVATE)
    finally:
        os.close(fd)
    return Path(name)


def _ticket_count(engine: Engine) -> int:
    with engine.connect() as conn:
        if not inspect(conn).has_table("tickets"):
            return 0
        return int(conn.execute(text("SELECT count(*) FROM tickets")).scalar() or 0)


# --- SQLite -------------------------------------------------------------------------------------------


def _sqlite_file(engine: Engine) -> Path:
    database = engine.url.database or ""
    if not database or database == ":memory:" or database.startswith("file:"):
        raise BackupError("this SQLite database is not a plain file; nothing to back up")
    return Path(database)


def _sqlite_backup(source: Path, target: Path, progress: Progress) -> int:
    tmp = _private_part(target)  # SQLite takes the empty file as a new database and keeps its mode
    try:
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
        try:
            dst = sqlite3.connect(tmp)
            try:
                def step(_status: int, remaining: int, total: int) -> None:
                    if progress:
                        progress(total - remaining, total)

                src.backup(dst, pages=PAGES_PER_STEP, progress=step)
                dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
                check = dst.execute("PRAGMA quick_check").fetchone()[0]
                if check != "ok":
                    raise BackupError(f"the copy failed its check: {check}")
            finally:
                dst.close()
        finally:
            src.close()
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target.stat().st_size


def _check_sqlite_backup(path: Path) -> None:
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            check = con.execute("PRAGMA quick_check").fetchone()[0]
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        raise ValidationError({"path": f"{path} is not a SQLite database ({exc})"}) from None
    if not {"tickets", "ticket_events", "alembic_version"} <= names:
        raise ValidationError({"path": f"{path} is not a help desk backup (no tickets tables in it)"})
    if check != "ok":
        raise ValidationError({"path": f"{path} is damaged: {check}"})


def _sqlite_restore(engine: Engine, path: Path) -> None:
    target = _sqlite_file(engine)
    if target.resolve() == path.resolve():
        raise ValidationError({"path": "that is the database itself"})
    _check_sqlite_backup(path)
    engine.dispose()
    secure_sqlite_file(target, create=True)  # owner-only before the backup's contents go in
    src = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        dst = sqlite3.connect(target, timeout=30)
        try:
            dst.execute("PRAGMA busy_timeout=30000")
            src.backup(dst, pages=PAGES_PER_STEP)
            dst.execute("PRAGMA journal_mode=WAL")
        finally:
            dst.close()
    finally:
        src.close()
    secure_sqlite_file(target)  # and the -wal and -shm files WAL mode may have added


# --- PostgreSQL ---------------------------------------------------------------------------------------


def _pg_env(engine: Engine) -> tuple[str, dict[str, str]]:
    """A libpq connection string without the password, and the environment that carries it."""
    url = engine.url
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    plain = url.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} was not found: install the PostgreSQL client tools (Debian: apt-get install "
                          f"postgresql-client, the same major version as the server) or use your provider's "
                          f"backups; see docs/cli.md")
    return found


def _run(args: list[str], env: dict[str, str], what: str) -> None:
    proc = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise BackupError(f"{what} failed (exit {proc.returncode}): {' / '.join(detail[-3:]) or 'no message'}")


def _pg_dump(engine: Engine, path: Path, progress: Progress) -> int:
    dsn, env = _pg_env(engine)
    tool = _tool("pg_dump")
    tmp = _private_part(path)  # pg_dump truncates and fills the file; its mode stays 0600
    if progress:
        progress(0, None)
    try:
        _run([tool, "--format=custom", "--no-owner", f"--file={tmp}", f"--dbname={dsn}"], env, "pg_dump")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    size = path.stat().st_size
    if progress:
        progress(size, size)
    return size


def _pg_restore(engine: Engine, path: Path) -> None:
    dsn, env = _pg_env(engine)
    engine.dispose()
    _run([_tool("pg_restore"), "--clean", "--if-exists", "--no-owner", "--single-transaction", f"--dbname={dsn}",
          str(path)], env, "pg_restore")
