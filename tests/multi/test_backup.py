"""A backup as docs/deploy.md describes it, taken while both servers run: `python -m lib.cli backup` (pg_dump) of the
database the two servers share, `restore` (pg_restore) into a new database, and the app reads the same tickets
there (its audit chain intact, nothing to migrate)."""

from __future__ import annotations

import subprocess
import sys

from lib import audit_chain, tickets
from lib.db import make_engine, read_session, transaction, upgrade_schema
from lib.directory import RequesterInput
from lib.queries import QueueFilter, QueueView, list_queue
from lib.tickets import TicketDraft
from lib.users import get_by_username
from tests.multi.conftest import ROOT, Database, Pair, pg_admin_url


def cli(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "lib.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def queue(engine) -> list[tuple[int, str, str]]:
    with read_session(engine) as s:
        page = list_queue(s, QueueFilter(view=QueueView.ALL), page_size=500)
    return sorted((r.id, r.summary, r.status.value) for r in page.rows)


def test_pg_dump_and_restore_of_the_shared_database(pair: Pair, tmp_path) -> None:
    with transaction(pair.engine) as s:
        tom = get_by_username(s, "tom")
        assert tom is not None
        t = tickets.create_ticket(s, actor=tom.id, draft=TicketDraft(
            summary="Backup check: scanner offline", category="Hardware", priority="Low", channel="phone",
            requester=RequesterInput(name="Cal Cole", email="cal@example.com")))
        tickets.take(s, actor=tom.id, ticket_id=t.id)
    before = queue(pair.engine)
    assert [r[1] for r in before if r[0] == t.id] == ["Backup check: scanner offline"]

    dump = tmp_path / "helpdesk.dump"
    assert "backup written to" in cli("--database-url", pair.db.url, "backup", str(dump))
    assert dump.stat().st_mode & 0o777 == 0o600  # it holds password hashes
    restored = Database(pg_admin_url())
    try:
        assert "restored" in cli("--database-url", restored.url, "restore", str(dump))
        engine = make_engine(restored.url)
        try:
            assert upgrade_schema(engine) is False  # already at the newest migration: nothing to do
            assert queue(engine) == before
            report = audit_chain.verify(engine)
            assert report.intact and report.tickets == len(before), report
        finally:
            engine.dispose()
    finally:
        restored.drop()
