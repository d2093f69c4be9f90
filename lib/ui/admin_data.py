"""Reads for the admin page (small tables)."""

from __future__ import annotations

from datetime import time

from sqlalchemy import func, select

from lib import audit_log, sla, users
from lib.directory import list_categories
from lib.models import Ticket
from lib.queries import list_users
from lib.ui.core import fmt_time, reading, tz
from lib.workflow import OPEN_STATUSES, Role


def people() -> list[dict]:
    with reading() as s:
        open_by_user = dict(s.execute(
            select(Ticket.assignee_id, func.count()).where(Ticket.status.in_([x.value for x in OPEN_STATUSES]),
                                                           Ticket.assignee_id.is_not(None))
            .group_by(Ticket.assignee_id)).all())
        rows = []
        for u in list_users(s):
            rows.append({
                "id": u.id, "Username": u.username, "Name": u.name, "Role": Role(u.role).label,
                "role_key": Role(u.role).key, "Active": u.active, "Capacity": u.capacity,
                "Open tickets": open_by_user.get(u.id, 0),
                "Locked": "yes" if u.locked_until else "",
                "Last login": fmt_time(u.last_login_at),
                "away_until": u.away_until.astimezone(tz()).date() if u.away_until else None,
                "skills": {sk.category_id: sk.level for sk in u.skills},
            })
        return rows


def reassign_choices(people_rows: list[dict], *, exclude: int) -> dict[int, str]:
    """Active people who may take over someone's open tickets, labelled with their role and open tickets."""
    return {p["id"]: f"{p['Name']} ({p['Role'].lower()}, {p['Open tickets']} open)"
            for p in people_rows if p["Active"] and p["id"] != exclude}


def saved_message(people_rows: list[dict], *, person: int, active: bool, hand_on: str | None,
                  to: int | None) -> str:
    """The flash after saving a person: when the save deactivates them, says so, and where their open tickets went."""
    by_id = {p["id"]: p for p in people_rows}
    row = by_id[person]
    if active:
        return "Saved"
    held = int(row["Open tickets"])
    if held and hand_on is not None:
        if hand_on == users.OpenTickets.QUEUE:
            where = "returned to the unassigned queue"
        else:
            where = f"reassigned to {by_id[to]['Name']}" if to in by_id else "reassigned"
        return f"Saved; {row['Name']} is deactivated and their {held} open ticket(s) were {where}"
    return f"Saved; {row['Name']} is deactivated" if row["Active"] else "Saved"


def categories(*, include_inactive: bool = False, with_usage: bool = False):
    with reading() as s:
        cats = list_categories(s, include_inactive=include_inactive)
        if not with_usage:
            return {c.id: c.name for c in cats}
        used = dict(s.execute(select(Ticket.category_id, func.count()).group_by(Ticket.category_id)).all())
        return [{"id": c.id, "Name": c.name, "Active": c.active, "Tickets": used.get(c.id, 0)} for c in cats]


def sla_targets() -> list[dict]:
    with reading() as s:
        return [{"priority": t.priority, "ack": t.ack_minutes, "response": t.response_minutes,
                 "resolution": t.resolution_minutes, "business_hours": t.business_hours} for t in sla.list_targets(s)]


def calendar() -> dict:
    with reading() as s:
        cal = sla.get_calendar(s)
        share = sla.get_risk_share(s)
    return {"tz": cal.tz, "start": cal.start if isinstance(cal.start, time) else time(9), "end": cal.end,
            "workdays": sorted(cal.workdays), "holidays": sorted(d.isoformat() for d in cal.holidays),
            "risk_share": share}


def audit_rows() -> list[dict]:
    with reading() as s:
        return [{"When": fmt_time(a.at), "Who": a.actor or "—", "What": a.action, "Target": a.target or "",
                 "Detail": a.detail or ""} for a in audit_log.list_audit(s)]
