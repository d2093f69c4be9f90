"""Full-text search over KB articles and past resolved tickets, and the suggestions built on it.

One entry point, :func:`search`, with each engine's own full-text search:

* SQLite: FTS5 tables ``kb_fts`` and ``ticket_fts`` (migration 0003), ranked by ``bm25`` with column weights.
  User input never reaches FTS5 as syntax: it is parsed here (words, "quoted phrases", ``OR``, ``-word``)
  and every term goes in as a quoted string, so no input can make the engine fail.
* PostgreSQL: generated ``search_vector`` columns with GIN indexes, ``websearch_to_tsquery`` (which
  accepts the same syntax and never fails) and ``ts_rank``.

Both stem English words (``printers`` finds ``printer``) and ignore very common words. A query with
nothing left to search for, or with a control character in it, comes back with a ``message`` instead of
hits, never an error.

:func:`clean_search_text` is the rule for every text search (here and the queue's text filter in
``lib.queries``): tab and line breaks become spaces; any other control character (NUL included) is refused
with :class:`SearchTextError`, whose message is fit to show as it is.

``match="any"`` (used by :func:`suggest`) ranks documents by how well they match any of the words,
so a whole sentence typed on intake still finds the article that shares its key words.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Row, Select, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from lib.models import Category, KbArticle, Ticket, ticket_ref
from lib.safe_markdown import to_plain
from lib.workflow import KbStatus

Kind = Literal["kb", "tickets"]
KINDS: tuple[Kind, ...] = ("kb", "tickets")
MAX_QUERY_CHARS = 300
MAX_TERMS = 24
# Curated knowledge first: when an article and a ticket match equally well, the article leads.
KB_BOOST = 1.25
#: How many of the newest matches are ranked, per kind (see _sqlite and _postgres).
CANDIDATES: dict[str, int] = {"kb": 3000, "tickets": 2000}
#: match="any" ranks by this many of the query's most telling words ...
ANY_TERMS = 5
#: ... leaving out words this many times as common as the rarest one.
COMMON_RATIO = 20

# PostgreSQL's English stop words (``english.stop``): ignored on both engines so they rank alike.
STOP_WORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being below between both
but by can did do does doing don down during each few for from further had has have having he her here hers
herself him himself his how i if in into is it its itself just me more most my myself no nor not now of off on
once only or other our ours ourselves out over own s same she should so some such t than that the their theirs
them themselves then there these they this those through to too under until up very was we were what when where
which while who whom why will with you your yours yourself yourselves
""".split())
_WORD = re.compile(r"\w+", re.UNICODE)
# Unicode category Cc (C0, DEL, C1) and lone surrogates (which no database can store or compare).
_SEARCH_REFUSED = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_SEARCH_SPACES = str.maketrans({"\t": " ", "\n": " ", "\r": " "})
_TOKEN = re.compile(r'(-?)"([^"]*)"?|(\S+)')


@dataclass(frozen=True)
class SearchHit:
    kind: Kind
    id: int
    ref: str  # KB-12 or HD-000123
    title: str
    snippet: str  # plain text, never markup
    resolution: str  # plain text: the article's resolution steps, or the ticket's resolution (and workaround)
    category_id: int | None
    category: str | None
    status: str
    score: float  # higher is better; comparable within one kind
    when: datetime | None  # article updated / ticket resolved


@dataclass
class SearchResult:
    hits: list[SearchHit] = field(default_factory=list)
    message: str | None = None

    @property
    def articles(self) -> list[SearchHit]:
        return [h for h in self.hits if h.kind == "kb"]

    @property
    def tickets(self) -> list[SearchHit]:
        return [h for h in self.hits if h.kind == "tickets"]


# --- parsing user input -----------------------------------------------------------------------------


class SearchTextError(ValueError):
    """Search text holds a character no search accepts; ``str(error)`` is the message to show the user."""

    def __init__(self, char: str) -> None:
        code = f"U+{ord(char):04X}"
        what = "an invalid character" if 0xD800 <= ord(char) <= 0xDFFF else "a control character"
        super().__init__(f"Search text contains {what} ({code}); remove it and try again.")
        self.char = char


def clean_search_text(text: str | None) -> str:
    """Search input as it is searched for: tab, line feed and carriage return become spaces; any other
    control character (Unicode category Cc, e.g. NUL) or a lone surrogate raises :class:`SearchTextError`.

    NUL is why: PostgreSQL refuses it in a parameter (the query fails) and SQLite ends the LIKE pattern at
    it (the search matches every ticket)."""
    if text is None:
        return ""
    if not isinstance(text, str):
        raise TypeError(f"search text must be str, not {type(text).__name__}")
    cleaned = text.replace("\r\n", "\n").translate(_SEARCH_SPACES)  # a pasted line break is one space
    bad = _SEARCH_REFUSED.search(cleaned)
    if bad is not None:
        raise SearchTextError(bad.group())
    return cleaned


@dataclass(frozen=True)
class Term:
    words: tuple[str, ...]  # one word, or the words of a quoted phrase
    negated: bool = False

    @property
    def phrase(self) -> bool:
        return len(self.words) > 1


@dataclass
class ParsedQuery:
    groups: list[list[Term]] = field(default_factory=list)  # AND of groups; a group is an OR of terms
    excluded: list[Term] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # common words left out

    @property
    def words(self) -> list[str]:
        seen: dict[str, None] = {}
        for group in self.groups:
            for term in group:
                for w in term.words:
                    seen.setdefault(w, None)
        return list(seen)

    @property
    def empty(self) -> bool:
        return not self.groups


def _words(raw: str) -> tuple[str, ...]:
    return tuple(w.lower() for w in _WORD.findall(raw))


def parse_query(query: str) -> ParsedQuery:
    """Web-search syntax: words (all must match), "a phrase", ``x OR y``, ``-word`` to exclude."""
    parsed = ParsedQuery()
    pending_or = False
    for m in _TOKEN.finditer((query or "")[:MAX_QUERY_CHARS]):
        negated = False
        if m.group(3) is not None:
            raw = m.group(3)
            if raw.upper() == "OR":
                pending_or = bool(parsed.groups)
                continue
            if raw.startswith("-") and len(raw) > 1:
                negated, raw = True, raw[1:]
            words = _words(raw)
        else:
            negated = m.group(1) == "-"
            words = _words(m.group(2))
        if not words:
            continue
        if len(words) == 1 and words[0] in STOP_WORDS:
            parsed.dropped.append(words[0])
            continue
        term = Term(words, negated)
        if negated:
            parsed.excluded.append(term)
        elif pending_or:
            parsed.groups[-1].append(term)
        else:
            parsed.groups.append([term])
        pending_or = False
        if sum(len(g) for g in parsed.groups) + len(parsed.excluded) >= MAX_TERMS:
            break
    return parsed


def _fts5_string(term: Term) -> str:
    return '"' + " ".join(term.words).replace('"', '""') + '"'


def fts5_query(parsed: ParsedQuery, *, match: Literal["all", "any"] = "all") -> str:
    """An FTS5 MATCH expression in which every user term is a quoted string (no user syntax reaches FTS5)."""
    if match == "any":
        expr = " OR ".join(_fts5_string(Term((w,))) for w in parsed.words)
    else:
        parts = []
        for group in parsed.groups:
            alts = [_fts5_string(t) for t in group]
            parts.append(alts[0] if len(alts) == 1 else "(" + " OR ".join(alts) + ")")
        expr = " AND ".join(parts)
    if parsed.excluded and expr:
        expr = f"({expr}) NOT (" + " OR ".join(_fts5_string(t) for t in parsed.excluded) + ")"
    return expr


def tsquery_any(parsed: ParsedQuery) -> str:
    """A ``to_tsquery`` text OR-ing the words (words are letters and digits only: no operator can get in)."""
    return " | ".join(parsed.words)


# --- the search ----------------------------------------------------------------------------------------


def _message_for(parsed: ParsedQuery, query: str) -> str | None:
    if parsed.empty and parsed.excluded:
        return "Add a word to search for: a search can't consist only of words to leave out (-word)."
    if parsed.empty and parsed.dropped:
        return ("Only very common words (" + ", ".join(sorted(set(parsed.dropped))[:5]) +
                ") — add a more specific word, such as the device or the error message.")
    if parsed.empty:
        return "Type a word to search for (letters or numbers)." if query.strip() else None
    return None


def search(
    session: Session,
    query: str,
    *,
    kinds: Sequence[Kind] = KINDS,
    category_id: int | None = None,
    limit: int = 10,
    match: Literal["all", "any"] = "all",
    include_drafts: bool = False,
    exclude_ticket_id: int | None = None,
) -> SearchResult:
    """Search published KB articles and past resolved tickets; best matches first.

    ``kinds`` picks what to search; ``category_id`` keeps one category; ``match="any"`` ranks by any word
    (suggestions) instead of requiring all; ``include_drafts`` adds draft articles (the KB page).
    A query with a control character gets the :class:`SearchTextError` message and no hits.
    """
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"unknown search kind(s) {unknown}; use {KINDS}")
    try:
        query = clean_search_text(query)
    except SearchTextError as exc:
        return SearchResult(hits=[], message=str(exc))
    limit = max(1, min(int(limit), 100))
    parsed = parse_query(query)
    message = _message_for(parsed, query)
    if message is not None or parsed.empty:
        return SearchResult(hits=[], message=message)
    engine = session.get_bind().dialect.name
    per_kind: dict[str, list[SearchHit]] = {}
    try:
        with _pg_scope(session) if engine == "postgresql" else nullcontext():
            for kind in kinds:
                if engine == "sqlite":
                    per_kind[kind] = _sqlite(session, kind, parsed, match=match, category_id=category_id,
                                             limit=limit, include_drafts=include_drafts,
                                             exclude_ticket_id=exclude_ticket_id)
                else:
                    per_kind[kind] = _postgres(session, kind, query, parsed, match=match, category_id=category_id,
                                               limit=limit, include_drafts=include_drafts,
                                               exclude_ticket_id=exclude_ticket_id)
    except DBAPIError as exc:  # the sanitiser should make this unreachable; never show a stack trace for a query
        return SearchResult(hits=[], message=f"The search could not use that query ({_first_line(exc)}). "
                                             "Try plain words.")
    return SearchResult(hits=merge(per_kind, limit))


@contextmanager
def _pg_scope(session: Session) -> Iterator[None]:
    """PostgreSQL: the search runs in a savepoint that is always rolled back, which leaves the caller's
    transaction as it was, even after a failed statement, and undoes the planner setting made for the search
    (see _postgres): without plain index scans the planner combines the GIN bitmap with the id range (milliseconds) instead of
    walking the id index and testing each row against the query (tens of milliseconds)."""
    session.execute(text("SAVEPOINT helpdesk_search"))
    try:
        yield
    finally:
        session.execute(text("ROLLBACK TO SAVEPOINT helpdesk_search"))
        session.execute(text("RELEASE SAVEPOINT helpdesk_search"))


def _first_line(exc: DBAPIError) -> str:
    return str(getattr(exc, "orig", exc)).splitlines()[0][:120]


def merge(per_kind: dict[str, list[SearchHit]], limit: int) -> list[SearchHit]:
    """One list from per-kind lists: scores scaled to each kind's best (engines' scores differ per table),
    articles slightly ahead, then the best ``limit``."""
    scored: list[tuple[float, int, SearchHit]] = []
    for kind, hits in per_kind.items():
        if not hits:
            continue
        top = max(h.score for h in hits) or 1.0
        boost = KB_BOOST if kind == "kb" else 1.0
        for pos, h in enumerate(hits):
            scored.append((boost * h.score / top, -pos, h))
    scored.sort(key=lambda x: (x[0], x[1], x[2].kind == "kb"), reverse=True)
    return [h for _, _, h in scored[:limit]]


def _snippet(texts: Iterable[str | None], words: list[str], width: int = 180) -> str:
    """Plain text around the first query word found (by prefix, so 'printer' finds 'printers')."""
    plain = " · ".join(to_plain(t, 4000) for t in texts if t and t.strip())
    if not plain:
        return ""
    low = plain.lower()
    pos = -1
    for w in words:
        stem = w[: max(4, len(w) - 2)]
        found = re.search(r"\b" + re.escape(stem), low)
        if found and (pos < 0 or found.start() < pos):
            pos = found.start()
    start = max(0, pos - width // 3) if pos >= 0 else 0
    piece = plain[start:start + width]
    return ("…" if start > 0 else "") + piece + ("…" if start + width < len(plain) else "")


def _resolution(notes: str | None, workaround: str | None = None, cause: str | None = None) -> str:
    parts = []
    if notes and notes.strip():
        parts.append(to_plain(notes, 400))
    if workaround and workaround.strip():
        parts.append("Workaround: " + to_plain(workaround, 200))
    if cause and cause.strip():
        parts.append("Cause: " + to_plain(cause, 150))
    return " · ".join(parts)


def _kb_hit(r, words: list[str], score: float) -> SearchHit:
    return SearchHit(
        kind="kb", id=r.id, ref=f"KB-{r.id}", title=r.title, snippet=_snippet([r.symptoms, r.cause], words),
        resolution=to_plain(r.resolution_steps, 400), category_id=r.category_id, category=r.category,
        status=r.status, score=score, when=r.updated_at,
    )


def _ticket_hit(r, words: list[str], score: float) -> SearchHit:
    return SearchHit(
        kind="tickets", id=r.id, ref=ticket_ref(r.id), title=r.summary,
        snippet=_snippet([r.description], words), resolution=_resolution(r.resolution_notes, r.workaround,
                                                                          r.root_cause),
        category_id=r.category_id, category=r.category, status=r.status, score=score, when=r.resolved_at,
    )


# Column weights, in the order of the FTS columns (migration 0003).
_KB_WEIGHTS = "10.0, 4.0, 2.0, 1.0, 8.0"  # title, symptoms, cause, resolution_steps, tags
_TICKET_WEIGHTS = "8.0, 2.0, 2.0, 2.0, 1.0"  # summary, description, resolution_notes, root_cause, workaround


def _hits(session: Session, kind: str, ranked: list[tuple[int, float]], words: list[str]) -> list[SearchHit]:
    """The display rows for ranked ids (one primary-key lookup), in rank order."""
    if not ranked:
        return []
    ids = [i for i, _ in ranked]
    stmt: Select[*tuple[Any, ...]]
    if kind == "kb":
        stmt = (select(KbArticle.id, KbArticle.title, KbArticle.symptoms, KbArticle.cause, KbArticle.resolution_steps,
                       KbArticle.category_id, Category.name.label("category"), KbArticle.status, KbArticle.updated_at)
                .outerjoin(Category, Category.id == KbArticle.category_id).where(KbArticle.id.in_(ids)))
    else:
        stmt = (select(Ticket.id, Ticket.summary, Ticket.description, Ticket.resolution_notes, Ticket.workaround,
                       Ticket.root_cause, Ticket.category_id, Category.name.label("category"), Ticket.status,
                       Ticket.resolved_at)
                .join(Category, Category.id == Ticket.category_id).where(Ticket.id.in_(ids)))
    by_id = {r.id: r for r in session.execute(stmt)}
    make = _kb_hit if kind == "kb" else _ticket_hit
    return [make(by_id[i], words, score) for i, score in ranked if i in by_id]


_DF_CACHE: dict[tuple[str, str, str], tuple[float, int | None]] = {}
_DF_TTL = 3600.0
_DF_MAX = 20_000


def _doc_counts(session: Session, table: str, words: list[str]) -> dict[str, int]:
    """How many documents hold each word's stem (FTS5's own vocabulary, through a per-connection fts5vocab table).

    The index holds Porter stems; a word's stem is (nearly always) a prefix of it, so the longest indexed
    term that the word starts with is taken. Words with no such term are left out (they match nothing).
    Counting reads the term's whole document list, so counts are kept for an hour per process: they move
    slowly, and the words typed at a desk repeat.
    """
    now = time.monotonic()
    url = str(session.get_bind().engine.url)
    counts: dict[str, int] = {}
    missing = []
    for w in words:
        hit = _DF_CACHE.get((url, table, w))
        if hit is not None and now - hit[0] < _DF_TTL:
            if hit[1] is not None:
                counts[w] = hit[1]
        else:
            missing.append(w)
    if not missing:
        return counts
    vocab = f"{table}_vocab"
    session.execute(text(f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.{vocab} USING fts5vocab(main, {table}, row)"))
    if len(_DF_CACHE) > _DF_MAX:
        _DF_CACHE.clear()
    for w in missing:
        best: tuple[int, int] | None = None
        for term, docs in session.execute(text(f"SELECT term, doc FROM temp.{vocab} WHERE term >= :lo AND term <= :w"),
                                          {"lo": w[:3], "w": w}):
            if w.startswith(term) and (best is None or len(term) > best[0]):
                best = (len(term), int(docs))
        _DF_CACHE[(url, table, w)] = (now, best[1] if best else None)
        if best is not None:
            counts[w] = best[1]
    return counts


def _selective(session: Session, table: str, parsed: ParsedQuery) -> ParsedQuery:
    """For ``match="any"``: the ANY_TERMS words found in the fewest documents (the ones that tell documents
    apart; common words add little to the ranking and make every document a candidate)."""
    words = parsed.words
    if len(words) <= 1:
        return parsed
    counts = _doc_counts(session, table, words)
    keep = _telling(counts, words, floor=1)
    return ParsedQuery(groups=[[Term((w,))] for w in words if w in keep], excluded=parsed.excluded)


def _telling(counts: Mapping[str, float], words: list[str], *, floor: float) -> list[str]:
    """The ANY_TERMS least common words, leaving out any that is COMMON_RATIO times as common as the rarest
    (a word in every other ticket would make every ticket a candidate and barely changes the ranking)."""
    ranked = sorted(counts, key=lambda w: (counts[w], words.index(w)))
    if not ranked:
        return words[:ANY_TERMS]
    ceiling = COMMON_RATIO * max(counts[ranked[0]], floor)
    return [w for w in ranked if counts[w] <= ceiling][:ANY_TERMS]


def _sqlite(session: Session, kind: str, parsed: ParsedQuery, *, match: Literal["all", "any"], category_id: int | None,
            limit: int, include_drafts: bool, exclude_ticket_id: int | None) -> list[SearchHit]:
    table = "kb_fts" if kind == "kb" else "ticket_fts"
    if match == "any":
        parsed = _selective(session, table, parsed)
    expr = fts5_query(parsed, match=match)
    if not expr:
        return []
    params: dict[str, object] = {"q": expr, "n": limit, "window": CANDIDATES[kind]}
    conds: list[str] = []
    join = ""
    if kind == "kb":
        if not include_drafts:
            conds.append(f"a.status = '{KbStatus.PUBLISHED.value}'")
        if category_id is not None:
            conds.append("a.category_id = :cat")
            params["cat"] = category_id
        if conds:
            join = " JOIN kb_articles a ON a.id = f.rowid"
        weights = _KB_WEIGHTS
    else:
        if exclude_ticket_id is not None:
            conds.append("f.rowid != :ex")
            params["ex"] = exclude_ticket_id
        if category_id is not None:  # only a category filter needs the ticket row before the LIMIT
            conds.append("t.category_id = :cat")
            params["cat"] = category_id
            join = " JOIN tickets t ON t.id = f.rowid"
        weights = _TICKET_WEIGHTS
    where = f"{table} MATCH :q" + "".join(f" AND {c}" for c in conds)
    # Rank the newest CANDIDATES matches: reading a doclist newest-first and stopping is cheap, scoring every
    # match of a common word in a million tickets is not. A rarer word or phrase reaches further back.
    bound = f"SELECT min(id) FROM (SELECT f.rowid AS id FROM {table} f{join} WHERE {where} ORDER BY f.rowid DESC LIMIT :window)"
    sql = (f"SELECT f.rowid AS id, bm25({table}, {weights}) AS score FROM {table} f{join} "
           f"WHERE {where} AND f.rowid >= coalesce(({bound}), 0) ORDER BY score LIMIT :n")
    ranked = [(int(r.id), -float(r.score)) for r in session.execute(text(sql), params)]
    return _hits(session, kind, ranked, parsed.words)


#: PostgreSQL: the newest ids searched first; the span widens until it holds CANDIDATES matches.
FIRST_SPAN = 20_000


_PG_FREQ_CACHE: dict[tuple[str, str], tuple[float, dict[str, float]]] = {}
_PG_FREQ_TTL = 600.0


def _lexeme_freqs(session: Session, table: str) -> dict[str, float]:
    """The most common lexemes of ``table.search_vector`` with the share of rows holding each, from the
    statistics ANALYZE keeps (``pg_stats.most_common_elems``); cached for ten minutes."""
    key = (str(session.get_bind().engine.url), table)
    cached = _PG_FREQ_CACHE.get(key)
    if cached is not None and time.monotonic() - cached[0] < _PG_FREQ_TTL:
        return cached[1]
    row = session.execute(text(
        "SELECT most_common_elems::text::text[] AS elems, most_common_elem_freqs AS freqs FROM pg_stats "
        "WHERE schemaname = current_schema() AND tablename = :t AND attname = 'search_vector'"), {"t": table}).first()
    freqs = dict(zip(row.elems, row.freqs, strict=False)) if row is not None and row.elems else {}
    _PG_FREQ_CACHE[key] = (time.monotonic(), freqs)
    return freqs


def _pg_selective(session: Session, table: str, parsed: ParsedQuery) -> ParsedQuery:
    """PostgreSQL's counterpart of :func:`_selective`: the ANY_TERMS words whose lexemes are least common."""
    words = parsed.words
    freqs = _lexeme_freqs(session, table) if len(words) > 1 else {}
    if not freqs:
        return parsed
    lexemes: dict[str, list[str] | None] = dict(session.execute(text(
        "SELECT w, tsvector_to_array(to_tsvector('english', w)) FROM unnest(CAST(:words AS text[])) AS w"),
        {"words": words}).all())
    # share of rows holding the word; a lexeme not among the most common ones is rarer than all of them
    floor = min(freqs.values())
    share = {w: max((freqs.get(x, 0.0) for x in lexemes.get(w) or []), default=None) for w in words}
    keep = _telling({w: v for w, v in share.items() if v is not None}, words, floor=floor)
    return ParsedQuery(groups=[[Term((w,))] for w in words if w in keep], excluded=parsed.excluded)


def _postgres(session: Session, kind: str, query: str, parsed: ParsedQuery, *, match: str, category_id: int | None,
              limit: int, include_drafts: bool, exclude_ticket_id: int | None) -> list[SearchHit]:
    table, alias = ("kb_articles", "a") if kind == "kb" else ("tickets", "t")
    conds = [f"{alias}.search_vector @@ q.q"]
    params: dict[str, object] = {}
    if kind == "kb":
        if not include_drafts:
            conds.append(f"a.status = '{KbStatus.PUBLISHED.value}'")
    else:
        conds.append("t.resolved_at IS NOT NULL")  # the condition of the partial GIN index
        if exclude_ticket_id is not None:
            conds.append("t.id != :ex")
            params["ex"] = exclude_ticket_id
    if category_id is not None:
        conds.append(f"{alias}.category_id = :cat")
        params["cat"] = category_id
    if match != "any":
        rows = _pg_window(session, table, alias, "websearch_to_tsquery('english', :q)", conds,
                          {**params, "q": query[:MAX_QUERY_CHARS]}, CANDIDATES[kind], limit)
        return _hits(session, kind, [(int(r.id), float(r.score)) for r in rows], parsed.words)
    parsed = _pg_selective(session, table, parsed)
    rows = []
    if len(parsed.words) > 1:
        # Matches holding every word first: GIN intersects posting lists cheaply, while OR-ing common words
        # reads all of them (7 ms against 63 ms at 1M tickets). They rank highest anyway; OR only when too few.
        rows = _pg_window(session, table, alias, "to_tsquery('english', :q)", conds,
                          {**params, "q": " & ".join(parsed.words)}, CANDIDATES[kind], limit)
    if len(rows) < limit:
        # Any word: the span widens only until ``limit`` matches are seen (each widening reads every common
        # word's whole posting list again), and at most a quarter of the window is ranked.
        rows = _pg_window(session, table, alias, "to_tsquery('english', :q)", conds,
                          {**params, "q": tsquery_any(parsed)}, max(CANDIDATES[kind] // 4, limit), limit,
                          enough=limit)
    return _hits(session, kind, [(int(r.id), float(r.score)) for r in rows], parsed.words)


def _pg_window(session: Session, table: str, alias: str, tsq: str, conds: list[str], params: dict[str, object],
               window: int, limit: int, *, enough: int | None = None) -> Sequence[Row[*tuple[Any, ...]]]:
    """The best ``limit`` of the newest ``window`` matches, by ts_rank (the span stops widening once it holds
    ``enough`` matches: the whole window unless told).

    Ranks the newest matches, as on SQLite. A GIN index cannot hand out matches newest first, so the newest
    ids are searched first (the GIN bitmap and the primary-key range are combined before any row is read; see
    _pg_scope) and the span widens only while it holds too few matches. ``id + 0`` keeps the planner off a
    backward primary-key walk that would test every row of the span against the query."""
    params = {**params, "window": window, "n": limit}
    session.execute(text("SET LOCAL enable_indexscan = on"))  # max(id) walks the index
    top = session.scalar(text(f"SELECT max(id) FROM {table}")) or 0
    session.execute(text("SET LOCAL enable_indexscan = off"))
    rows: Sequence[Row[*tuple[Any, ...]]] = []
    span: int | None = FIRST_SPAN
    while True:
        if span is not None and span >= top:
            span = None
        params["lo"] = top - span if span is not None else 0
        rows = session.execute(text(
            f"SELECT id, score, count(*) OVER () AS found FROM (SELECT {alias}.id, "
            f"ts_rank({alias}.search_vector, q.q) AS score FROM {table} {alias}, {tsq} AS q(q) "
            f"WHERE {' AND '.join(conds)}{'' if span is None else f' AND {alias}.id > :lo'} "
            f"ORDER BY {alias}.id + 0 DESC LIMIT :window) AS c ORDER BY score DESC, id DESC LIMIT :n"),
            params).all()
        found = rows[0].found if rows else 0
        if found >= (window if enough is None else enough) or span is None:
            return rows
        # widen to where the matches seen so far say the window will fill (tenfold if none were seen)
        span = int(span * min(max(1.5 * window / found, 2.0), 10.0)) if found else span * 10


# --- suggestions -----------------------------------------------------------------------------------------

CATEGORY_BOOST = 1.3


@dataclass
class Suggestions:
    articles: list[SearchHit] = field(default_factory=list)
    tickets: list[SearchHit] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.articles or self.tickets)


def suggestion_query(summary: str, description: str | None = None) -> str:
    """The words to suggest from: the summary, and the start of the description when the summary is thin."""
    words = [w for w in _words(summary or "") if w not in STOP_WORDS]
    if len(words) < 3 and description:
        words += [w for w in _words(description[:400]) if w not in STOP_WORDS]
    return " ".join(dict.fromkeys(words))


def suggest(session: Session, *, summary: str, description: str | None = None, category_id: int | None = None,
            exclude_ticket_id: int | None = None, limit: int = 3) -> Suggestions:
    """Best matching published articles and similar resolved tickets for what was typed (same category first)."""
    query = suggestion_query(summary, description)
    if not query:
        return Suggestions()
    out = Suggestions()
    for kind in KINDS:
        result = search(session, query, kinds=(kind,), limit=limit * 3, match="any",
                        exclude_ticket_id=exclude_ticket_id)
        hits = sorted(result.hits, key=lambda h: h.score * (CATEGORY_BOOST if category_id is not None
                                                             and h.category_id == category_id else 1.0),
                      reverse=True)[:limit]
        if kind == "kb":
            out.articles = hits
        else:
            out.tickets = hits
    return out
