"""Read side: the queue (filters, sort, paging, counts), a ticket with its timeline, lookups.

Everything here returns small plain rows built in SQL; nothing loads a whole table.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Select, and_, func, or_, select, text
from sqlalchemy.orm import Session, aliased

from lib import clock
from lib.models import Attachment, Category, Requester, Ticket, TicketEvent, User
from lib.search import clean_search_text
from lib.workflow import OPEN_STATUSES, RESOLVED_STATUSES, Channel, Priority, Status


class QueueView(enum.StrEnum):
    MY_OPEN = "My open tickets"
    UNASSIGNED = "Unassigned"
    ALL_OPEN = "All open"
    AT_RISK = "Breaching or at risk"
    AWAITING = "Resolved, awaiting confirmation"
    RECENTLY_CLOSED = "Recently closed"
    ALL = "All tickets"
    FOLLOW_UPS = "Follow-ups due"  # tickets with a follow-up of mine due now (lib.followups), open or closed


class Sort(enum.StrEnum):
    PRIORITY = "Priority, then oldest"
    NEWEST = "Newest first"
    OLDEST = "Oldest first"
    UPDATED = "Recently updated"
    DUE = "Due soonest"


RECENTLY_CLOSED_DAYS = 30
#: The views of open tickets only.
OPEN_VIEWS = frozenset({QueueView.MY_OPEN, QueueView.UNASSIGNED, QueueView.ALL_OPEN, QueueView.AT_RISK})


@dataclass
class QueueFilter:
    view: QueueView = QueueView.ALL_OPEN
    me: int | None = None
    statuses: list[Status] = field(default_factory=list)
    priorities: list[Priority] = field(default_factory=list)
    category_ids: list[int] = field(default_factory=list)
    assignee_ids: list[int] = field(default_factory=list)
    include_unassigned: bool = False
    channels: list[Channel] = field(default_factory=list)
    text: str = ""
    created_from: datetime | None = None
    created_to: datetime | None = None
    now: datetime | None = None


@dataclass(frozen=True)
class QueueRow:
    id: int
    summary: str
    status: Status
    priority: Priority
    category: str
    channel: Channel
    assignee: str | None
    assignee_id: int | None
    requester: str | None
    created_at: datetime
    updated_at: datetime
    acknowledged_at: datetime | None
    first_response_at: datetime | None
    response_due_at: datetime | None
    response_risk_at: datetime | None
    resolution_due_at: datetime | None
    resolution_risk_at: datetime | None
    resolution_breached_at: datetime | None
    closed_at: datetime | None
    version: int
    has_policy: bool


@dataclass(frozen=True)
class QueuePage:
    rows: list[QueueRow]
    total: int
    page: int
    page_size: int
    exact: int | None = None  # the ticket a typed number jumped to (the other filters were not applied)
    capped: bool = False  # a search matched more than SEARCH_NEWEST tickets: the rows are the newest of them

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


_REF = re.compile(r"^\s*(?:[a-z]{1,5}-)?0*(\d{1,9})\s*$", re.IGNORECASE)


def parse_ref(text: str) -> int | None:
    """'HD-000123', 'hd-123', '123' -> 123 (any prefix of letters: numbers written before a prefix change still work)."""
    m = _REF.match(text or "")
    return int(m.group(1)) if m else None


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


#: How many words of the search text are used (the rest are ignored).
MAX_SEARCH_WORDS = 8


def search_words(text: str | None) -> list[str]:
    """The words of a queue search: the text split at spaces, lower-cased and NFC, at most MAX_SEARCH_WORDS.

    A word is matched as the literal characters typed (``100%``, ``db_01``, ``NEAR(`` and ``"`` are plain
    text), so nothing typed can change how the query is built. Raises :class:`lib.search.SearchTextError`
    for a control character (tab and line breaks are spaces)."""
    cleaned = unicodedata.normalize("NFC", clean_search_text(text))
    words = list(dict.fromkeys(w.lower() for w in cleaned.split()))
    return words[:MAX_SEARCH_WORDS]


def _literal(word: str) -> ColumnElement[bool]:
    """The word as typed, inside the summary, the description, or the requester's name or e-mail."""
    like = f"%{_escape_like(word)}%"
    requester_match = select(Requester.id).where(
        or_(func.lower(Requester.name).like(like, escape="\\"), Requester.email.like(like, escape="\\")))
    return or_(
        func.lower(Ticket.summary).like(like, escape="\\"),
        func.lower(Ticket.description).like(like, escape="\\"),
        Ticket.requester_id.in_(requester_match),
    )


_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)  # what FTS5's unicode61 tokenizer keeps: letters and digits


def _tsquery(lexemes: list[str]) -> str:
    """A to_tsquery text: every lexeme quoted (no operator can get in), each a prefix, all required."""
    return " & ".join("'" + lx.replace("\\", "\\\\").replace("'", "''") + "':*" for lx in lexemes)


#: A slice of ticket numbers: above the first (None: from the first ticket), up to and including the second.
Span = tuple[int | None, int]
#: Per search word (PostgreSQL): its to_tsquery text and the ids of the requesters that hold it.
WordSets = dict[str, tuple[str | None, list[int]]]


def _pg_word_sets(session: Session, words: list[str]) -> WordSets:
    """PostgreSQL: per word, its to_tsquery text (None for a word of symbols only) and the ids of the requesters
    whose name or address holds it, looked up once per search (every window of newest_matches reuses them).

    The requesters are read through their word index with sequential scans switched off for that one statement:
    on a few thousand requesters the planner prefers reading them all, and computing each one's document costs
    about 30 ms a word."""
    from lib.queue_index import PG_REQUESTER_DOC

    rows = session.execute(text("SELECT w, tsvector_to_array(to_tsvector('simple'::regconfig, w)) "
                                "FROM unnest(CAST(:words AS text[])) AS w"), {"words": words}).all()
    lexemes = {w: list(lx or []) for w, lx in rows}
    out: WordSets = {}
    # (SET LOCAL ends with the transaction: were a read to fail here, the rollback would undo it too)
    session.execute(text("SET LOCAL enable_seqscan = off"))
    for word in words:
        if not lexemes.get(word):
            out[word] = (None, [])
            continue
        query = _tsquery(lexemes[word])
        ids = session.scalars(text(f"SELECT qr.id FROM requesters qr WHERE {PG_REQUESTER_DOC.format(r='qr.')} "
                                   "@@ to_tsquery('simple'::regconfig, :q)"), {"q": query}).all()
        out[word] = (query, list(ids))
    session.execute(text("SET LOCAL enable_seqscan TO DEFAULT"))
    return out


def _candidates(session: Session, words: list[str], span: Span | None = None, word_sets: WordSets | None = None,
                open_only: bool = False) -> tuple[ColumnElement[bool] | None, list[bool]]:
    """The tickets the word-search index (lib.queue_index) says may hold every word, as one condition, and
    per word whether the index could help (not for a word of symbols only, such as ``%``).

    The per-word sets (ticket text, or the requester's name and e-mail) are intersected inside the database
    before any ticket row is read: PostgreSQL gets them as ``id = ANY(ARRAY(...))`` (an index scan of the
    primary key; as a plain ``IN`` the planner hashed them and read every ticket's text), SQLite as ``IN``.
    With ``span`` (above, up to), only tickets numbered in it are candidates (the range is applied inside each
    index read, so a slice of the newest tickets costs what it holds, not what the whole desk holds). With
    ``open_only`` (a view of open tickets), PostgreSQL combines each word's index with the open-ticket index
    before reading any ticket (a common word matches thousands of closed tickets)."""
    from lib.queue_index import PG_TICKET_DOC

    parts: list[str] = []
    params: dict[str, object] = {}
    used = [False] * len(words)
    fts_range, ticket_range = "", ""
    if span is not None:
        above, upto = span
        params["upto"] = int(upto)
        fts_range, ticket_range = " AND rowid <= :upto", " AND qt.id <= :upto"
        if above is not None:
            params["above"] = int(above)
            fts_range, ticket_range = fts_range + " AND rowid > :above", ticket_range + " AND qt.id > :above"
    sqlite = session.get_bind().dialect.name == "sqlite"
    if open_only and not sqlite:
        ticket_range += " AND qt.is_open IS TRUE"
    found = {} if sqlite else (word_sets if word_sets is not None else _pg_word_sets(session, words))
    for i, word in enumerate(words):
        if sqlite:
            tokens = [t.lower() for t in _TOKEN.findall(word)]
            if not tokens:
                continue
            params[f"w{i}"] = " AND ".join(f'"{t}"*' for t in tokens)  # letters and digits: nothing to escape
            parts.append(f"SELECT id FROM (SELECT rowid AS id FROM queue_fts WHERE queue_fts MATCH :w{i}{fts_range} "
                         f"UNION ALL SELECT qt.id FROM tickets qt WHERE qt.requester_id IN "
                         f"(SELECT rowid FROM requester_fts WHERE requester_fts MATCH :w{i}){ticket_range})")
        else:
            query, requesters = found[word]
            if query is None:
                continue
            params[f"w{i}"], params[f"r{i}"] = query, requesters
            parts.append(f"SELECT id FROM (SELECT qt.id FROM tickets qt WHERE {PG_TICKET_DOC.format(t='qt.')} @@ "
                         f"to_tsquery('simple'::regconfig, :w{i}){ticket_range} UNION ALL SELECT qt.id FROM tickets "
                         f"qt WHERE qt.requester_id = ANY(CAST(:r{i} AS integer[])){ticket_range}) AS c{i}")
        used[i] = True
    if not parts:
        return None, used
    both = " INTERSECT ".join(parts)
    cond = f"tickets.id IN ({both})" if sqlite else f"tickets.id = ANY(ARRAY({both}))"
    return text(cond).bindparams(**params), used  # type: ignore[return-value]


def text_conditions(text_: str | None, session: Session | None = None, *, span: Span | None = None,
                    word_sets: WordSets | None = None, open_only: bool = False) -> list[ColumnElement[bool]]:
    """Every word, in any order, in the summary, the description, the requester's name or e-mail address,
    or (a number) the ticket number: one condition per word (``paging 07`` finds "Ticket 07 paging").

    Words match literally (``100%`` does not find "1000"). Where the word-search index exists
    (lib.queue_index, given ``session``) it picks the candidate tickets first, and a word must then start a
    word of the text (``pag`` finds "paging"); without it a word may sit anywhere inside a word. With
    ``span`` (above, up to), only tickets numbered in it match (a slice of the newest: see newest_matches)."""
    words = search_words(text_)
    if not words:
        return []
    from lib.queue_index import installed

    candidates, used = None, [False] * len(words)
    if session is not None and installed(session.connection()):
        candidates, used = _candidates(session, words, span, word_sets, open_only)
    conds: list[ColumnElement[bool]] = []
    if span is not None:
        conds.append(Ticket.id <= span[1])
        if span[0] is not None:
            conds.append(Ticket.id > span[0])
    numbers = [int(w) for w in words if w.isascii() and w.isdigit() and len(w) <= 9]
    for word, indexed in zip(words, used, strict=True):
        if indexed and not numbers and word.isascii() and word.isalnum():
            # a word of ASCII letters and digits that starts a word of the text is in the text: the index's
            # answer is the literal answer, and the ticket's text need not be read again
            continue
        cond = _literal(word)
        if word.isascii() and word.isdigit() and len(word) <= 9:
            cond = or_(Ticket.id == int(word), cond)
        conds.append(cond)
    if candidates is not None:
        # a number typed among the words may be the ticket's own number rather than a word of its text
        conds.append(or_(candidates, Ticket.id.in_(numbers)) if numbers else candidates)
    return conds


def _where(f: QueueFilter, now: datetime, session: Session | None = None, *, words: bool = True) -> list:
    """The view's and the filters' conditions, and (``words``) the search words' (text_conditions)."""
    conds: list = []
    if f.view is QueueView.MY_OPEN:
        conds += [Ticket.assignee_id == (f.me if f.me is not None else -1), Ticket.is_open.is_(True)]
    elif f.view is QueueView.UNASSIGNED:
        conds += [Ticket.is_open.is_(True), Ticket.assignee_id.is_(None)]
    elif f.view is QueueView.ALL_OPEN:
        conds.append(Ticket.is_open.is_(True))
    elif f.view is QueueView.AT_RISK:
        conds += [
            Ticket.is_open.is_(True),
            or_(
                Ticket.resolution_risk_at <= now,
                and_(Ticket.response_risk_at <= now, Ticket.acknowledged_at.is_(None),
                     Ticket.first_response_at.is_(None)),
            ),
            Ticket.status.in_([s.value for s in OPEN_STATUSES]),
        ]
    elif f.view is QueueView.AWAITING:
        conds.append(Ticket.status.in_([s.value for s in RESOLVED_STATUSES]))
    elif f.view is QueueView.RECENTLY_CLOSED:
        conds += [Ticket.closed_at >= now - timedelta(days=RECENTLY_CLOSED_DAYS)]
    elif f.view is QueueView.FOLLOW_UPS:
        from lib.followups import due_ticket_ids

        conds.append(Ticket.id.in_(due_ticket_ids(f.me if f.me is not None else -1, now)))
    if f.statuses:
        conds.append(Ticket.status.in_([Status(s).value for s in f.statuses]))
    if f.priorities:
        conds.append(Ticket.priority.in_([int(p) for p in f.priorities]))
    if f.category_ids:
        conds.append(Ticket.category_id.in_(f.category_ids))
    if f.assignee_ids or f.include_unassigned:
        parts = []
        if f.assignee_ids:
            parts.append(Ticket.assignee_id.in_(f.assignee_ids))
        if f.include_unassigned:
            parts.append(Ticket.assignee_id.is_(None))
        conds.append(or_(*parts))
    if f.channels:
        conds.append(Ticket.channel.in_([Channel(c).value for c in f.channels]))
    if f.created_from is not None:
        conds.append(Ticket.created_at >= f.created_from)
    if f.created_to is not None:
        conds.append(Ticket.created_at < f.created_to)
    if words:
        conds += text_conditions(f.text, session, open_only=f.view in OPEN_VIEWS)
    return conds


def _order(sort: Sort, view: QueueView) -> list:
    if view is QueueView.RECENTLY_CLOSED and sort is Sort.PRIORITY:
        return [Ticket.closed_at.desc(), Ticket.id.desc()]
    return {
        Sort.PRIORITY: [Ticket.priority.desc(), Ticket.created_at.asc(), Ticket.id.asc()],
        Sort.NEWEST: [Ticket.created_at.desc(), Ticket.id.desc()],
        Sort.OLDEST: [Ticket.created_at.asc(), Ticket.id.asc()],
        Sort.UPDATED: [Ticket.updated_at.desc(), Ticket.id.desc()],
        Sort.DUE: [Ticket.resolution_due_at.is_(None), Ticket.resolution_due_at.asc(), Ticket.id.asc()],
    }[sort]


def _queue_select() -> Select:
    assignee = aliased(User)
    return (
        select(
            Ticket.id, Ticket.summary, Ticket.status, Ticket.priority, Category.name.label("category"),
            Ticket.channel, assignee.name.label("assignee"), Ticket.assignee_id,
            Requester.name.label("requester"), Ticket.created_at, Ticket.updated_at, Ticket.acknowledged_at,
            Ticket.first_response_at, Ticket.response_due_at, Ticket.response_risk_at, Ticket.resolution_due_at,
            Ticket.resolution_risk_at, Ticket.resolution_breached_at, Ticket.closed_at, Ticket.version,
            Ticket.sla_policy.is_not(None).label("has_policy"),
        )
        .join(Category, Category.id == Ticket.category_id)
        .outerjoin(assignee, assignee.id == Ticket.assignee_id)
        .outerjoin(Requester, Requester.id == Ticket.requester_id)
    )


def _rows(session: Session, ids: list[int]) -> list[QueueRow]:
    """Display rows for ``ids``, in that order (one primary-key lookup)."""
    if not ids:
        return []
    found = {r.id: r for r in session.execute(_queue_select().where(Ticket.id.in_(ids)))}
    rows: list[QueueRow] = []
    for tid in ids:
        r = found.get(tid)
        if r is None:  # deleted between the two reads
            continue
        rows.append(QueueRow(
            id=r.id, summary=r.summary, status=Status(r.status), priority=Priority(r.priority),
            category=r.category, channel=Channel(r.channel), assignee=r.assignee, assignee_id=r.assignee_id,
            requester=r.requester, created_at=r.created_at, updated_at=r.updated_at,
            acknowledged_at=r.acknowledged_at, first_response_at=r.first_response_at,
            response_due_at=r.response_due_at, response_risk_at=r.response_risk_at,
            resolution_due_at=r.resolution_due_at, resolution_risk_at=r.resolution_risk_at,
            resolution_breached_at=r.resolution_breached_at, closed_at=r.closed_at, version=r.version,
            has_policy=bool(r.has_policy),
        ))
    return rows


def exact_ticket(session: Session, text: str | None) -> int | None:
    """The ticket a search text names by number (``HD-000123``, ``hd-123``, ``123``), when it exists."""
    ref = parse_ref(clean_search_text(text))
    if ref is None:
        return None
    return session.scalar(select(Ticket.id).where(Ticket.id == ref))


def list_queue(session: Session, f: QueueFilter, *, sort: Sort = Sort.PRIORITY, page: int = 0,
               page_size: int = 50, with_total: bool = True) -> QueuePage:
    """One page of the queue and the total matching. Default: open tickets, highest priority, oldest first.

    A search text that is a ticket number of an existing ticket jumps to it: the page holds that ticket
    alone, whatever the other filters, and ``exact`` is set (a number that names no ticket is searched as
    a word). A search shows its newest SEARCH_NEWEST matches at most, with their exact count (``capped`` when
    more match), whatever ``with_total``. Raises :class:`lib.search.SearchTextError` (a ValueError) when
    ``f.text`` holds a control character."""
    now = f.now or clock.now()
    page = max(0, int(page))
    page_size = max(1, min(int(page_size), 500))
    exact = exact_ticket(session, f.text)
    if exact is not None:
        return QueuePage(rows=_rows(session, [exact]), total=1, page=0, page_size=page_size, exact=exact)
    if f.text.strip() and search_words(f.text):
        return _search_page(session, f, now, sort=sort, page=page, page_size=page_size)
    conds = _where(f, now, session)
    # Page over ids first (index-only), then join the display columns for just those rows.
    ids_stmt = select(Ticket.id).where(*conds).order_by(*_order(sort, f.view)).offset(page * page_size).limit(page_size)
    rows = _rows(session, list(session.scalars(ids_stmt)))
    total = len(rows)
    if with_total:
        total = session.scalar(select(func.count()).select_from(Ticket).where(*conds)) or 0
    return QueuePage(rows=rows, total=total, page=page, page_size=page_size)


#: A search shows at most this many matches: the newest (highest numbers), in the sort chosen. More words or
#: a filter narrow it; the page says when a search was cut.
SEARCH_NEWEST = 1_000
#: The first slice of newest tickets a search looks in; the next slices are sized from the matches found so far.
SEARCH_WINDOW = 20_000


def newest_matches(session: Session, f: QueueFilter, now: datetime, *, limit: int = SEARCH_NEWEST,
                   window: int = SEARCH_WINDOW) -> tuple[list[int], bool]:
    """The ids of the newest ``limit`` tickets matching the view, the filters and the search words, newest
    first, and whether more match.

    The search reads slices of ticket numbers from the newest back: the newest ``window`` tickets first, then a
    slice sized to hold the matches still wanted at the rate found so far (at most eight times what has been
    read; eight times when nothing matched yet), until it holds more than ``limit`` matches or reaches the first
    ticket. On PostgreSQL the third slice is all the rest (each of its slices reads every word's whole entry in
    the word index again, where SQLite's index seeks to the slice); a view of open tickets is read at once on
    either engine. A common word costs what its newest thousand matches cost, not what a million tickets
    hold; a rare one ends with a read of everything older (few matches: cheap). Each slice's range is applied
    inside the word indexes (lib.queue_index), and no ticket is read twice."""
    from lib.queue_index import installed

    top = session.scalar(select(func.max(Ticket.id))) or 0
    postgres = session.get_bind().dialect.name == "postgresql"
    word_sets = None
    if postgres and installed(session.connection()):
        word_sets = _pg_word_sets(session, search_words(f.text))
    if postgres:
        # each slice is a small read: starting parallel workers for it costs more than it saves (10-20 ms a read)
        session.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))
    view = _where(f, now, session, words=False)  # built once (the follow-ups view reads the database for it)
    open_only = f.view in OPEN_VIEWS
    found: list[int] = []
    slices = 0
    upto, width = top, max(1, int(window))
    if open_only:
        # one read: open tickets are a few percent of a desk's history, so their matches are few whatever the
        # word (PostgreSQL combines each word's index with the open-ticket index before reading any ticket)
        width = top
    while True:
        above = upto - width if upto - width > 0 else None
        want = limit + 1 - len(found)
        in_slice = text_conditions(f.text, session, span=(above, upto), word_sets=word_sets, open_only=open_only)
        found += session.scalars(select(Ticket.id).where(*view, *in_slice).order_by(Ticket.id.desc()).limit(want))
        if len(found) > limit or above is None:
            break
        read = top - above
        rate = len(found) / read
        need = limit + 1 - len(found)
        width = 8 * read if rate == 0 else max(window, min(8 * read, int(need / rate * 1.25) + 1))
        slices += 1
        if postgres and slices >= 2:
            width = above  # all the rest: each slice reads every word's whole entry in the index again
        upto = above
    if postgres:
        session.execute(text("SET LOCAL max_parallel_workers_per_gather TO DEFAULT"))
    return found[:limit], len(found) > limit


def _search_page(session: Session, f: QueueFilter, now: datetime, *, sort: Sort, page: int,
                 page_size: int) -> QueuePage:
    """One page of a search: the newest matches (newest_matches), sorted as chosen."""
    postgres = session.get_bind().dialect.name == "postgresql"
    found, capped = newest_matches(session, f, now, limit=SEARCH_NEWEST, window=SEARCH_WINDOW)
    ids: list[int] = []
    if found:
        # PostgreSQL gets the ids as one array (a thousand separate parameters cost more to send and plan)
        among = (text("tickets.id = ANY(CAST(:found AS integer[]))").bindparams(found=found) if postgres
                 else Ticket.id.in_(found))
        ids = list(session.scalars(select(Ticket.id).where(among).order_by(*_order(sort, f.view))
                                   .offset(page * page_size).limit(page_size)))
    return QueuePage(rows=_rows(session, ids), total=len(found), page=page, page_size=page_size, capped=capped)


#: The most rows one export holds (the CSV download of the queue): the newest matching are not cut silently,
#: the page says when the view holds more.
EXPORT_MAX_ROWS = 50_000
_EXPORT_BATCH = 500


def iter_queue(session: Session, f: QueueFilter, *, sort: Sort = Sort.PRIORITY,
               limit: int = EXPORT_MAX_ROWS) -> Iterator[QueueRow]:
    """Every row of the view (not only a page), in the view's order, at most ``limit``; read in batches."""
    now = f.now or clock.now()
    exact = exact_ticket(session, f.text)
    if exact is not None:
        yield from _rows(session, [exact])
        return
    ids = list(session.scalars(select(Ticket.id).where(*_where(f, now, session)).order_by(*_order(sort, f.view))
                               .limit(max(0, int(limit)))))
    for start in range(0, len(ids), _EXPORT_BATCH):
        yield from _rows(session, ids[start:start + _EXPORT_BATCH])


def open_counts(session: Session) -> dict[Status, int]:
    """Open tickets per status (counts only what is open, through the status index)."""
    rows = session.execute(
        select(Ticket.status, func.count()).where(Ticket.status.in_([s.value for s in OPEN_STATUSES]))
        .group_by(Ticket.status)
    ).all()
    counts = {s: 0 for s in OPEN_STATUSES}
    for status, n in rows:
        counts[Status(status)] = n
    return counts


_MARKER_WINDOW = 1000


def marker_top(marker: int) -> int:
    """The newest event id a :func:`change_marker` value was made from."""
    return marker // (_MARKER_WINDOW + 1)


def change_marker(session: Session) -> int:
    """A number that changes with every write (every write appends an event). Cheap: a primary-key range.

    It combines the newest event id with how many of the newest ids are visible: on PostgreSQL an id is
    handed out at insert time, so a transaction holding a lower id can commit after one holding a higher
    id, and the newest id alone would not move when that late commit lands.
    """
    # The newest ids come from a backward walk of the primary key (a LIMIT the planner cannot misjudge; a bare
    # "id > (subquery)" gets a generic estimate and a full scan on PostgreSQL at millions of events).
    newest = select(func.max(TicketEvent.id)).scalar_subquery()
    latest = select(TicketEvent.id.label("id")).order_by(TicketEvent.id.desc()).limit(_MARKER_WINDOW).subquery()
    top, recent = session.execute(
        select(func.max(latest.c.id), func.count()).where(latest.c.id > newest - _MARKER_WINDOW)
    ).one()
    return (top or 0) * (_MARKER_WINDOW + 1) + (recent or 0)


# --- one ticket --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimelineEntry:
    id: int
    kind: str
    actor: str
    occurred_at: datetime
    recorded_at: datetime
    public: bool
    body: str | None
    from_status: str | None
    to_status: str | None
    field: str | None
    old_value: str | None
    new_value: str | None
    minutes: int | None
    meta: dict | None


def get_ticket(session: Session, ticket_id: int) -> Ticket | None:
    return session.get(Ticket, ticket_id)


def timeline(session: Session, ticket_id: int, *, since_id: int | None = None) -> list[TimelineEntry]:
    stmt = (
        select(TicketEvent, User.name)
        .outerjoin(User, User.id == TicketEvent.actor_id)
        .where(TicketEvent.ticket_id == ticket_id)
        .order_by(TicketEvent.occurred_at, TicketEvent.id)
    )
    if since_id is not None:
        stmt = stmt.where(TicketEvent.id > since_id)
    out = []
    for ev, name in session.execute(stmt).unique():
        out.append(TimelineEntry(
            id=ev.id, kind=ev.kind, actor=name or ev.actor_label or "system", occurred_at=ev.occurred_at,
            recorded_at=ev.recorded_at, public=ev.public, body=ev.body, from_status=ev.from_status,
            to_status=ev.to_status, field=ev.field, old_value=ev.old_value, new_value=ev.new_value,
            minutes=ev.minutes, meta=ev.meta,
        ))
    return out


def last_event_id(session: Session, ticket_id: int) -> int:
    return session.scalar(select(func.max(TicketEvent.id)).where(TicketEvent.ticket_id == ticket_id)) or 0


def events_since(session: Session, ticket_id: int, event_id: int) -> int:
    return session.scalar(
        select(func.count()).select_from(TicketEvent).where(TicketEvent.ticket_id == ticket_id,
                                                             TicketEvent.id > event_id)
    ) or 0


@dataclass(frozen=True)
class Related:
    id: int
    summary: str
    status: Status
    priority: Priority
    created_at: datetime


def _related(session: Session, cond, exclude: int, limit: int) -> list[Related]:
    rows = session.execute(
        select(Ticket.id, Ticket.summary, Ticket.status, Ticket.priority, Ticket.created_at)
        .where(cond, Ticket.id != exclude).order_by(Ticket.created_at.desc()).limit(limit)
    ).all()
    return [Related(r.id, r.summary, Status(r.status), Priority(r.priority), r.created_at) for r in rows]


def requester_tickets(session: Session, requester_id: int, *, exclude: int = 0, limit: int = 10) -> list[Related]:
    return _related(session, Ticket.requester_id == requester_id, exclude, limit)


def device_tickets(session: Session, device_id: int, *, exclude: int = 0, limit: int = 10) -> list[Related]:
    return _related(session, Ticket.device_id == device_id, exclude, limit)


def child_tickets(session: Session, parent_id: int, *, limit: int = 200) -> list[Related]:
    return _related(session, Ticket.parent_id == parent_id, 0, limit)


def possible_duplicates(session: Session, *, requester_id: int | None, device_id: int | None, exclude: int = 0,
                        limit: int = 5) -> list[Related]:
    """Open tickets of the same requester or the same device."""
    parts = []
    if requester_id is not None:
        parts.append(Ticket.requester_id == requester_id)
    if device_id is not None:
        parts.append(Ticket.device_id == device_id)
    if not parts:
        return []
    return _related(session, and_(Ticket.is_open.is_(True), or_(*parts)), exclude, limit)


def attachments(session: Session, ticket_id: int) -> list[Attachment]:
    return list(session.scalars(select(Attachment).where(Attachment.ticket_id == ticket_id).order_by(Attachment.id)))


def attachment_bytes(session: Session, attachment_id: int) -> tuple[Attachment, bytes] | None:
    from pathlib import Path

    att = session.get(Attachment, attachment_id)
    if att is None:
        return None
    if att.storage_path:
        return att, Path(att.storage_path).read_bytes()
    return att, att.data or b""


def list_users(session: Session, *, include_inactive: bool = True) -> list[User]:
    stmt = select(User).order_by(User.name)
    if not include_inactive:
        stmt = stmt.where(User.active.is_(True))
    return list(session.scalars(stmt).unique())
