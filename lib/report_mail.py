"""The weekly report by mail: to every active lead and everyone who subscribed on My account, on the schedule a
lead sets on Admin (default Monday 08:00 desk time), exactly once per week however many workers run.

* **What.** The report of the last full ISO week (lib.metrics.weekly_report): an HTML body with the headline
  numbers and two trend charts as PNG images (created per priority, and the backlog, over the last weeks), a
  plain-text part with the same numbers, and the headline CSV and the full XLSX workbook attached. The images
  are drawn by Plotly's kaleido with the machine's Chromium; where none is installed the HTML shows the two
  trends as tables instead, and says so.
* **When.** The worker's step :func:`send_due` runs every cycle; from the scheduled moment of a week on (a worker
  that was down sends when it is back, during that same week), the last full week is due until it is sent. A
  week that ended before the desk's first ticket is not reported.
* **Once.** The mails are written to the outbox in the same transaction as a settings row
  ``report_mail_sent:<ISO week>`` (a primary key): a second worker's insert of that row fails and it writes
  nothing. The outbox then sends each mail once (its claims) and retries it like any other.
"""

from __future__ import annotations

import base64
import html
import io
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lib import clock
from lib.audit_log import audit
from lib.config import get_settings
from lib.db import read_session, transaction
from lib.desk_settings import lead_actor
from lib.errors import ValidationError
from lib.metrics import charts
from lib.metrics.measures import local_midnight, week_range
from lib.metrics.weekly_report import headline_table, last_full_week, tables, weekly_report
from lib.models import OutboxMail, Setting, Ticket, User
from lib.notify import new_message_id
from lib.transfer.safe_cells import CSV_QUOTING, neutralise_frame, write_xlsx
from lib.workflow import Role

log = logging.getLogger("helpdesk.report_mail")

SCHEDULE_KEY = "report_mail_schedule"
SUBSCRIBERS_KEY = "report_mail_subscribers"
SENT_PREFIX = "report_mail_sent:"
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True)
class Schedule:
    enabled: bool = True
    weekday: int = 0  # Monday
    hour: int = 8  # desk time

    def describe(self) -> str:
        if not self.enabled:
            return "off"
        return f"{WEEKDAYS[self.weekday]}s at {self.hour:02d}:00 ({get_settings().timezone})"


def get_schedule(session: Session) -> Schedule:
    row = session.get(Setting, SCHEDULE_KEY)
    value = row.value if row is not None and isinstance(row.value, dict) else {}
    try:
        return Schedule(enabled=bool(value.get("enabled", True)), weekday=int(value.get("weekday", 0)) % 7,
                        hour=min(max(int(value.get("hour", 8)), 0), 23))
    except (TypeError, ValueError):
        return Schedule()


def save_schedule(session: Session, *, actor: int, enabled: bool, weekday: int, hour: int) -> Schedule:
    lead = lead_actor(session, actor, "set the weekly report's schedule")
    if not 0 <= int(weekday) <= 6:
        raise ValidationError({"weekday": "choose a day of the week"})
    if not 0 <= int(hour) <= 23:
        raise ValidationError({"hour": "the hour is 0 to 23 (desk time)"})
    value = {"enabled": bool(enabled), "weekday": int(weekday), "hour": int(hour)}
    row = session.get(Setting, SCHEDULE_KEY)
    if row is None:
        session.add(Setting(key=SCHEDULE_KEY, value=value, updated_at=clock.now()))
    else:
        row.value, row.updated_at = value, clock.now()
    schedule = Schedule(enabled=bool(enabled), weekday=int(weekday), hour=int(hour))
    audit(session, actor=lead.username, action="report_mail_schedule", detail=schedule.describe())
    return schedule


def _subscribers(session: Session) -> list[int]:
    row = session.get(Setting, SUBSCRIBERS_KEY)
    return [int(i) for i in row.value if isinstance(i, int)] if row is not None and isinstance(row.value, list) else []


def is_subscribed(session: Session, user_id: int) -> bool:
    return user_id in _subscribers(session)


def set_subscribed(session: Session, user_id: int, on: bool) -> None:
    """A person's own choice on My account (leads get the report anyway)."""
    row = session.get(Setting, SUBSCRIBERS_KEY, with_for_update=True)  # two people ticking at once: both kept
    ids = [i for i in _subscribers(session) if i != user_id] + ([user_id] if on else [])
    if row is None:
        session.add(Setting(key=SUBSCRIBERS_KEY, value=ids, updated_at=clock.now()))
    else:
        row.value, row.updated_at = ids, clock.now()


def recipients(session: Session) -> list[User]:
    """Active leads and active subscribers that have an e-mail address, each once."""
    wanted = set(_subscribers(session))
    people = session.scalars(select(User).where(User.active.is_(True), User.email.is_not(None)).order_by(User.id))
    return [u for u in people if u.email and (int(u.role) >= int(Role.LEAD) or u.id in wanted)]


def due_week(session: Session, now: datetime) -> str | None:
    """The ISO week whose report is due at ``now``, or None (off, not yet time, or sent already)."""
    schedule = get_schedule(session)
    if not schedule.enabled:
        return None
    zone = ZoneInfo(get_settings().timezone)
    local = now.astimezone(zone)
    monday = local.date() - timedelta(days=local.weekday())
    moment = datetime(monday.year, monday.month, monday.day, schedule.hour, tzinfo=zone) + timedelta(
        days=schedule.weekday)
    if local < moment:
        return None
    week = last_full_week(local.date())
    if session.get(Setting, SENT_PREFIX + week) is not None:
        return None
    end = local_midnight(week_range(week)[1], zone)
    if session.scalar(select(Ticket.id).where(Ticket.created_at < end).limit(1)) is None:
        return None  # the desk had no ticket yet by the end of that week: no report of a week before it began
    return week


# --- the mail --------------------------------------------------------------------------------------------


@dataclass
class Built:
    subject: str
    text: str
    html: str
    parts: list[dict[str, str]]  # {"filename", "content_type", "data" (base64), "cid" (inline images only)}


def _png(fig: Any) -> bytes | None:
    """The chart as a PNG (kaleido with the machine's Chromium), or None when it cannot be drawn here."""
    try:
        import plotly.io as pio

        return bytes(pio.to_image(charts.for_export(fig), format="png", width=720, height=320, scale=1))
    except Exception as exc:  # noqa: BLE001 - no kaleido or no Chromium: the mail says so and shows tables
        log.warning("weekly report chart not drawn as an image: %s", exc)
        return None


def _fmt(value: Any, unit: str) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "—"
    if unit == "hours":
        return f"{value:,.2f} h"
    if unit == "%":
        return f"{value:.1f}%"
    return f"{value:,}" if isinstance(value, int) else f"{value:,.2f}"


def build(session: Session, week: str, *, now: datetime | None = None) -> Built:
    report = weekly_report(session, week, now=now)
    t = tables(report)
    head = headline_table(report)
    start, end = week_range(week)
    last_day = end - timedelta(days=1)
    subject = f"Help desk weekly report {week} ({start:%d %b} – {last_day:%d %b %Y})"
    public_url = (get_settings().public_url or "").rstrip("/")

    lines = [subject, "", f"{'Measure':<52}{'This week':>12}{'Previous':>12}{'4-wk avg':>12}"]
    rows_html = []
    for _, r in head.iterrows():
        cells = [_fmt(r["this_week"], r["unit"]), _fmt(r["previous_week"], r["unit"]),
                 _fmt(r["four_week_avg"], r["unit"])]
        lines.append(f"{r['label'][:51]:<52}{cells[0]:>12}{cells[1]:>12}{cells[2]:>12}")
        rows_html.append("<tr><td>" + html.escape(str(r["label"])) + "</td>"
                         + "".join(f"<td style='text-align:right'>{html.escape(c)}</td>" for c in cells) + "</tr>")
    trend = report.get("trend") or {}
    figs = [("created", "Created per priority, last weeks", charts.flow_by_priority(pd.DataFrame(trend.get("flow") or []),
                                                                                      measure="created")),
            ("backlog", "Open at the end of each week", charts.backlog_line(pd.DataFrame(trend.get("backlog") or [])))]
    parts: list[dict[str, str]] = []
    images_html = []
    for name, title, fig in figs:
        png = _png(fig)
        if png is None:
            continue
        cid = f"{name}-{week}@report"
        parts.append({"filename": f"{name}-{week}.png", "content_type": "image/png",
                      "data": base64.b64encode(png).decode(), "cid": cid})
        images_html.append(f"<h3 style='margin:1.2em 0 .3em'>{html.escape(title)}</h3>"
                           f"<img src='cid:{cid}' alt='{html.escape(title)}' width='720' style='max-width:100%'>")
    if len(images_html) < len(figs):  # no images here: the trend as a table
        trend_df = t["Trend"]
        images_html = ["<p><em>The trend charts could not be drawn as images on this server; the trend follows as a "
                       "table.</em></p>", neutralise_frame(trend_df).to_html(index=False, border=0, na_rep="—")
                       if not trend_df.empty else "<p>No weeks yet.</p>"]
    csv_bytes = neutralise_frame(head).to_csv(index=False, quoting=CSV_QUOTING).encode("utf-8-sig")
    xlsx = io.BytesIO()
    write_xlsx(xlsx, t)
    parts.append({"filename": f"weekly-report-{week}.csv", "content_type": "text/csv",
                  "data": base64.b64encode(csv_bytes).decode()})
    parts.append({"filename": f"weekly-report-{week}.xlsx",
                  "content_type": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                  "data": base64.b64encode(xlsx.getvalue()).decode()})
    link = f"{public_url}/report?week={week}" if public_url else None
    lines += ["", "The headline table is attached as CSV, every table as XLSX."]
    if link:
        lines.append(f"The report in the desk: {link}")
    lines += ["", get_settings().desk_signature]
    body_html = f"""<!DOCTYPE html><html><body style="font-family:Segoe UI,Arial,sans-serif;color:#1f2328">
<h2 style="margin-bottom:.2em">{html.escape(subject)}</h2>
<table style="border-collapse:collapse;font-size:14px" cellpadding="4">
<thead><tr><th style="text-align:left">Measure</th><th>This week</th><th>Previous week</th><th>4-week average</th></tr></thead>
<tbody>{''.join(rows_html)}</tbody></table>
{''.join(images_html)}
<p>The headline table is attached as CSV, every table as XLSX.{f" <a href='{html.escape(link)}'>Open the report in the desk</a>." if link else ""}</p>
<p style="color:#57606a">{html.escape(get_settings().desk_signature)}</p>
</body></html>"""
    return Built(subject=subject, text="\n".join(lines), html=body_html, parts=parts)


def send_due(engine: Engine, *, now: datetime | None = None) -> str | None:
    """The worker's step: when a week's report is due, write its mails once; returns the week sent, or None."""
    now = clock.utc(now)
    with read_session(engine) as session:
        week = due_week(session, now)
        if week is None:
            return None
        people = [(u.id, u.email, u.name) for u in recipients(session)]
        if not people:
            return None
        built = build(session, week, now=now)
    try:
        with transaction(engine) as session:
            session.add(Setting(key=SENT_PREFIX + week, value={"at": now.isoformat(), "to": len(people)},
                                updated_at=now))
            session.flush()  # a second worker stops here: the week is taken
            for _, email, _name in people:
                session.add(OutboxMail(ticket_id=None, event_id=None, message_id=new_message_id(None),
                                       to_address=email, subject=built.subject[:300], body=built.text,
                                       html_body=built.html, parts=built.parts, created_at=now,
                                       next_attempt_at=now))
    except IntegrityError:
        return None  # another worker wrote this week's mails
    log.info("weekly report %s queued for %d people", week, len(people))
    return week
