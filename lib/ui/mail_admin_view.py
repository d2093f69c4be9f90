"""Admin → Mail (lead only): the mail templates with a live preview on a real ticket, the outbox (send a failed
mail again, cancel a waiting one, read one) and the quarantine (read a message inert, release it into intake,
delete it). Rules live in lib.mail.admin; mail and messages are shown as plain text, never rendered."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from lib import notify
from lib.errors import HelpdeskError
from lib.mail import admin, outbound, raw_store
from lib.models import User, ticket_ref
from lib.queries import parse_ref
from lib.ui import core

SECTIONS = {"templates": "📝 Templates", "outbox": "📤 Outbox", "quarantine": "🚧 Quarantine"}
STATE_LABELS = {outbound.PENDING: "waiting", outbound.SENT: "sent", outbound.FAILED: "failed",
                outbound.CANCELLED: "cancelled"}


def render(lead: User) -> None:
    section = st.radio("Show", list(SECTIONS), format_func=SECTIONS.__getitem__, horizontal=True,
                       key="mail_section", label_visibility="collapsed")
    if section == "templates":
        _templates(lead)
    elif section == "outbox":
        _outbox(lead)
    else:
        _quarantine(lead)


# --- templates -------------------------------------------------------------------------------------


def _template_keys(name: str) -> tuple[str, str]:
    return f"mt_subject_{name}", f"mt_body_{name}"


def _templates(lead: User) -> None:
    with core.reading() as s:
        current = notify.templates(s)
        edited = admin.edited(s)
        problems = admin.stored_problems(s)
        default_ticket = admin.default_preview_ticket(s)
    st.caption("The mails the desk sends. Plain text with placeholders in braces; every change is checked before it "
               "is saved and recorded in the audit log.")
    names = list(notify.DEFAULT_TEMPLATES)
    name = st.selectbox("Template", names, key="mt_pick",
                        format_func=lambda n: f"{n}{' (edited)' if n in edited else ''} — {admin.PURPOSES.get(n, 'mail to staff')}")
    with st.expander("Placeholders"):
        st.markdown("\n".join(f"- `{{{k}}}`: {admin.PLACEHOLDERS.get(k, '')}" for k in admin.placeholders(name))
                    + "\n\nA brace meant as text is written twice: `{{` or `}}`.")
    if name in problems:
        st.warning(f"The saved text of this template does not work ({problems[name]}), so mail uses the default "
                   "until it is corrected or reset.", icon="⚠️")
    key_subject, key_body = _template_keys(name)
    for key, part in ((key_subject, "subject"), (key_body, "body")):
        if key not in st.session_state:
            st.session_state[key] = current[name][part]
    subject = st.text_input("Subject", key=key_subject)
    errors = admin.check_template(name, subject, st.session_state[key_body])
    if errors.get("subject"):
        st.error(f"Subject {errors['subject']}", icon="✋")
    body = st.text_area("Body", key=key_body, height=260)
    if errors.get("body"):
        st.error(f"Body {errors['body']}", icon="✋")
    c1, c2 = st.columns(2)
    if c1.button("Save template", type="primary", key="mt_save"):
        if core.write(lambda s: admin.save_template(s, name, subject=subject, body=body, actor=lead.id),
                      success=f"Template {name} saved"):
            st.rerun()
    if name in edited and c2.button("Reset to the default", key="mt_reset"):
        if core.write(lambda s: admin.reset_template(s, name, actor=lead.id),
                      success=f"Template {name} is back to the default"):
            st.session_state.pop(key_subject, None)
            st.session_state.pop(key_body, None)
            st.rerun()
    _preview(name, subject, body, errors, default_ticket)


def _preview(name: str, subject: str, body: str, errors: dict[str, str], default_ticket: int | None) -> None:
    st.markdown("##### Preview")
    if default_ticket is None:
        st.info("No ticket yet to preview on.")
        return
    if "mt_ticket" not in st.session_state:
        st.session_state["mt_ticket"] = ticket_ref(default_ticket)
    ref = st.text_input("On ticket", key="mt_ticket", help="The mail this ticket's requester would get (unsaved "
                        "changes included). Confirmation links are shown as a sample; none is made.")
    ticket_id = parse_ref(ref)
    if ticket_id is None:
        st.error(f"{ref!r} is not a ticket number.")
        return
    if errors:
        st.info("Correct the template above to see the preview.")
        return
    try:
        with core.reading() as s:
            shown = admin.preview(s, name, ticket_id=ticket_id, subject=subject, body=body)
    except HelpdeskError as exc:
        st.error(str(exc))
        return
    if not shown.to:
        st.warning(f"{ticket_ref(ticket_id)} has no e-mail address to send this to: nothing would be sent.")
    st.text(f"To: {core.reveal_bidi(shown.to) or '—'}\nSubject: {core.reveal_bidi(shown.subject)}")
    st.code(core.reveal_bidi(shown.body), language=None, wrap_lines=True)


# --- outbox ----------------------------------------------------------------------------------------


def _outbox(lead: User) -> None:
    states = ["", *outbound.STATES]
    state = st.selectbox("State", states, key="ob_state",
                         format_func=lambda v: STATE_LABELS.get(v, "all"))
    with core.reading() as s:
        counts = admin.outbox_counts(s)
        rows = admin.list_outbox(s, state=state or None)
    st.caption(" · ".join(f"{STATE_LABELS[k]}: {n}" for k, n in counts.items())
               + " — the worker sends waiting mail each cycle; a failed one is kept with the server's answer.")
    if not rows:
        st.info("No mail here.")
        return
    st.dataframe(pd.DataFrame([{
        "id": r.id, "state": STATE_LABELS.get(r.state, r.state) + (" (sending now)" if r.claimed else ""),
        "to": r.to, "subject": r.subject, "ticket": ticket_ref(r.ticket_id) if r.ticket_id else "",
        "attempts": r.attempts, "next try": core.fmt_time(r.next_attempt_at) if r.state == outbound.PENDING else "",
        "created": core.fmt_time(r.created_at), "sent": core.fmt_time(r.sent_at) if r.sent_at else "",
        "last error": r.last_error or ""} for r in rows]), hide_index=True, width="stretch")
    by_id = {r.id: r for r in rows}
    pick = st.selectbox("Mail", list(by_id), key="ob_pick",
                        format_func=lambda i: f"{i} · {STATE_LABELS.get(by_id[i].state, by_id[i].state)} · "
                                              f"{by_id[i].to} · {by_id[i].subject[:80]}")
    picked = by_id[pick]
    if picked.state in (outbound.FAILED, outbound.CANCELLED):
        if st.button("Send it again", key="ob_retry", type="primary"):
            if core.write(lambda s: admin.retry_mail(s, pick, actor=lead.id),
                          success=f"Mail {pick} will be sent again"):
                st.rerun()
    elif picked.state == outbound.PENDING:
        if st.button("Cancel it", key="ob_cancel", help="It will not be sent; its ticket gets a note saying so"):
            if core.write(lambda s: admin.cancel_mail(s, pick, actor=lead.id),
                          success=f"Mail {pick} cancelled"):
                st.rerun()
    with core.reading() as s:
        mail = admin.get_mail(s, pick)
        headers = (f"To: {mail.to_address}\nSubject: {mail.subject}\nMessage-ID: {mail.message_id}"
                   + (f"\nIn-Reply-To: {mail.in_reply_to}" if mail.in_reply_to else ""))
        body = mail.body
    if picked.last_error:
        st.text(f"Last error: {core.reveal_bidi(picked.last_error)}")
    st.text(core.reveal_bidi(headers))
    st.code(core.reveal_bidi(body), language=None, wrap_lines=True)


# --- quarantine ------------------------------------------------------------------------------------


def _quarantine(lead: User) -> None:
    with core.reading() as s:
        rows = admin.list_quarantine(s)
    waiting = sum(1 for r in rows if not r.resolved)
    st.caption(f"{waiting} message(s) to review. Mail the desk would not take in by itself (spam, lists, automatic "
               "mail, mail loops, mail it could not read), kept with the reason.")
    if not rows:
        st.info("The quarantine is empty.")
        return

    def result(r: admin.QuarantineRow) -> str:
        if r.ticket_id is not None:
            return f"released: {'ticket' if r.outcome == 'ticket' else 'comment on'} {ticket_ref(r.ticket_id)}"
        return "resolved" if r.resolved else "to review"

    st.dataframe(pd.DataFrame([{
        "id": r.id, "received": core.fmt_time(r.received_at), "from": core.reveal_bidi(r.from_address or "?"),
        "subject": core.reveal_bidi(r.subject or ""), "reason": r.reason, "state": result(r)} for r in rows]),
        hide_index=True, width="stretch")
    by_id = {r.id: r for r in rows}
    pick = st.selectbox("Message", list(by_id), key="q_pick",
                        format_func=lambda i: f"{i} · {result(by_id[i])} · {by_id[i].from_address or '?'} · "
                                              f"{(by_id[i].subject or '')[:80]}")
    picked = by_id[pick]
    with core.reading() as s:
        data = bytes(admin.get_quarantined(s, pick).raw)
    st.text(f"Reason: {picked.reason}\nFrom: {core.reveal_bidi(picked.from_address or '?')}\n"
            f"Subject: {core.reveal_bidi(picked.subject or '')}\nReceived: {core.fmt_time(picked.received_at)}\n"
            f"Message-ID: {core.reveal_bidi(picked.message_id or '')}")
    if picked.ticket_id is not None:
        st.markdown(f"Became [{ticket_ref(picked.ticket_id)}]({core.ticket_url(picked.ticket_id)}).")
    c1, c2 = st.columns(2)
    if not picked.resolved:
        problem = admin.unreadable(data)
        if problem:
            c1.info(f"This message cannot be released: {problem}.")
        elif c1.button("Release into intake", key="q_release", type="primary",
                       help="Taken in as if it had just arrived, past the check that held it: a new ticket (with "
                            "its acknowledgement) or a comment on the ticket it answers"):
            done = core.write(lambda s: admin.release(s, pick, actor=lead.id))
            if done is not None:
                st.session_state["flash"] = f"Released: {'new ticket' if done.kind == 'ticket' else 'comment on'} " \
                                            f"{ticket_ref(done.ticket_id or 0)}"
                st.rerun()
    sure = c2.checkbox("Delete this message for good", key=f"q_delete_sure_{pick}")
    if sure and c2.button("Delete", key="q_delete"):
        if core.write(lambda s: admin.delete_quarantined(s, pick, actor=lead.id),
                      success=f"Quarantined message {pick} deleted"):
            st.session_state.pop("q_pick", None)
            st.session_state.pop(f"q_delete_sure_{pick}", None)
            st.rerun()
    st.download_button("⬇️ Download the message (.eml)", data=data, file_name=f"quarantined-{pick}.eml",
                       mime="application/octet-stream", key="q_download")
    text = raw_store.as_text(data)
    if len(text) > raw_store.SHOWN_CHARS:
        st.warning(f"The message is long: the first {raw_store.SHOWN_CHARS:,} characters are shown; download it "
                   "for the rest.")
        text = text[: raw_store.SHOWN_CHARS]
    st.code(core.reveal_bidi(text), language=None, wrap_lines=True)
