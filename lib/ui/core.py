"""Streamlit glue shared by the pages: the cached engine, the current user, guards, formatting.

The only part of lib/ (with the rest of lib/ui) that imports streamlit.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Literal, TypeVar, cast
from zoneinfo import ZoneInfo

import streamlit as st
from sqlalchemy import event, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from lib import clock, db, page_timer
from lib.config import get_settings
from lib.db import read_session
from lib.errors import GuardFailed, HelpdeskError, PermissionDenied, StaleTicket, ValidationError
from lib.models import SETTINGS_INFO, Setting, User
from lib.workflow import PERMISSIONS, STATUS_INFO, Permission, Priority, Role, Status

T = TypeVar("T")
log = logging.getLogger(__name__)


def settings_banner(role: Role) -> None:
    """What a lead must set before the desk can work as documented (shown on every page to leads)."""
    if role >= Role.LEAD and not get_settings().public_url:
        st.warning("**Mail to requesters is on hold**: set `HELPDESK_PUBLIC_URL` (or `public_url` in "
                   "`.streamlit/secrets.toml`) to the address people open this app at, e.g. "
                   "`https://desk.example.com`. The links in that mail are built on it; see docs/configuration.md.",
                   icon="📮")


def get_engine() -> Engine:
    """The process's one engine (lib.db.get_engine), shared with the HTTP routes and the worker."""
    return db.get_engine(get_settings().database_url)


class _RunReads(threading.local):
    """The page run's one read session, per script thread (see :func:`page_reads`)."""

    def __init__(self) -> None:
        self.session: Session | None = None
        #: Set when this thread commits a write: the next read starts a new transaction, so it sees the write.
        self.stale = False
        #: Values worked out once per run (the signed-in user); forgotten with every write of this thread.
        self.memo: dict[str, object] = {}
        #: The statements this thread sent to the database in the run (reads and writes).
        self.statements = 0


_run = _RunReads()
_hooked: set[int] = set()


def _on_commit(_conn) -> None:
    if _run.session is not None:
        _run.stale = True
        _run.memo = {}


def _on_statement(*_args) -> None:
    if _run.session is not None:
        _run.statements += 1


def _engine_for_reads() -> Engine:
    engine = get_engine()
    if id(engine) not in _hooked:
        event.listen(engine, "commit", _on_commit)
        event.listen(engine, "before_cursor_execute", _on_statement)
        _hooked.add(id(engine))
    return engine


@contextmanager
def page_reads(run: page_timer.Run | None = None) -> Iterator[None]:
    """One read session for a whole page run (app.py): every :func:`reading` in the run shares it, instead of
    opening a session (a pool checkout, BEGIN, a ping on PostgreSQL, ROLLBACK) for each panel of the page. A write
    committed by this thread in the run ends the shared transaction, so the reads after it see the write. A
    fragment's run of its own (outside a page run) reads with sessions of its own, as before. ``run``: gets the
    number of statements the run sent (the page timer logs it)."""
    if _run.session is not None:  # nested (a page run started from a page run): the outer one serves
        yield
        return
    session = Session(bind=_engine_for_reads(), expire_on_commit=False)
    _run.session, _run.stale, _run.memo, _run.statements = session, False, {}, 0
    try:
        yield
    finally:
        if run is not None:
            run.queries = _run.statements
        _run.session, _run.stale, _run.memo = None, False, {}
        try:
            session.rollback()
        except DBAPIError:  # the database went away meanwhile: nothing to undo
            log.debug("page read session could not be rolled back", exc_info=True)
        session.close()


def per_run(key: str, read: Callable[[], T]) -> T:
    """``read()`` once per page run (several panels ask for the same thing: the change marker, the canned replies,
    the unread count); read again after a write of this run, and every time outside a page run."""
    if _run.session is None:
        return read()
    if key not in _run.memo:
        _run.memo[key] = read()
    return _run.memo[key]  # type: ignore[return-value]


@contextmanager
def reading() -> Iterator[Session]:
    """A read-only session: the page run's shared one (:func:`page_reads`), or one of its own outside a run."""
    shared = _run.session
    if shared is None:
        with read_session(get_engine()) as s:
            yield s
        return
    if _run.stale:
        shared.rollback()
        shared.info.pop(SETTINGS_INFO, None)
        _run.stale = False
    if SETTINGS_INFO not in shared.info:
        # The desk's settings rows (a handful: weights, templates, calendar ...) in one read, held for the run: the
        # panels' lib.models.setting_row then find them (or that one was never set) without asking the database.
        shared.info[SETTINGS_INFO] = {row.key: row for row in shared.scalars(select(Setting))}
    try:
        yield shared
    except BaseException:
        # A failed statement leaves the transaction unusable (PostgreSQL): the next read starts a new one.
        # (st.stop and st.rerun raise too; the rollback costs nothing then.)
        _run.stale = True
        raise


def write(fn: Callable[[Session], T], *, success: str | None = None, errors_key: str | None = None) -> T | None:
    """Run one service call in its own transaction and turn domain errors into messages.

    Field errors are stored under ``st.session_state[errors_key]`` so forms can show them at the field;
    what the user typed stays in the widgets (their keys are untouched).
    """
    if errors_key:
        st.session_state[errors_key] = {}
    try:
        result = db.run_transaction(get_engine(), fn, what="page write")
    except DBAPIError:
        log.exception("a page write failed in the database")
        st.error("The database did not answer, so **nothing was saved**. What you typed is still here: try "
                 "again in a moment.", icon="🛑")
        return None
    except ValidationError as exc:
        if errors_key and exc.fields:
            st.session_state[errors_key] = dict(exc.fields)
        st.error("Please correct: " + "; ".join(f"{k.replace('_', ' ')} {v}" for k, v in exc.fields.items())
                 if exc.fields else str(exc), icon="✋")
        return None
    except GuardFailed as exc:
        st.warning("Not yet — still missing:\n" + "\n".join(f"- {m}" for m in exc.missing), icon="📋")
        return None
    except StaleTicket as exc:
        # Shown at the top of the page on the rerun; the drafts stay in their widgets.
        st.session_state["stale_message"] = str(exc)
        st.rerun()
    except PermissionDenied as exc:
        st.error(f"Not allowed: {exc}", icon="🔒")
        return None
    except HelpdeskError as exc:
        st.error(str(exc), icon="⚠️")
        return None
    if success:
        st.session_state["flash"] = success
    return result


#: How often the "database unavailable" page tries again.
RETRY_SECONDS = 5


def database_unavailable() -> None:
    """Shown instead of a page when the database does not answer: what happened, that nothing saved is lost,
    and a check every few seconds that brings the page back by itself once the database answers."""
    log.exception("the database is unavailable")
    st.title("The help desk database is not answering")
    st.info("Nothing saved before is lost. This page tries again every few seconds and carries on by itself "
            "when the database is back; you do not need to reload. If it lasts, tell whoever runs the server.",
            icon="🛠️")

    @st.fragment(run_every=RETRY_SECONDS)
    def _retry() -> None:
        try:
            with db.get_engine(get_settings().database_url).connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        except DBAPIError:
            st.caption(f"Last try: {fmt_time(clock.now(), with_date=False)} — still not answering.")
            return
        st.rerun(scope="app")

    _retry()


def flash() -> None:
    msg = st.session_state.pop("flash", None)
    if msg:
        st.toast(msg, icon="✅")


#: session_state key of this browser's session token (lib.sessions); checked against the database every run.
SESSION_TOKEN = "_session_token"


def current_user() -> User | None:
    """The signed-in user, re-read from the database on every run: the session must still be valid (not logged
    out, revoked, idle or expired) and the account active; roles are never trusted from the session."""
    from lib import sessions

    token = st.session_state.get(SESSION_TOKEN)
    memo = _run.memo.get("user")
    if isinstance(memo, tuple) and token and memo[0] == token:  # checked already in this run (app.py, the page)
        return cast(User, memo[1])
    with reading() as s:
        signed = sessions.check(get_engine(), token=token, session=s) if token else None
        if signed is None:
            st.session_state.pop(SESSION_TOKEN, None)
            return None
        st.session_state["username"] = signed.username
        st.session_state["_session_id"] = signed.session_id
        # The account as the check read it (a write the check made since, noting the session in use, expired it:
        # its attributes are read again here), or read now.
        user = signed.user if signed.user is not None and signed.user in s else s.get(User, signed.user_id)
        if user is None or not user.active:
            return None
        s.expunge(user)
    if _run.session is not None:
        _run.memo["user"] = (token, user)
    return user


def require_role(role: Role | Permission) -> User:
    """Stop the page unless the current user has at least ``role``, or the role a desk-wide permission needs
    (checked against the database at each run)."""
    if isinstance(role, Permission):
        role = PERMISSIONS[role]
    user = current_user()
    if user is None:
        st.warning("Please log in.")
        st.stop()
    if Role(user.role) < role:
        st.error(f"This page is for a {role.label.lower()} or above.", icon="🔒")
        st.stop()
    return user


# --- formatting --------------------------------------------------------------------------------

# the colours st.badge accepts
BadgeColour = Literal["red", "orange", "yellow", "blue", "green", "violet", "gray", "grey", "primary"]
PRIORITY_COLOURS: dict[Priority, BadgeColour] = {Priority.CRITICAL: "red", Priority.HIGH: "orange", Priority.MEDIUM: "blue", Priority.LOW: "gray"}
PRIORITY_ICONS = {Priority.CRITICAL: "🔴", Priority.HIGH: "🟠", Priority.MEDIUM: "🔵", Priority.LOW: "⚪"}
def tz() -> ZoneInfo:
    return ZoneInfo(get_settings().timezone)


def fmt_time(value: datetime | None, *, with_date: bool = True) -> str:
    return clock.desk_time(value, "%a %d %b %Y %H:%M" if with_date else "%H:%M")


def fmt_age(value: datetime | None, *, now: datetime | None = None) -> str:
    if value is None:
        return "—"
    seconds = ((now or clock.now()) - value).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    if seconds < 3600:
        text = f"{int(seconds // 60)} min"
    elif seconds < 86400:
        text = f"{seconds / 3600:.1f} h"
    else:
        text = f"{seconds / 86400:.1f} d"
    return f"in {text}" if future else f"{text} ago"


def badge_md(label: str, *, icon: str | None = None, color: str = "blue") -> str:
    """A badge as Markdown (what ``st.badge`` writes): several of them and other text in one element cost the page
    run one message instead of one each."""
    label = label.replace("[", "\\[").replace("]", "\\]")
    return f":{color}-badge[{icon + ' ' if icon else ''}{label}]"


def priority_badge_md(p: Priority) -> str:
    return badge_md(p.label, icon=PRIORITY_ICONS[p], color=PRIORITY_COLOURS[p])


def status_badge_md(s: Status) -> str:
    info = STATUS_INFO[s]
    return badge_md(info.label, icon=info.icon, color="green" if info.open or info.resolved else "violet")


def ticket_url(ticket_id: int) -> str:
    return f"/ticket?id={ticket_id}"


_MD_SPECIAL = set("\\`*_{}[]()#+-.!|<>~$:=")


def escape_md(text: str) -> str:
    """Escape Markdown so user text renders literally (no links, no emphasis, no HTML)."""
    return "".join("\\" + ch if ch in _MD_SPECIAL else ch for ch in text)


#: Bidirectional controls: embeddings and overrides (U+202A–U+202E), isolates (U+2066–U+2069) and the
#: direction marks (U+200E, U+200F, U+061C). Shown as they are, they reorder what a person reads:
#: "invoice\u202egnp.exe" reads "invoiceexe.png".
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
_BIDI_MARKERS = {ord(ch): f"⟦U+{ord(ch):04X}⟧" for ch in BIDI_CONTROLS}


def reveal_bidi(value: str | None) -> str:
    """``value`` with each bidirectional control replaced by a visible marker such as ``⟦U+202E⟧``, so the text
    reads in the order it was typed and the trick shows. A display helper: stored text is never changed."""
    return (value or "").translate(_BIDI_MARKERS)


def user_md(text: str) -> str:
    """Text a user typed as Markdown that shows it as typed: wrapped, line breaks kept, never markup."""
    return "  \n".join(escape_md(line) for line in text.split("\n"))


def user_text(text: str | None) -> None:
    """Show text a user typed: wrapped, line breaks kept, never interpreted as markup."""
    if not text:
        return
    st.markdown(user_md(text))
