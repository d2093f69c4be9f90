"""Owner-only file modes: backups of both kinds, a restored SQLite database and ``secure_sqlite_file``.

Run under a permissive umask (022, the usual default), where a plain ``open`` would make 0644 files."""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from lib.cli import main
from lib.db import make_engine
from lib.filemodes import create_private, make_private, secure_sqlite_file
from lib.transfer.backup import backup, restore
from tests.conftest import fresh_sqlite, make_staff, reset_postgres


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_sqlite_backup_is_owner_only_and_leaves_no_part_file(sqlite_engine, tmp_path) -> None:
    make_staff(sqlite_engine)
    folder = tmp_path / "backups"
    folder.mkdir()
    target = folder / "helpdesk-2026-12-01.sqlite3"
    size = backup(sqlite_engine, target)
    assert size > 0 and mode(target) == 0o600
    assert sorted(p.name for p in folder.iterdir()) == [target.name]
    con = sqlite3.connect(target)
    try:
        assert con.execute("SELECT count(*) FROM users").fetchone()[0] == 4
    finally:
        con.close()


def test_sqlite_backup_through_the_cli(sqlite_engine, tmp_path) -> None:
    target = tmp_path / "cli-backup.sqlite3"
    url = sqlite_engine.url.render_as_string(hide_password=False)
    assert main(["--database-url", url, "backup", str(target), "--quiet"]) == 0
    assert mode(target) == 0o600


def test_restore_makes_the_database_owner_only(sqlite_engine, sqlite_template, tmp_path) -> None:
    saved = tmp_path / "saved.sqlite3"
    backup(sqlite_engine, saved)
    os.chmod(saved, 0o644)  # a backup copied around with a loose mode: the restored database is still private
    # into a new file
    fresh = tmp_path / "new" / "helpdesk.sqlite3"
    fresh.parent.mkdir()
    engine = make_engine(f"sqlite:///{fresh}")
    try:
        restore(engine, saved)
        for p in (fresh, Path(f"{fresh}-wal"), Path(f"{fresh}-shm")):
            if p.exists():
                assert mode(p) == 0o600, p
    finally:
        engine.dispose()
    # over an existing database that was world-readable
    other = tmp_path / "other"
    other.mkdir()
    existing = fresh_sqlite(sqlite_template, other)
    db_file = Path(existing.url.database or "")
    os.chmod(db_file, 0o644)
    try:
        restore(existing, saved, force=True)
        assert mode(db_file) == 0o600
        for side in ("-wal", "-shm"):
            p = Path(f"{db_file}{side}")
            if p.exists():
                assert mode(p) == 0o600, p
    finally:
        existing.dispose()


def test_postgres_backup_is_owner_only(pg_engine, tmp_path) -> None:
    if shutil.which("pg_dump") is None:
        pytest.skip("pg_dump not installed")
    reset_postgres(pg_engine)
    target = tmp_path / "helpdesk.dump"
    size = backup(pg_engine, target)
    assert size > 0 and mode(target) == 0o600
    assert target.read_bytes()[:5] == b"PGDMP"  # pg_dump's custom format, written into the 0600 file
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]


def test_failed_postgres_backup_leaves_nothing(pg_engine, tmp_path, monkeypatch) -> None:
    from lib.transfer import backup as backup_module

    monkeypatch.setattr(backup_module, "_tool", lambda name: "/bin/false")
    with pytest.raises(backup_module.BackupError):
        backup(pg_engine, tmp_path / "x.dump")
    assert list(tmp_path.iterdir()) == []


def test_secure_sqlite_file(tmp_path) -> None:
    db = tmp_path / "helpdesk.sqlite3"
    assert secure_sqlite_file(db) is None and not db.exists()  # nothing there: nothing to do
    sides = [Path(f"{db}{s}") for s in ("-wal", "-shm", "-journal")]
    for p in (db, *sides):
        p.write_bytes(b"")
        os.chmod(p, 0o644)
    secure_sqlite_file(db)
    assert [mode(p) for p in (db, *sides)] == [0o600] * 4
    unrelated = tmp_path / "notes.txt"
    unrelated.write_text("x")
    secure_sqlite_file(str(db))
    assert mode(unrelated) == 0o644


def test_secure_sqlite_file_can_create_the_database_private(tmp_path) -> None:
    db = tmp_path / "new.sqlite3"
    secure_sqlite_file(db, create=True)
    assert db.exists() and db.stat().st_size == 0 and mode(db) == 0o600
    engine = make_engine(f"sqlite:///{db}")  # SQLite takes the empty file as a new database ...
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
            conn.exec_driver_sql("INSERT INTO t VALUES (1)")
        for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):  # ... and gives its WAL files the same mode
            assert p.exists() and mode(p) == 0o600, p
    finally:
        engine.dispose()
    secure_sqlite_file(db, create=True)  # an existing database is left as it is, apart from the mode
    con = sqlite3.connect(db)
    try:
        assert con.execute("SELECT x FROM t").fetchone() == (1,)
    finally:
        con.close()


def test_create_private_refuses_an_existing_file_or_link(tmp_path) -> None:
    existing = tmp_path / "there"
    existing.write_text("keep me")
    with pytest.raises(FileExistsError):
        create_private(existing)
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(FileExistsError):
        create_private(link)
    assert existing.read_text() == "keep me" and not (tmp_path / "elsewhere").exists()


def test_make_private_skips_what_is_not_a_regular_file(tmp_path) -> None:
    folder = tmp_path / "dir"
    folder.mkdir(mode=0o755)
    assert make_private(folder) is False and mode(folder) == 0o755
    assert make_private(tmp_path / "missing") is False
    f = tmp_path / "f"
    f.write_text("x")
    os.chmod(f, 0o640)
    assert make_private(f) is True and mode(f) == 0o600
    assert make_private(f) is False
