"""Knowledge pieces of the pages: safe Markdown, suggestions, repeat notices, follow-ups, preventive steps.

Used by pages/kb.py, pages/intake.py, pages/ticket.py and pages/queue.py. Everything a user typed is shown
as text (``core.escape_md``, ``st.text``); article Markdown goes through ``lib.safe_markdown`` (markdown-it
without raw HTML, then nh3) and is shown with ``st.html``, which sanitises it once more and never runs
scripts.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

import streamlit as st

from lib import clock, followups, kb, repeats, safe_markdown, search
from lib.followups import FollowUpRequest
from lib.models import ticket_ref
from lib.repeats import RepeatNotice
from lib.ui import core
from lib.ui.kept import kept
from lib.workflow import FollowUpSource, Role

SUGGESTION_TTL = 30


# --- Markdown ----------------------------------------------------------------------------------------------


def markdown(text: str | None, *, empty: str = "—") -> None:
    """Article Markdown, rendered safely (no raw HTML, links only http(s)/mailto/site paths, no scripts)."""
    html = safe_markdown.render(text)
    if html.strip():
        st.html(f'<div class="kb-article">{html}</div>')
    else:
        st.caption(empty)


def article_link(ref: str, article_id: int, title: str) -> str:
    return f"[{ref}](/kb?id={article_id}) · {core.escape_md(title)}"


# --- cached reads ------------------------------------------------------------------------------------------


@kept(ttl=SUGGESTION_TTL, max_entries=500)
def _suggest(summary: str, description: str, category_id: int | None, exclude: int | None) -> search.Suggestions:
    with core.reading() as s:
        return search.suggest(s, summary=summary, description=description or None, category_id=category_id,
                              exclude_ticket_id=exclude)


@st.cache_data(ttl=60, show_spinner=False)
def staff_names(minute: int) -> dict[int, str]:
    from lib.directory import active_staff

    with core.reading() as s:
        return {u.id: u.name for u in active_staff(s)}


# --- suggestions ---------------------------------------------------------------------------------------------


def suggestions(summary: str, *, category_id: int | None, description: str = "", ticket_id: int | None = None,
                user=None, heading: str = "💡 Suggestions") -> search.Suggestions:
    """Best matching published articles and similar resolved tickets; with ``ticket_id``, a button per article
    records "solved with KB-n" on that ticket."""
    if len(" ".join(summary.split())) < 4:
        return search.Suggestions()
    found = _suggest(summary.strip(), (description or "")[:400], category_id, ticket_id)
    with st.container(border=True, key=f"suggestions_{ticket_id or 'new'}"):
        if not found:  # the heading and "none" in one element: each element costs the page run
            st.markdown(f"#### {heading}\n\n:gray[No matching article or resolved ticket yet.]")
            return found
        st.markdown(f"#### {heading}")
        for hit in found.articles:
            st.markdown(f"📚 **{article_link(hit.ref, hit.id, hit.title)}**")
            if hit.resolution:
                st.caption(core.escape_md(hit.resolution[:300]))
            if ticket_id is not None and user is not None and st.button(
                    f"✅ Solved with {hit.ref}", key=f"solved_{ticket_id}_{hit.id}",
                    help="Link the article to this ticket; counts towards the article's solved tickets"):
                done = core.write(lambda s, a=hit.id: kb.link_article(s, actor=user.id, article_id=a,  # type: ignore[misc]  # mypy#15459: a= binds this hit
                                                                      ticket_id=ticket_id, solved=True),
                                  success=f"Recorded: solved with {hit.ref}")
                if done is not None:
                    st.rerun()
        for hit in found.tickets:
            st.markdown(f"🎫 **[{hit.ref}]({core.ticket_url(hit.id)})** · {core.escape_md(hit.title)}")
            if hit.resolution:
                st.caption("Resolution: " + core.escape_md(hit.resolution[:300]))
    return found


# --- repeat issues -------------------------------------------------------------------------------------------


def repeat_notices(notices: list[RepeatNotice], *, ticket_id: int | None = None, user=None) -> None:
    """"3rd ticket for this printer in 30 days" (one line per kind of repeat), with the other tickets and,
    on a ticket, the offers: schedule a follow-up, open a problem ticket."""
    if not notices:
        return
    lines = []
    for n in notices:
        others = ", ".join(f"[{ticket_ref(t)}]({core.ticket_url(t)})" for t in n.others[:8])
        more = f" and {len(n.others) - 8} more" if len(n.others) > 8 else ""
        problem = f" · part of problem [{ticket_ref(n.problem_id)}]({core.ticket_url(n.problem_id)})" \
            if n.problem_id else ""
        lines.append(f"**{core.escape_md(n.message)}** — {others}{more}{problem}")
    st.warning("  \n".join(lines), icon="🔁")
    if ticket_id is None or user is None or all(n.problem_id for n in notices):
        return
    act = st.expander("Act on this repeat: schedule a follow-up or open a problem ticket",
                      key=f"repeat_act_{ticket_id}", on_change="rerun")  # its forms are drawn only while open
    if not act.open:
        return
    with act:
        first = notices[0]
        schedule_form(ticket_id, user, key=f"repeat_fu_{ticket_id}", source=FollowUpSource.REPEAT,
                      note=f"Repeat issue: {first.message}")
        if Role(user.role) >= Role.LEAD:
            other_ids = list(dict.fromkeys(t for n in notices for t in n.others))
            problem_form([ticket_id, *other_ids], key=f"repeat_pb_{ticket_id}", user=user,
                         summary=f"Problem: {first.message}")
        else:
            st.caption("A lead opens problem tickets (Knowledge base → Repeat issues).")


def problem_form(ticket_ids: list[int], *, key: str, user, summary: str) -> None:
    with st.form(key):
        st.markdown("**Open a problem ticket** — the repeats become its linked tickets")
        title = st.text_input("Summary", value=summary[:200], key=f"{key}_summary")
        why = st.text_area("What to find out", key=f"{key}_desc", placeholder="e.g. why the rollers wear so fast")
        if st.form_submit_button("Open problem ticket"):
            result = core.write(lambda s: repeats.open_problem_ticket(s, actor=user.id, ticket_ids=ticket_ids,
                                                                      summary=title, description=why))
            if result is not None:
                skipped = f"; {len(result.skipped)} left as they were" if result.skipped else ""
                st.session_state["flash"] = (f"Opened {ticket_ref(result.problem.id)}: {len(result.linked)} linked, "
                                             f"{len(result.noted)} closed ticket(s) noted{skipped}")
                st.rerun()


# --- follow-ups ------------------------------------------------------------------------------------------------


def _due_inputs(key: str, user, *, days: int = 7):
    c1, c2, c3 = st.columns(3)
    day = c1.date_input("Due", value=(clock.now().astimezone(core.tz()) + timedelta(days=days)).date(), key=f"{key}_date")
    at = c2.time_input("at", value=time(9, 0), key=f"{key}_time")
    people = staff_names(int(clock.now().timestamp() // 60))
    ids = list(people)
    owner = c3.selectbox("Owner", ids, index=ids.index(user.id) if user.id in ids else 0,
                         format_func=lambda i: people.get(i, str(i)), key=f"{key}_owner")
    due = datetime.combine(day, at, tzinfo=core.tz()) if day else None
    return due, owner


def schedule_form(ticket_id: int, user, *, key: str, source: FollowUpSource = FollowUpSource.MANUAL,
                  note: str = "") -> None:
    with st.form(key):
        st.markdown("**Schedule a follow-up**")
        due, owner = _due_inputs(key, user)
        text = st.text_input("Note", value=note, key=f"{key}_note", placeholder="What to check")
        if st.form_submit_button("Schedule follow-up"):
            done = core.write(lambda s: followups.schedule(s, actor=user.id, ticket_id=ticket_id, due_at=due,
                                                           owner_id=owner, note=text, source=source),
                              success="Follow-up scheduled")
            if done is not None:
                st.session_state.pop(f"{key}_note", None)
                st.rerun()


@kept(ttl=600, max_entries=500)
def _follow_ups(ticket_id: int, marker: tuple, minute: int) -> list:
    """The ticket's follow-ups, read again when the ticket changes (scheduling, completing and reminding each
    add an event to it) or the minute turns (an owner renamed)."""
    with core.reading() as s:
        return followups.list_for_ticket(s, ticket_id)


@kept(ttl=600, max_entries=500)
def _linked_articles(ticket_id: int, marker: tuple, minute: int) -> list:
    """The articles linked to the ticket (linking adds an event to it); titles and states as of the minute."""
    with core.reading() as s:
        return kb.articles_for_ticket(s, ticket_id)


def follow_ups_panel(ticket_id: int, user) -> None:
    from lib.ui import ticket_view

    rows = _follow_ups(ticket_id, ticket_view.marker(ticket_id), clock.minute())
    now = clock.now()
    with st.container(border=True):
        # The heading and "none" in one element: each element costs the page run.
        st.markdown("#### 🗓️ Follow-ups" + ("" if rows else "\n\n:gray[None scheduled.]"))
        for r in rows:
            state = "✅ done" if r.completed_at else ("⏰ due" if r.due_at <= now else "scheduled")
            st.markdown(f"**{core.fmt_time(r.due_at)}** · {core.escape_md(r.owner)} · {state}")
            if r.note:
                st.caption(core.escape_md(r.note))
            if r.completed_at:
                st.caption("Outcome: " + core.escape_md(r.outcome or ""))
            elif r.owner_id == user.id or Role(user.role) >= Role.LEAD:
                with st.form(f"complete_fu_{r.id}"):
                    outcome = st.text_input("Outcome", key=f"fu_outcome_{r.id}", placeholder="What you found")
                    if st.form_submit_button("Complete follow-up"):
                        done = core.write(lambda s, fid=r.id, text=outcome: followups.complete(  # type: ignore[misc]  # mypy#15459: defaults bind this row
                            s, actor=user.id, follow_up_id=fid, outcome=text),
                                          success="Follow-up completed")
                        if done is not None:
                            st.rerun()
        add = st.expander("➕ Schedule a follow-up", key=f"fu_add_{ticket_id}", on_change="rerun")
        if add.open:  # the form is drawn only while open
            with add:
                schedule_form(ticket_id, user, key=f"fu_new_{ticket_id}")


def my_due_follow_ups(user_id: int) -> None:
    """The notes of the follow-ups behind the "Follow-ups due" queue view."""
    with core.reading() as s:
        rows = followups.list_due(s, owner_id=user_id)
    for r in rows:
        st.markdown(f"⏰ [{ticket_ref(r.ticket_id)}]({core.ticket_url(r.ticket_id)}) · due {core.fmt_time(r.due_at)}"
                    f" · {core.escape_md(r.note or r.summary)}")


def preventive_inputs(key: str, user) -> tuple[str, FollowUpRequest | None]:
    """Inside the close form: preventive steps and, optionally, a follow-up to check they worked."""
    steps = st.text_area("Preventive steps (optional): what was done so it does not happen again",
                         key=f"{key}_steps")
    want = st.checkbox("Schedule a follow-up to check them", key=f"{key}_want")
    due, owner = _due_inputs(f"{key}_fu", user, days=30)
    request = FollowUpRequest(due_at=due, owner_id=owner) if want and due else None
    return steps, request


# --- articles on a ticket ---------------------------------------------------------------------------------------


def ticket_knowledge(t, user) -> None:
    """Side panel of the ticket page: linked articles, "Create KB article" on a resolved ticket."""
    from lib.ui import ticket_view

    linked = _linked_articles(t.id, ticket_view.marker(t.id), clock.minute())
    with st.container(border=True):
        st.markdown("#### 📚 Knowledge")
        for a in linked:
            tag = "✅ solved with" if a.solved else "🔗 linked"
            st.markdown(f"{tag} {article_link(a.ref, a.article_id, a.title)}"
                        + (" · draft" if a.status != "published" else ""))
        if t.resolved_at is not None and (t.resolution_notes or "").strip():
            if st.button("📝 Create KB article", key=f"kb_draft_{t.id}",
                         help="Drafts an article from the summary, device, root cause, workaround and resolution"):
                article = core.write(lambda s: kb.draft_from_ticket(s, actor=user.id, ticket_id=t.id))
                if article is not None:
                    st.session_state["flash"] = f"Drafted {kb.kb_ref(article.id)}: edit and publish it"
                    st.rerun()
        with st.form(f"kb_link_{t.id}"):
            row = st.container(horizontal=True, gap="small", vertical_alignment="bottom")  # one element, not three
            ref = row.text_input("Link an article", key=f"kb_link_ref_{t.id}", placeholder="KB-12")
            solved = row.checkbox("Solved it", key=f"kb_link_solved_{t.id}", value=True, width="content")
            if st.form_submit_button("Link"):
                aid = kb.parse_kb_ref(ref)
                if aid is None:
                    st.error(f"{ref!r} is not an article number (KB-12).")
                elif core.write(lambda s: kb.link_article(s, actor=user.id, article_id=aid, ticket_id=t.id,
                                                          solved=solved),
                                success=f"Linked {kb.kb_ref(aid)}") is not None:
                    st.rerun()


def ticket_repeats(ticket_id: int, user, *, marker: tuple | None = None) -> None:
    """The repeat notices on a ticket's page (``marker``: ticket_view.marker already read by the page)."""
    from sqlalchemy import func, select

    from lib.models import Ticket
    from lib.ui import ticket_view

    with core.reading() as s:
        newest = s.scalar(select(func.max(Ticket.id))) or 0
    marker = marker if marker is not None else ticket_view.marker(ticket_id)
    notices = _ticket_repeats(ticket_id, marker, newest, clock.minute())
    repeat_notices(notices, ticket_id=ticket_id, user=user)


@kept(ttl=120, max_entries=500)
def _ticket_repeats(ticket_id: int, marker: tuple, newest: int, minute: int) -> list:
    """A ticket's repeat notices, read again when the ticket changes, a ticket is added, or the minute turns (a
    change to another ticket that makes it count or not, e.g. marked as a duplicate, shows within the minute):
    not on every write of the desk."""
    with core.reading() as s:
        return repeats.notices_for_ticket(s, ticket_id)


def intake_repeats(*, requester_id: int | None, device_id: int | None, make_model: str | None,
                   category_id: int | None) -> None:
    if requester_id is None and device_id is None and not (make_model or "").strip():
        return
    with core.reading() as s:
        notices = repeats.notices_for_draft(s, requester_id=requester_id, device_id=device_id,
                                            make_model=make_model, category_id=category_id)
    repeat_notices(notices)


# --- the KB page's reads --------------------------------------------------------------------------------------


def load_article(article_id: int):
    """(article, versions, linked tickets), detached from the session; None when it does not exist."""
    with core.reading() as s:
        article = kb.get_article(s, article_id)
        if article is None:
            return None
        _ = (article.category, article.author)
        history = kb.versions(s, article_id)
        linked = kb.linked_tickets(s, article_id)
        s.expunge_all()
        return article, history, linked


def article_count() -> int:
    """How many articles there are, drafts included."""
    with core.reading() as s:
        return sum(n for _, _, n in kb.category_counts(s, include_drafts=True))


NEW_ARTICLE = "➕ New article"


def _open_new_article() -> None:  # a callback: it runs before the section picker is drawn
    st.session_state["kb_section"] = NEW_ARTICLE


def empty_state(role: Role) -> None:
    """What the knowledge base is and how its first article gets there, for a desk that has none yet."""
    with st.container(border=True, key="kb_empty"):
        st.markdown("#### 📭 No articles yet")
        st.markdown(
            "The knowledge base holds the desk's answers to problems it has solved: the **symptoms** a user sees, "
            "the **cause** and the **resolution steps**. Published articles are suggested on the *New ticket* "
            "form and on each ticket as you type, and searched here together with resolved tickets.")
        st.markdown(
            "**Add the first one**\n"
            "- **From a resolved ticket** (the quickest): open the ticket and click **📝 Create KB article** in its "
            "*Knowledge* panel. The draft is filled in from the ticket's summary, device, root cause and "
            "resolution; edit it and save.\n"
            f"- **From scratch**: under **{NEW_ARTICLE}** here.")
        if role >= Role.SENIOR:
            st.markdown("As a senior technician or team lead you draft **and publish**: open a draft and click "
                        "**🚀 Publish**. Technicians' drafts wait for you under **🗂️ Browse → Drafts**.")
        else:
            st.markdown("Technicians draft articles; a **senior technician or a team lead publishes** them. "
                        "Until then a draft is found here (Search, Browse → Drafts) but not suggested on tickets.")
        st.button("Write the first article", icon="✍️", key="kb_empty_new", on_click=_open_new_article)


def browse(category_id: int | None, status: str | None) -> tuple[list, list]:
    from lib.workflow import KbStatus

    with core.reading() as s:
        counts = kb.category_counts(s, include_drafts=status != KbStatus.PUBLISHED.value)
        rows = kb.list_articles(s, category_id=category_id, status=KbStatus(status) if status else None)
    return counts, rows


def run_search(query: str, *, kinds: tuple[str, ...], category_id: int | None) -> search.SearchResult:
    with core.reading() as s:
        return search.search(s, query, kinds=kinds, category_id=category_id, limit=20, include_drafts=True)  # type: ignore[arg-type]  # search() refuses unknown kinds


def repeat_groups() -> tuple[int, list]:
    from lib import queries

    with core.reading() as s:
        days, marker = repeats.window_days(s), queries.change_marker(s)
    return days, _repeat_groups(int(clock.now().timestamp() // 60), marker, days)


@st.cache_data(ttl=300, max_entries=20, show_spinner=False)
def _repeat_groups(minute: int, marker: int, days: int) -> list:
    """The lead's list: a GROUP BY over the window's tickets, so cached per minute, change marker and window."""
    with core.reading() as s:
        return repeats.list_repeat_issues(s, days=days)
