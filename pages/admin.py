"""Admin (lead only): users, skills, categories, SLA targets and calendar, notifications, mail (templates, outbox,
quarantine), canned replies, importing tickets, the audit log."""

from __future__ import annotations

from datetime import date

import pandas as pd
import streamlit as st

from lib import sla, users
from lib.directory import save_category
from lib.ui import admin_data, canned_view, core, import_view, mail_admin_view, notify_view
from lib.workflow import Permission, Priority, Role

lead = core.require_role(Permission.ADMIN)
core.flash()
st.title("⚙️ Admin")
tab_users, tab_cats, tab_sla, tab_notify, tab_mail, tab_canned, tab_import, tab_audit = st.tabs(
    ["👥 People", "🗂️ Categories", "⏱️ SLA", "🔔 Notifications", "✉️ Mail", "💬 Canned replies", "📥 Import",
     "📜 Audit log"])

with tab_users:
    people = admin_data.people()
    hidden = {"id", "role_key", "away_until", "skills"}
    st.dataframe(pd.DataFrame([{k: v for k, v in p.items() if k not in hidden} for p in people]), hide_index=True,
                 width="stretch")
    errors = st.session_state.get("newuser_errors", {})
    if st.session_state.pop("nu_created", False):  # an empty form for the next person (values set before the widgets)
        st.session_state.update(nu_username="", nu_name="", nu_email="", nu_pw="", nu_role=Role.TECHNICIAN.key,
                                nu_capacity=10)
    st.session_state.setdefault("nu_capacity", 10)  # the form's default, kept in one place
    with st.expander("➕ Add a person", expanded=not people or len(people) < 2):
        with st.form("new_user"):
            c1, c2 = st.columns(2)
            username = c1.text_input("Username", key="nu_username")
            name = c2.text_input("Full name", key="nu_name")
            c3, c4, c5 = st.columns(3)
            email = c3.text_input("E-mail", key="nu_email")
            role = c4.selectbox("Role", [r.key for r in Role], format_func=lambda k: Role.parse(k).label, key="nu_role")
            capacity = c5.number_input("Capacity (open tickets)", 0, 200, key="nu_capacity")
            pw = st.text_input("Initial password (tell them to change it)", type="password", key="nu_pw")
            for k in ("username", "name", "email", "password", "role", "capacity"):
                if errors.get(k):
                    st.error(f"{k}: {errors[k]}")
            if st.form_submit_button("Create account", type="primary"):
                created = core.write(lambda s: users.create_user(
                    s, actor=lead.id, username=username, name=name, email=email or None, password=pw, role=role,
                    capacity=int(capacity)), errors_key="newuser_errors", success="Account created")
                if created is not None:
                    st.session_state["nu_created"] = True
                st.rerun()
    if people:
        st.markdown("#### Edit a person")
        ids = [p["id"] for p in people]
        labels = {p["id"]: f"{p['Name']} ({p['Username']})" for p in people}
        pick = st.selectbox("Person", ids, format_func=lambda i: labels[i], key="edit_user_pick")
        p = next(x for x in people if x["id"] == pick)
        held = int(p["Open tickets"])
        # Outside the form, so unticking it shows at once what happens to the person's open tickets.
        active = st.checkbox("Active", value=p["Active"], key=f"eu_active_{pick}",
                             help="Unticked and saved: the account can no longer log in")
        with st.form(f"edit_user_{pick}"):
            c1, c2 = st.columns(2)
            new_role = c1.selectbox("Role", [r.key for r in Role], index=[r.key for r in Role].index(p["role_key"]),
                                    format_func=lambda k: Role.parse(k).label)
            new_cap = c2.number_input("Capacity", 0, 200, int(p["Capacity"]))
            hand_on: str | None = None
            hand_to: int | None = None
            if not active and held:
                st.warning(f"{p['Name']} holds **{held}** open ticket(s). Saving deactivates the account: choose "
                           "what happens to them. Nothing changes until you save.", icon="📦")
                h1, h2 = st.columns(2)
                hand_on = h1.radio("Their open tickets", [c.value for c in users.OpenTickets], index=None,
                                   format_func=lambda v: users.OpenTickets(v).label, key=f"eu_hand_on_{pick}")
                choices = admin_data.reassign_choices(people, exclude=pick)
                hand_to = h2.selectbox("Reassign to", list(choices), index=None, format_func=choices.__getitem__,
                                       placeholder="Choose an active person", key=f"eu_hand_to_{pick}",
                                       help="Used with “Reassign to …”")
            away = st.date_input("Away until (empty: available)", value=p["away_until"], min_value=date(2000, 1, 1))
            st.markdown("**Skills** (0 none … 3 expert)")
            cats = admin_data.categories()
            cols = st.columns(3)
            skills = {cid: cols[i % 3].slider(name, 0, 3, p["skills"].get(cid, 0), key=f"sk_{pick}_{cid}")
                      for i, (cid, name) in enumerate(cats.items())}
            if st.form_submit_button("Save"):
                from datetime import datetime, time

                away_dt = datetime.combine(away, time(23, 59), tzinfo=core.tz()) if away else None

                def apply(s):
                    users.update_user(s, actor=lead.id, user_id=pick, role=new_role, capacity=int(new_cap),
                                      active=True if active else None, away_until=away_dt)
                    if not active:  # with its open tickets, in the same transaction
                        users.deactivate(s, actor=lead.id, user_id=pick, open_tickets=hand_on,
                                         to=hand_to if hand_on == users.OpenTickets.REASSIGN else None)
                    return users.set_skills(s, actor=lead.id, user_id=pick, skills=skills)

                if core.write(apply, success=admin_data.saved_message(people, person=pick, active=active,
                                                                      hand_on=hand_on, to=hand_to)):
                    for k in ("eu_active", "eu_hand_on", "eu_hand_to"):
                        st.session_state.pop(f"{k}_{pick}", None)
                    st.rerun()
        with st.form(f"reset_pw_{pick}"):
            newpw = st.text_input("New password for this person", type="password", key=f"rpw_{pick}")
            if st.form_submit_button("Reset password") and core.write(
                lambda s: users.reset_password(s, actor=lead.id, user_id=pick, new=newpw) or True,  # type: ignore[func-returns-value]  # None, so "or True" makes success truthy
                success="Password reset; the account is unlocked",
            ):
                st.rerun()

with tab_cats:
    cats_all = admin_data.categories(include_inactive=True, with_usage=True)
    st.dataframe(pd.DataFrame(cats_all), hide_index=True, width="stretch")
    st.caption("Categories in use are deactivated, never deleted, so history keeps its meaning.")
    with st.form("cat_form"):
        options = [0, *[c["id"] for c in cats_all]]
        names = {c["id"]: c["Name"] for c in cats_all}
        pick = st.selectbox("Category", options, format_func=lambda i: "➕ New category" if i == 0 else names[i])
        new_name = st.text_input("Name", key="cat_name")
        active = st.checkbox("Active", value=True, key="cat_active")
        if st.form_submit_button("Save category") and core.write(
            lambda s: save_category(s, actor=lead.id, name=new_name or names.get(pick, ""),  # type: ignore[arg-type,return-value]  # mypy takes bool, the left side of "and", for T
                                    category_id=pick or None, active=active), success="Category saved"
        ):
            st.rerun()

with tab_sla:
    st.markdown("Targets per priority, in minutes. Business-hours targets count only the desk's opening hours; "
                "tickets keep the targets they were created with.")
    targets = admin_data.sla_targets()
    with st.form("sla_form"):
        edited = {}
        for t in targets:
            prio = Priority(t["priority"])
            st.markdown(f"**{prio.label}** — {prio.definition}")
            c = st.columns(4)
            edited[prio] = (
                c[0].number_input("Acknowledge (min)", 1, 525600, t["ack"], key=f"sla_ack_{prio.value}"),
                c[1].number_input("First response (min)", 1, 525600, t["response"], key=f"sla_resp_{prio.value}"),
                c[2].number_input("Resolution (min)", 1, 525600, t["resolution"], key=f"sla_res_{prio.value}"),
                c[3].checkbox("Business hours", t["business_hours"], key=f"sla_bh_{prio.value}"),
            )
        if st.form_submit_button("Save targets"):
            def save_all(s):
                for p, (a, r, z, b) in edited.items():
                    sla.update_target(s, actor=lead.id, priority=p, ack_minutes=int(a), response_minutes=int(r),
                                      resolution_minutes=int(z), business_hours=b)
                return True

            if core.write(save_all, success="SLA targets saved"):
                st.rerun()
    cal = admin_data.calendar()
    with st.form("calendar_form"):
        st.markdown("#### Business calendar")
        c1, c2, c3 = st.columns(3)
        tzname = c1.text_input("Time zone", cal["tz"])
        start = c2.time_input("Opens", cal["start"])
        end = c3.time_input("Closes", cal["end"])
        days = st.multiselect("Working days", list(range(7)), default=cal["workdays"],
                              format_func=lambda d: ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"][d])
        holidays = st.text_area("Holidays (one YYYY-MM-DD per line)", "\n".join(cal["holidays"]))
        share = st.slider("At risk when this share of a target is used", 10, 99, int(cal["risk_share"] * 100))
        if st.form_submit_button("Save calendar"):
            try:
                hol = [date.fromisoformat(x.strip()) for x in holidays.splitlines() if x.strip()]
                new_cal = sla.make_calendar(tz=tzname, workdays=days, start=start, end=end, holidays=hol)
            except Exception as exc:  # noqa: BLE001 - any bad entry is shown to the lead
                st.error(f"Calendar not saved: {exc}")
            else:
                if core.write(lambda s: sla.save_calendar(s, actor=lead.id, calendar=new_cal, risk_share=share / 100)  # type: ignore[func-returns-value]  # None, so "or True" makes success truthy
                              or True, success="Calendar saved"):
                    st.rerun()

with tab_notify:
    notify_view.render(lead)

with tab_mail:
    mail_admin_view.render(lead)

with tab_canned:
    canned_view.render(lead)

with tab_import:
    import_view.render(lead)

with tab_audit:
    st.dataframe(pd.DataFrame(admin_data.audit_rows()), hide_index=True, width="stretch")
