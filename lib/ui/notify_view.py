"""Admin → Notifications (lead only): the status updates requesters get, and the outbound webhook with its
recent deliveries (retry a failed one, cancel a waiting one). Rules live in lib.notify and lib.webhooks."""

from __future__ import annotations

import pandas as pd
import streamlit as st
from sqlalchemy import select

from lib import notify, report_mail, webhooks
from lib.models import User, WebhookDelivery, ticket_ref
from lib.ui import core

RECENT = 50


def _recent_deliveries() -> list[WebhookDelivery]:
    with core.reading() as s:
        rows = list(s.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id.desc()).limit(RECENT)))
        s.expunge_all()
        return rows


def render(lead: User) -> None:
    with core.reading() as s:
        updates = notify.requester_updates(s)
        config = webhooks.get_config(s)

    st.markdown("#### Status updates to requesters")
    st.caption("Requesters with an e-mail address always get the receipt, requests for information, public replies, "
               "the resolution with its confirmation links, the closure and a reopening. Choose which status changes "
               "they hear of too.")
    with st.form("requester_updates"):
        chosen = [kind for kind, what in notify.UPDATE_CHOICES.items()
                  if st.checkbox(what[0].upper() + what[1:], value=kind in updates, key=f"upd_{kind}")]
        if st.form_submit_button("Save status updates"):
            core.write(lambda s: notify.set_requester_updates(s, chosen, actor=lead.id),
                       success="Status updates saved")

    st.markdown("#### The weekly report by mail")
    st.caption("Sent to every active lead and to whoever subscribes on My account: the headline numbers, two trend "
               "charts, and the CSV and XLSX attached; the last full week, once.")
    with core.reading() as s:
        schedule = report_mail.get_schedule(s)
    with st.form("report_schedule"):
        c1, c2, c3 = st.columns([1, 2, 1])
        on = c1.toggle("Send it", value=schedule.enabled, key="rm_on")
        day = c2.selectbox("Day", list(range(7)), index=schedule.weekday, format_func=report_mail.WEEKDAYS.__getitem__,
                           key="rm_day")
        hour = c3.number_input(f"Hour ({core.tz().key})", 0, 23, schedule.hour, key="rm_hour")
        if st.form_submit_button("Save the schedule"):
            core.write(lambda s: report_mail.save_schedule(s, actor=lead.id, enabled=on, weekday=int(day),
                                                           hour=int(hour)), success="Schedule saved")

    st.markdown("#### Webhook")
    st.caption("Each chosen event is POSTed as signed JSON to this address (a Teams or Slack workflow, a chat bot, "
               "another system); see docs/notifications.md for the fields and how to check the signature.")
    errors = st.session_state.get("webhook_errors", {})
    with st.form("webhook"):
        url = st.text_input("Address (https://…)", value=config.url if config else "", key="wh_url")
        events = st.multiselect("Events to send", list(webhooks.EVENT_CHOICES),
                                default=list(config.events if config else webhooks.DEFAULT_EVENTS),
                                format_func=lambda k: webhooks.EVENT_CHOICES[k], key="wh_events")
        active = st.toggle("On", value=config.active if config else True, key="wh_active")
        renew = st.checkbox("Make a new signing secret (the receiver must be given it)", value=False,
                            key="wh_renew") if config else False
        for k in ("url", "events"):
            if errors.get(k):
                st.error(f"{k}: {errors[k]}")
        if st.form_submit_button("Save webhook", type="primary"):
            core.write(lambda s: webhooks.save_config(s, actor=lead.id, url=url, events=events, active=active,
                                                      new_secret=renew),
                       errors_key="webhook_errors", success="Webhook saved")
            st.rerun()
    if config is None:
        st.info("No webhook yet: nothing is sent.", icon="🔕")
        return
    with st.expander("🔑 Signing secret"):
        st.code(config.secret, language=None)
    if st.button("Remove the webhook", key="wh_remove"):
        core.write(lambda s: webhooks.remove_config(s, actor=lead.id), success="Webhook removed")
        st.rerun()

    rows = _recent_deliveries()
    st.markdown(f"##### Recent deliveries ({len(rows)})")
    if not rows:
        st.caption("None yet: the worker sends them within a minute of each event.")
        return
    st.dataframe(pd.DataFrame([{
        "id": r.id, "event": r.kind, "ticket": ticket_ref(r.ticket_id) if r.ticket_id else "",
        "state": r.state, "tries": r.attempts, "created": core.fmt_time(r.created_at),
        "sent": core.fmt_time(r.sent_at) if r.sent_at else "", "next try": core.fmt_time(r.next_attempt_at)
        if r.state == webhooks.PENDING else "", "last error": r.last_error or ""} for r in rows]),
        hide_index=True, width="stretch")
    retryable = [r.id for r in rows if r.state in (webhooks.FAILED, webhooks.CANCELLED)]
    waiting = [r.id for r in rows if r.state == webhooks.PENDING]
    c1, c2 = st.columns(2)
    if retryable:
        pick = c1.selectbox("Failed or cancelled delivery", retryable, key="wh_retry_pick")
        if c1.button("Send it again", key="wh_retry"):
            core.write(lambda s: webhooks.retry(s, pick, actor=lead.id), success=f"Delivery {pick} will be sent again")
            st.rerun()
    if waiting:
        pick_w = c2.selectbox("Waiting delivery", waiting, key="wh_cancel_pick")
        if c2.button("Cancel it", key="wh_cancel"):
            core.write(lambda s: webhooks.cancel(s, pick_w, actor=lead.id), success=f"Delivery {pick_w} cancelled")
            st.rerun()
