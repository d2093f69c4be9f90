"""The queue's word-search indexes (migration 0016_queue_search): every ticket, not only resolved ones
(lib.search's indexes cover resolved tickets for suggestions), and the requesters.

* SQLite: FTS5 tables ``queue_fts`` (tickets: summary, description) and ``requester_fts`` (requesters: name,
  e-mail), external content kept in step by triggers; ``unicode61`` tokens, no stemming, prefix indexes.
* PostgreSQL: GIN indexes on ``to_tsvector('simple', ...)`` expressions of the same fields (the e-mail's
  domain and its parts are added, as the parser keeps an address whole).

:mod:`lib.queries` uses them when they exist (:func:`installed`) to find candidate tickets per word, then
checks each word literally (the same LIKE test as without an index), so both paths return the same tickets
except that, with the index, a word must start a word of the text ("pag" finds "paging", "ging" does not).
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

#: The documents, written exactly as the indexes are: the planner matches an expression index by its text.
PG_TICKET_DOC = "to_tsvector('simple'::regconfig, coalesce({t}summary, '') || ' ' || coalesce({t}description, ''))"
PG_REQUESTER_DOC = ("to_tsvector('simple'::regconfig, coalesce({r}name, '') || ' ' || coalesce({r}email, '') || ' ' || "
                    "split_part(coalesce({r}email, ''), '@', 2) || ' ' || translate(coalesce({r}email, ''), '@.-_+', '     '))")

SQLITE_UP = [
    "CREATE VIRTUAL TABLE IF NOT EXISTS queue_fts USING fts5(summary, description, content='tickets', content_rowid='id', "
    "tokenize='unicode61 remove_diacritics 0', prefix='2 3')",
    """CREATE TRIGGER IF NOT EXISTS queue_fts_ai AFTER INSERT ON tickets BEGIN
        INSERT INTO queue_fts(rowid, summary, description) VALUES (new.id, new.summary, new.description);
    END""",
    """CREATE TRIGGER IF NOT EXISTS queue_fts_ad AFTER DELETE ON tickets BEGIN
        INSERT INTO queue_fts(queue_fts, rowid, summary, description)
        VALUES ('delete', old.id, old.summary, old.description);
    END""",
    """CREATE TRIGGER IF NOT EXISTS queue_fts_au AFTER UPDATE OF summary, description ON tickets BEGIN
        INSERT INTO queue_fts(queue_fts, rowid, summary, description)
        VALUES ('delete', old.id, old.summary, old.description);
        INSERT INTO queue_fts(rowid, summary, description) VALUES (new.id, new.summary, new.description);
    END""",
    "INSERT INTO queue_fts(queue_fts) VALUES ('rebuild')",
    "CREATE VIRTUAL TABLE IF NOT EXISTS requester_fts USING fts5(name, email, content='requesters', content_rowid='id', "
    "tokenize='unicode61 remove_diacritics 0', prefix='2 3')",
    """CREATE TRIGGER IF NOT EXISTS requester_fts_ai AFTER INSERT ON requesters BEGIN
        INSERT INTO requester_fts(rowid, name, email) VALUES (new.id, new.name, new.email);
    END""",
    """CREATE TRIGGER IF NOT EXISTS requester_fts_ad AFTER DELETE ON requesters BEGIN
        INSERT INTO requester_fts(requester_fts, rowid, name, email) VALUES ('delete', old.id, old.name, old.email);
    END""",
    """CREATE TRIGGER IF NOT EXISTS requester_fts_au AFTER UPDATE OF name, email ON requesters BEGIN
        INSERT INTO requester_fts(requester_fts, rowid, name, email) VALUES ('delete', old.id, old.name, old.email);
        INSERT INTO requester_fts(rowid, name, email) VALUES (new.id, new.name, new.email);
    END""",
    "INSERT INTO requester_fts(requester_fts) VALUES ('rebuild')",
]
SQLITE_DOWN = [
    *(f"DROP TRIGGER IF EXISTS {t}" for t in ("queue_fts_ai", "queue_fts_ad", "queue_fts_au", "requester_fts_ai",
                                              "requester_fts_ad", "requester_fts_au")),
    "DROP TABLE IF EXISTS queue_fts",
    "DROP TABLE IF EXISTS requester_fts",
]
POSTGRES_UP = [
    f"CREATE INDEX IF NOT EXISTS ix_tickets_queue_search ON tickets USING gin ({PG_TICKET_DOC.format(t='')})",
    f"CREATE INDEX IF NOT EXISTS ix_requesters_search ON requesters USING gin ({PG_REQUESTER_DOC.format(r='')})",
]
POSTGRES_DOWN = ["DROP INDEX IF EXISTS ix_tickets_queue_search", "DROP INDEX IF EXISTS ix_requesters_search"]


def statements(dialect: str, *, up: bool = True) -> list[str]:
    if dialect == "sqlite":
        return SQLITE_UP if up else SQLITE_DOWN
    return POSTGRES_UP if up else POSTGRES_DOWN


def install(conn: Connection) -> None:
    """Create the indexes on this connection (the migration's upgrade; also for a database being measured)."""
    for sql in statements(conn.dialect.name):
        conn.execute(text(sql))


def uninstall(conn: Connection) -> None:
    for sql in statements(conn.dialect.name, up=False):
        conn.execute(text(sql))


_INSTALLED: dict[str, bool] = {}


def installed(conn: Connection | Engine, *, refresh: bool = False) -> bool:
    """Whether this database has the indexes (asked once per database and process)."""
    engine = conn if isinstance(conn, Engine) else conn.engine
    key = engine.url.render_as_string(hide_password=True)
    if refresh or key not in _INSTALLED:
        sql = ("SELECT count(*) FROM sqlite_master WHERE name IN ('queue_fts', 'requester_fts')"
               if engine.dialect.name == "sqlite" else
               "SELECT (to_regclass('ix_tickets_queue_search') IS NOT NULL)::int "
               "+ (to_regclass('ix_requesters_search') IS NOT NULL)::int")
        if isinstance(conn, Connection):  # the caller's connection: a second one could wait on its write lock
            _INSTALLED[key] = conn.execute(text(sql)).scalar() == 2
        else:
            with engine.connect() as c:
                _INSTALLED[key] = c.execute(text(sql)).scalar() == 2
    return _INSTALLED[key]
