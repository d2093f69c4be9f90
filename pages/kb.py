"""Knowledge base: search, browse by category, write articles; one article at ?id=N (view, edit, history,
publish); repeat issues for the lead."""

from __future__ import annotations

import streamlit as st

from lib import kb, repeats
from lib.models import ticket_ref
from lib.ui import core, kb_view
from lib.ui.intake_data import categories
from lib.workflow import FollowUpSource, KbStatus, Role, Status

user = core.require_role(Role.TECHNICIAN)
role = Role(user.role)
core.flash()
cats = categories()


def article_form(key: str, a=None) -> kb.ArticleDraft | None:
    """The article fields; returns the draft when the form is submitted."""
    with st.form(key):
        title = st.text_input("Title", value=a.title if a else "", max_chars=200, key=f"{key}_title")
        c1, c2 = st.columns(2)
        ids = [0, *cats]
        current = a.category_id if a and a.category_id in cats else 0
        category = c1.selectbox("Category", ids, index=ids.index(current), key=f"{key}_cat",
                                format_func=lambda i: cats.get(i, "— none —"))
        tags = c2.text_input("Tags (comma-separated)", value=a.tags if a else "", key=f"{key}_tags")
        symptoms = st.text_area("Symptoms (what the user sees)", value=a.symptoms if a else "", key=f"{key}_sym")
        cause = st.text_area("Cause", value=a.cause if a else "", key=f"{key}_cause")
        steps = st.text_area("Resolution steps (Markdown: lists, **bold**, `code`, links)", height=220,
                             value=a.resolution_steps if a else "", key=f"{key}_steps")
        note = st.text_input("What changed (kept in the history)", key=f"{key}_note") if a else None
        if st.form_submit_button("Save" if a else "Save draft", type="primary"):
            st.session_state[f"{key}_change_note"] = note
            return kb.ArticleDraft(title=title, symptoms=symptoms, cause=cause, resolution_steps=steps,
                                   category_id=category or None, tags=tags)
    return None


# --- one article -------------------------------------------------------------------------------------------
raw_id = st.query_params.get("id")
if raw_id:
    aid = kb.parse_kb_ref(raw_id)
    loaded = kb_view.load_article(aid) if aid else None
    if loaded is None:
        st.error(f"Article {raw_id} does not exist.")
        st.markdown("[📚 Back to the knowledge base](/kb)")
        st.stop()
    a, history, linked = loaded
    vkey = f"kb_loaded_{a.id}"
    if vkey not in st.session_state:
        st.session_state[vkey] = a.version
    stale = st.session_state.get("stale_message")
    if stale and kb.kb_ref(a.id) in stale:
        st.error(stale, icon="🔄")
    st.title(f"📚 {kb.kb_ref(a.id)}")
    st.subheader(core.escape_md(a.title), anchor=False)
    c1, c2, c3 = st.columns([1, 1, 3])
    with c1:
        st.badge("Published" if a.status == KbStatus.PUBLISHED.value else "Draft",
                 color="green" if a.status == KbStatus.PUBLISHED.value else "gray")
    c2.caption(f"Version {a.version}")
    c3.caption(f"{core.escape_md(a.category.name) if a.category else 'No category'} · "
               f"by {core.escape_md(a.author.name) if a.author else 'system'} · updated {core.fmt_time(a.updated_at)}"
               + (f" · tags: {core.escape_md(a.tags)}" if a.tags else ""))
    panel = st.segmented_control("Article", ["📖 Article", "✏️ Edit", "🕘 History", "🎫 Tickets"],
                                 default="📖 Article", key=f"kb_panel_{a.id}", label_visibility="collapsed",
                                 required=True)
    if panel in (None, "📖 Article"):
        for heading, value in (("Symptoms", a.symptoms), ("Cause", a.cause)):
            st.markdown(f"##### {heading}")
            if value:
                core.user_text(value)
            else:
                st.caption("—")
        st.markdown("##### Resolution steps")
        kb_view.markdown(a.resolution_steps)
        if role >= Role.SENIOR:
            if a.status == KbStatus.DRAFT.value:
                if st.button("🚀 Publish", type="primary", key="kb_publish"):
                    if core.write(lambda s: kb.publish(s, actor=user.id, article_id=a.id,
                                                       expected_version=st.session_state[vkey]),
                                  success=f"Published {kb.kb_ref(a.id)}") is not None:
                        st.session_state.pop(vkey, None)
                        st.rerun()
            else:
                with st.popover("Unpublish"):
                    why = st.text_input("Why", key="kb_unpublish_why")
                    if st.button("Back to draft", key="kb_unpublish"):
                        if core.write(lambda s: kb.unpublish(s, actor=user.id, article_id=a.id, reason=why,
                                                             expected_version=st.session_state[vkey]),
                                      success="Unpublished") is not None:
                            st.session_state.pop(vkey, None)
                            st.rerun()
        elif a.status == KbStatus.DRAFT.value:
            st.caption("A senior technician or a lead publishes drafts.")
    elif panel == "✏️ Edit":
        if a.status == KbStatus.PUBLISHED.value and role < Role.SENIOR:
            st.info("Published articles are edited by a senior technician or a lead.", icon="🔒")
        else:
            changed = article_form(f"kb_edit_{a.id}", a)
            if changed is not None:
                note = st.session_state.get(f"kb_edit_{a.id}_change_note")
                if core.write(lambda s: kb.update_article(s, actor=user.id, article_id=a.id, draft=changed,  # type: ignore[arg-type]  # not None (checked above; lost in the lambda)
                                                          expected_version=st.session_state[vkey], note=note),
                              success="Saved as a new version") is not None:
                    st.session_state.pop(vkey, None)
                    st.session_state.pop("stale_message", None)
                    st.rerun()
            if st.session_state[vkey] != a.version:
                if st.button("Reload to the newest version", key="kb_reload"):
                    st.session_state.pop(vkey, None)
                    st.session_state.pop("stale_message", None)
                    st.rerun()
    elif panel == "🕘 History":
        for v in history:
            with st.expander(f"Version {v.version} · {v.status} · {v.editor.name if v.editor else 'system'} · "
                             f"{core.fmt_time(v.edited_at)}" + (f" · {v.note}" if v.note else "")):
                st.markdown(f"**{core.escape_md(v.title)}**")
                core.user_text(v.symptoms)
                kb_view.markdown(v.resolution_steps)
    else:
        if not linked:
            st.caption("No tickets linked yet.")
        for lt in linked:
            st.markdown(f"{'✅ solved' if lt.solved else '🔗 linked'} · [{ticket_ref(lt.ticket_id)}]"
                        f"({core.ticket_url(lt.ticket_id)}) · {Status(lt.status).label} · "
                        f"{core.escape_md(lt.summary)}")
    st.stop()

# --- the knowledge base ---------------------------------------------------------------------------------------
st.title("📚 Knowledge base")
no_articles = kb_view.article_count() == 0
if no_articles:
    kb_view.empty_state(role)
sections = ["🔎 Search", "🗂️ Browse", kb_view.NEW_ARTICLE] + (["🔁 Repeat issues"] if role >= Role.LEAD else [])
st.session_state.setdefault("kb_section", "🔎 Search")  # not a default=: the empty state's button sets it too
section = st.segmented_control("Section", sections, key="kb_section",
                               label_visibility="collapsed", required=True) or "🔎 Search"

if section == "🔎 Search":
    c1, c2, c3 = st.columns([3, 1, 1])
    query = c1.text_input("Search articles and resolved tickets", key="kb_query",
                          placeholder='e.g. printer jam, "tray 2", vpn OR wifi, outlook -password')
    what = c2.selectbox("In", ["Both", "Articles", "Resolved tickets"], key="kb_kinds")
    cat = c3.selectbox("Category", [0, *cats], format_func=lambda i: cats.get(i, "Any"), key="kb_search_cat")
    if not query.strip():
        st.caption("Type a few words and press Enter: articles and resolved tickets that match are listed here. "
                   + ("Resolved tickets are searched even before the first article is written." if no_articles
                      else "To look through every article, use **🗂️ Browse**."))
    if query.strip():
        kinds = {"Both": ("kb", "tickets"), "Articles": ("kb",), "Resolved tickets": ("tickets",)}[what]
        result = kb_view.run_search(query, kinds=kinds, category_id=cat or None)
        if result.message:
            st.info(result.message, icon="🔎")
        elif not result.hits:
            st.info("Nothing found. Try fewer or other words.", icon="🔎")
        for hit in result.hits:
            with st.container(border=True):
                if hit.kind == "kb":
                    draft = " · draft" if hit.status != KbStatus.PUBLISHED.value else ""
                    st.markdown(f"📚 **{kb_view.article_link(hit.ref, hit.id, hit.title)}**{draft}")
                else:
                    st.markdown(f"🎫 **[{hit.ref}]({core.ticket_url(hit.id)})** · {core.escape_md(hit.title)}")
                if hit.snippet:
                    st.caption(core.escape_md(hit.snippet))
                if hit.resolution:
                    st.caption("Resolution: " + core.escape_md(hit.resolution))

elif section == "🗂️ Browse":
    c1, c2 = st.columns([2, 1])
    status = c2.selectbox("Show", ["published", "draft", ""], key="kb_browse_status",
                          format_func=lambda v: {"published": "Published", "draft": "Drafts", "": "All"}[v])
    counts, _ = kb_view.browse(None, status or None)
    options = [0, *[cid or -1 for cid, _, _ in counts]]
    labels = {0: "All categories", **{cid or -1: f"{name} ({n})" for cid, name, n in counts}}
    pick = c1.selectbox("Category", options, format_func=lambda i: labels.get(i, str(i)), key="kb_browse_cat")
    _, rows = kb_view.browse(pick if pick and pick > 0 else None, status or None)
    if pick == -1:
        rows = [r for r in rows if r.category_id is None]
    if not rows:
        st.info("No articles here yet. Draft one from a resolved ticket (📝 Create KB article) or under "
                "**New article**.", icon="📭")
    for r in rows:
        solved = f" · solved {r.solved_count} ticket(s)" if r.solved_count else ""
        st.markdown(f"- **{kb_view.article_link(r.ref, r.id, r.title)}** · {core.escape_md(r.category or '—')} · "
                    f"{r.status}{solved} · {core.fmt_time(r.updated_at)}")

elif section == kb_view.NEW_ARTICLE:
    new = article_form("kb_new")
    if new is not None:
        article = core.write(lambda s: kb.create_article(s, actor=user.id, draft=new))  # type: ignore[arg-type]  # not None (checked above; lost in the lambda)
        if article is not None:
            st.session_state["flash"] = f"Saved draft {kb.kb_ref(article.id)}"
            for key in [k for k in st.session_state if str(k).startswith("kb_new_")]:
                del st.session_state[key]
            st.query_params["id"] = str(article.id)
            st.rerun()

else:  # repeat issues, for the lead
    days, groups = kb_view.repeat_groups()
    c1, c2 = st.columns([3, 1])
    c1.caption(f"The same requester, the same device, or the same category on the same device model, "
               f"again within {days} days. Largest first.")
    with c2.popover(f"Window: {days} days"):
        new_days = st.number_input("Days", min_value=1, max_value=repeats.MAX_WINDOW_DAYS, value=days,
                                   key="repeat_days")
        if st.button("Save", key="repeat_days_save"):
            if core.write(lambda s: repeats.set_window_days(s, actor=user.id, days=int(new_days)),
                          success="Window saved") is not None:
                st.rerun()
    if not groups:
        st.info("No repeat issues in the window.", icon="🎉")
    for i, g in enumerate(groups):
        with st.container(border=True):
            what = f" · {core.escape_md(g.category)}" if g.category else ""
            st.markdown(f"**🔁 {g.kind.label}: {core.escape_md(g.label)}**{what} · {g.count} tickets, "
                        f"{g.open_count} open · latest {core.fmt_time(g.latest_at)}")
            st.markdown(" ".join(f"[{ticket_ref(t)}]({core.ticket_url(t)})" for t in g.ticket_ids[:15]))
            if g.problem_id:
                st.caption(f"Problem ticket: [{ticket_ref(g.problem_id)}]({core.ticket_url(g.problem_id)})")
                continue
            with st.expander("Schedule a follow-up or open a problem ticket"):
                kb_view.schedule_form(g.ticket_ids[0], user, key=f"rg_fu_{i}", note=f"Repeat issue: {g.label}",
                                      source=FollowUpSource.REPEAT)
                kb_view.problem_form(g.ticket_ids, key=f"rg_pb_{i}", user=user,
                                     summary=f"Problem: repeated issues on {g.label}")
