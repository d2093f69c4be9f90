"""The ticket page as a shared workspace: drafts that survive, who else is on the ticket, live updates.

* :class:`Drafts` puts each free-text box of the page under a draft (lib/drafts.py): the text is restored into
  ``st.session_state`` before the widget is created, upserted on each run where it changed, shown as
  "Draft saved" in desk time with a "Discard draft" control, and deleted in the sending transaction.
* :func:`live` is one fragment that reruns alone every ``ticket_live_seconds``: it sends this tab's presence
  heartbeat, reads the ticket's change marker, and redraws the header, who else is here, what changed since
  this tab loaded the ticket, and the timeline. The text boxes are outside it, so nothing being typed is touched.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypeVar

import streamlit as st
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from lib import clock, db, drafts, presence
from lib.config import get_settings
from lib.drafts import Draft, DraftField
from lib.errors import ValidationError
from lib.models import ticket_ref
from lib.queries import TimelineEntry
from lib.ui import core
from lib.workflow import Status

T = TypeVar("T")
log = logging.getLogger(__name__)


def when(value: datetime, *, now: datetime | None = None) -> str:
    """A moment in desk time: ``14:03`` today, ``Tue 01 Dec 2026 14:03`` another day."""
    tz = core.tz()
    same_day = value.astimezone(tz).date() == (now or clock.now()).astimezone(tz).date()
    return core.fmt_time(value, with_date=not same_day)


# --- drafts -------------------------------------------------------------------------------------------------


class Drafts:
    """The signed-in user's drafts on one ticket, for one run of the page (read once, written on change)."""

    def __init__(self, user_id: int, ticket_id: int) -> None:
        self.user_id, self.ticket_id = user_id, ticket_id
        # Widget keys belong to one ticket: a tab that moves to another ticket starts from that ticket's drafts.
        if st.session_state.get("_drafts_ticket") != ticket_id:
            for marker in [str(k) for k in st.session_state if str(k).startswith("_dsaved_")]:
                key = marker[len("_dsaved_"):]
                for name in (key, marker, f"_dinit_{key}", f"_derr_{key}"):
                    st.session_state.pop(name, None)
            st.session_state["_drafts_ticket"] = ticket_id
        with core.reading() as s:
            self.held: dict[DraftField, Draft] = drafts.for_ticket(s, user_id=user_id, ticket_id=ticket_id)

    def writing(self) -> list[DraftField]:
        return drafts.writing(self.held)

    def prime(self, key: str, field: DraftField, initial: str = "") -> None:
        """Before the widget ``key`` is created: give it the saved draft, or ``initial``, unless it has a value."""
        saved_key, initial_key = f"_dsaved_{key}", f"_dinit_{key}"
        if key not in st.session_state:
            draft = self.held.get(field)
            st.session_state[key] = draft.text if draft else initial
            st.session_state[saved_key] = st.session_state[key]
        elif (st.session_state.get(initial_key, initial) != initial and field not in self.held
              and st.session_state[key] == st.session_state[initial_key]):
            # The ticket's own value changed (a save here or elsewhere) and this box held no edit: show the new one.
            st.session_state[key] = st.session_state[saved_key] = initial
        st.session_state[initial_key] = initial

    def persist(self, key: str, field: DraftField, value: str, initial: str = "") -> None:
        """After the widget: keep ``value`` as the draft when it changed since last kept (blank or back to
        ``initial``: no draft). A refusal (too long) is shown under the box; the text stays in it."""
        value = value or ""
        if st.session_state.get(f"_dsaved_{key}") == value:
            return
        keep = value if value != initial else ""
        try:
            kept = db.run_transaction(core.get_engine(), lambda s: drafts.save(
                s, user_id=self.user_id, ticket_id=self.ticket_id, field=field, text=keep), what="draft save")
        except ValidationError as exc:
            st.session_state[f"_derr_{key}"] = (f"Not kept as a draft: {'; '.join(exc.fields.values()) or exc}. "
                                               "Shorten it, or send it in parts.")
            return
        except DBAPIError:
            log.exception("a draft could not be saved")
            st.session_state[f"_derr_{key}"] = "The draft could not be saved just now; the text is still in the box."
            return
        st.session_state.pop(f"_derr_{key}", None)
        st.session_state[f"_dsaved_{key}"] = value
        if kept is None:
            self.held.pop(field, None)
        else:
            self.held[field] = kept

    def changed(self, key: str, field: DraftField, initial: str) -> None:
        """The box's on_change: runs first thing in the next run, even when that run no longer draws the box (a
        click on another panel right after typing), so the text is kept whatever the click did next."""
        self.persist(key, field, str(st.session_state.get(key) or ""), initial)

    def status(self, key: str, field: DraftField, initial: str = "") -> None:
        """One line under the box, always there (a line that appeared on the first save would move the buttons
        below it while they are being clicked): when the draft was saved, and a control to discard it."""
        draft = self.held.get(field)
        if st.session_state.get(f"_derr_{key}"):
            st.error(st.session_state[f"_derr_{key}"], icon="✋")
        row = st.container(horizontal=True, vertical_alignment="center", gap="small", key=f"draft_row_{key}")
        if draft is not None:
            row.caption(f"💾 Draft saved {when(draft.updated_at)}")
        else:
            row.caption("Kept as a draft while you type")
        row.button("Discard draft", key=f"discard_{key}", type="tertiary", disabled=draft is None,
                     on_click=self._discard, args=(key, field, initial), width="content")

    def _discard(self, key: str, field: DraftField, initial: str) -> None:
        db.run_transaction(core.get_engine(), lambda s: drafts.discard(
            s, user_id=self.user_id, ticket_id=self.ticket_id, fields=[field]), what="draft discard")
        st.session_state[key] = initial
        st.session_state[f"_dsaved_{key}"] = initial
        self.held.pop(field, None)
        st.session_state["flash"] = "Draft discarded"

    def box(self, label: str, field: DraftField, *, key: str, initial: str = "",
            widget: Callable[..., Any] | None = None, **kwargs: Any) -> str:
        """A text box under a draft: restored, kept as it changes, with its "Draft saved" line."""
        self.prime(key, field, initial)
        value = (widget or st.text_area)(label, key=key, on_change=self.changed, args=(key, field, initial), **kwargs)
        if not kwargs.get("disabled"):  # a box this person may not edit holds no draft
            self.persist(key, field, value, initial)
            self.status(key, field, initial)
        return str(value or "")

    def sending(self, fn: Callable[[Session], T], *fields: DraftField) -> Callable[[Session], T]:
        """``fn`` and the deletion of the drafts it sends, in one transaction: a refused send keeps them."""
        def run(s: Session) -> T:
            result = fn(s)
            drafts.discard(s, user_id=self.user_id, ticket_id=self.ticket_id, fields=list(fields))
            return result
        return run

    def forget(self, *keys: str) -> None:
        """After a send: the widgets start again from the database (where the sent drafts are gone)."""
        for key in keys:
            for name in (key, f"_dsaved_{key}", f"_dinit_{key}", f"_derr_{key}"):
                st.session_state.pop(name, None)


# --- what changed since this tab loaded the ticket ---------------------------------------------------------


def describe(e: TimelineEntry, *, now: datetime | None = None) -> str:
    """One change in words, in desk time: "Ben Vega changed the status to Waiting on vendor at 14:03"."""
    if e.field:
        what = f"changed the {e.field.replace('_', ' ')} from {e.old_value or '—'} to {e.new_value or '—'}"
    elif e.to_status and e.from_status != e.to_status:
        what = f"changed the status to {Status(e.to_status).label}"
        if e.kind not in ("status_changed",):
            what = f"{e.kind.replace('_', ' ')}: {what}"
    else:
        what = f"added {e.kind.replace('_', ' ')}"
    return f"{e.actor} {what} at {when(e.occurred_at, now=now)}"


def changes_since(timeline: list[TimelineEntry], loaded_version: int) -> list[TimelineEntry]:
    """The entries that moved the ticket past the version this tab loaded (field and status changes)."""
    return [e for e in timeline if isinstance((e.meta or {}).get("v"), int) and (e.meta or {})["v"] > loaded_version]


def changes_notice(ticket_id: int, timeline: list[TimelineEntry], *, loaded_version: int, current_version: int,
                   loaded_event: int, refused: bool, reload_key: str) -> None:
    """The one message about others' changes: shown as soon as they happen, and again (as a refusal) when a save
    met them. Who, what and when, in desk time; the input on the page is kept either way."""
    changed = changes_since(timeline, loaded_version) if current_version != loaded_version else []
    others = [e for e in timeline if e.id > loaded_event and e not in changed]
    if not changed and not others and not refused:
        return
    lines = [core.escape_md(describe(e)) for e in changed[-5:]]
    if len(changed) > 5:
        lines.insert(0, f"… and {len(changed) - 5} earlier change(s)")
    if changed or refused:
        head = (f"**Not saved: {ticket_ref(ticket_id)} was changed after you loaded it.**" if refused else
                f"**{ticket_ref(ticket_id)} was changed after you loaded it.**")
        tail = ("Your input is kept. Reload to see the new state, then save again." if refused else
                "Saving fields or status needs the newest state: reload first. What you typed stays.")
        body = "\n".join(f"- {line}" for line in lines) if lines else "- another change"
        extra = f"\n\n{len(others)} new timeline entr{'y' if len(others) == 1 else 'ies'} as well." if others else ""
        if refused and st.session_state.get("_stale_pointed") != loaded_version:
            # The refused button may be far down the page: point up to the message, once.
            st.session_state["_stale_pointed"] = loaded_version
            st.toast("Not saved: the ticket changed meanwhile. What and who are at the top of the page.", icon="🔄")
        with st.container(border=True):
            (st.error if refused else st.warning)(f"{head}\n{body}{extra}\n\n{tail}", icon="🔄" if refused else "🔔")
            if st.button("Reload to the newest state", key=reload_key, type="primary"):
                _reload(ticket_id)
                st.rerun(scope="app")  # the whole page, at the new version (a click here reruns only the fragment)
    else:
        st.caption(f"🔔 {len(others)} new timeline entr{'y' if len(others) == 1 else 'ies'} since you opened this "
                   "ticket (below).")


def _reload(ticket_id: int) -> None:
    for key in (f"loaded_version_{ticket_id}", f"loaded_event_{ticket_id}", "stale_message"):
        st.session_state.pop(key, None)


# --- who else is here --------------------------------------------------------------------------------------


def beat_interval() -> float:
    """How often a tab writes its heartbeat: often enough that it never looks gone while open (three beats per
    staleness threshold), never more often than the page refreshes."""
    s = get_settings()
    return max(float(s.ticket_live_seconds or 1), s.presence_stale_seconds / 3)


#: Presence beats are written by one thread of their own: the page never waits for the write (a write
#: transaction on every page open), and nothing the page shows depends on its own beat.
_beats = ThreadPoolExecutor(max_workers=1, thread_name_prefix="presence-beat")


def _beat(engine: Engine, user_id: int, ticket_id: int, writing: list[DraftField], now: datetime,
          purge: bool) -> None:
    try:
        db.run_transaction(engine, lambda s: presence.heartbeat(
            s, user_id=user_id, ticket_id=ticket_id, writing=writing, now=now, purge=purge),
            attempts=2, what="presence")
    except DBAPIError:
        log.warning("presence heartbeat skipped", exc_info=True)
    except Exception:  # noqa: BLE001 - best effort, in a thread nobody waits for: say so in the log
        log.exception("presence heartbeat failed")


def heartbeat(user_id: int, ticket_id: int, writing: list[DraftField]) -> Future[None] | None:
    """This tab is on the ticket: one upsert, at most every :func:`beat_interval` unless the state changed,
    written in the background (the returned future). Presence is best effort: a busy database skips a beat
    instead of troubling the page."""
    key = f"_presence_{ticket_id}"
    state = presence.state_for(writing)
    last = st.session_state.get(key)
    now = clock.now()
    if last is not None and last[1] == state and (now - last[0]).total_seconds() < beat_interval():
        return None
    st.session_state[key] = (now, state)
    return _beats.submit(_beat, core.get_engine(), user_id, ticket_id, list(writing), now, last is None)


def others_here(people: list[presence.Present]) -> None:
    """One line, always there (so the page below never jumps): who else has the ticket open, and doing what."""
    with st.container(key="presence"):
        if not people:
            st.caption("👤 Nobody else has this ticket open.")
            return
        parts = [f"{'✍️' if p.writing else '👀'} {core.escape_md(p.name)} {p.doing}" for p in people]
        st.markdown("**" + " · ".join(parts) + "**")


# --- the live part of the page ------------------------------------------------------------------------------


def live(*, user_id: int, ticket_id: int, top: Any, below: Any, loaded_version: int, loaded_event: int,
         writing: list[DraftField]) -> None:
    """The fragment that keeps the page current without a reload: every ``ticket_live_seconds`` it beats this
    tab's presence, reads the change marker (cheap) and redraws, in ``top``, the header, who else is here and
    what changed since this tab loaded the ticket, and in ``below`` the timeline. A full run of the page draws
    it too. Nothing outside it is rerun, so text being typed elsewhere on the page is never disturbed."""
    from lib.ui import ticket_view

    interval = get_settings().ticket_live_seconds

    @st.fragment(run_every=interval if interval > 0 else None)
    def _live() -> None:
        heartbeat(user_id, ticket_id, writing)
        try:
            mark = ticket_view.marker(ticket_id)  # in a full run of the page: the one it read already
            with core.reading() as s:
                people = presence.on_ticket(s, ticket_id=ticket_id, exclude_user=user_id)
            snap = ticket_view.load_at(ticket_id, mark, clock.minute())
        except DBAPIError:
            log.warning("live ticket refresh failed", exc_info=True)
            with top:
                st.warning("The database is not answering, so this page is not being kept current; it tries again "
                           "every few seconds. What you typed is still here.", icon="🛠️")
            return
        if snap is None:
            return
        stale = st.session_state.get("stale_message")
        with top:
            ticket_view.header(snap)
            others_here(people)
            changes_notice(ticket_id, snap.timeline, loaded_version=loaded_version,
                           current_version=snap.ticket.version, loaded_event=loaded_event,
                           refused=bool(stale and ticket_ref(ticket_id) in stale), reload_key=f"reload_{ticket_id}")
        with below:
            ticket_view.timeline(snap, show_internal=bool(st.session_state.get("tl_internal", True)))

    _live()
