"""A mail the worker sends once a day, with a worker in each of two servers racing for it: each person's daily
digest of unread notifications (lib/staff_jobs.py) goes out once, and what arrives later waits for the next day."""

from __future__ import annotations

from sqlalchemy import func, select

from lib import staff_notify
from lib.db import read_session, transaction
from lib.mail.inbound import ingest_message
from lib.mail.settings import InboundDefaults
from lib.models import Notification, OutboxMail, StaffDigest, User
from lib.staff_notify import EmailMode, NoticeKind
from lib.users import create_user, get_by_username
from tests.e2e.conftest import PASSWORD
from tests.integration.conftest import make_mail
from tests.multi.conftest import Pair, wait_until

DORA = "dora@example.com"


def _marker_sent(pair: Pair, n: int) -> None:
    """Queue a mail and wait until a worker sent it: the workers have run on since."""
    with transaction(pair.engine) as s:
        tid = ingest_message(s, make_mail(subject=f"Digest marker {n}", sender=f"marker{n}@example.com",
                                          message_id=f"<digest-marker-{n}@example.com>"),
                             defaults=InboundDefaults()).ticket_id

    def sent() -> bool:
        with read_session(pair.engine) as s:
            states = s.scalars(select(OutboxMail.state).where(OutboxMail.ticket_id == tid)).all()
        return bool(states) and all(state == "sent" for state in states)

    wait_until(sent, what=f"marker mail {n} sent")


def test_the_daily_digest_is_sent_once_with_both_workers_running(pair: Pair) -> None:
    with transaction(pair.engine) as s:
        lena = get_by_username(s, "lena")
        assert lena is not None
        dora = create_user(s, actor=lena.id, username="dora", name="Dora Digest", email=DORA, password=PASSWORD,
                           role="technician")
        staff_notify.set_email_mode(s, user_id=dora.id, mode=EmailMode.DIGEST)
        for i in range(3):
            staff_notify.add(s, user=dora, kind=NoticeKind.MENTIONED, text=f"Lena mentioned you ({i})")
        dora_id = dora.id

    def digest_sent() -> bool:
        with read_session(pair.engine) as s:
            states = s.scalars(select(OutboxMail.state).where(OutboxMail.to_address == DORA)).all()
        return bool(states) and all(state == "sent" for state in states)

    wait_until(digest_sent, what="Dora's digest sent")
    with transaction(pair.engine) as s:  # a notification after today's digest waits for tomorrow's
        staff_notify.add(s, user=s.get(User, dora_id), kind=NoticeKind.MENTIONED, text="Lena mentioned you again")
    for n in range(2):
        _marker_sent(pair, n)

    to_dora = [r for r in pair.smtp.received if r.message["To"] == DORA]
    assert len(to_dora) == 1, [r.message["Subject"] for r in to_dora]
    payload = to_dora[0].message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    body = payload.decode()
    assert all(f"Lena mentioned you ({i})" in body for i in range(3)) and "again" not in body
    with read_session(pair.engine) as s:
        assert s.scalar(select(func.count()).select_from(StaffDigest).where(StaffDigest.user_id == dora_id)) == 1
        pending = s.scalars(select(Notification.text).where(Notification.user_id == dora_id,
                                                            Notification.mailed_at.is_(None))).all()
    assert pending == ["Lena mentioned you again"]


def test_the_weekly_report_mail_is_sent_once_with_both_workers_running(pair: Pair) -> None:
    from datetime import timedelta
    from zoneinfo import ZoneInfo

    from lib import clock, report_mail, tickets
    from lib.config import get_settings
    from tests.data.test_services import draft

    with transaction(pair.engine) as s:
        lena = get_by_username(s, "lena")
        assert lena is not None
        # the desk existed last week, and the report is due from midnight today (desk time)
        tickets.create_ticket(s, actor=lena.id, draft=draft(summary="Printer jams (last week)"),
                              now=clock.now() - timedelta(days=10))
        today = clock.now().astimezone(ZoneInfo(get_settings().timezone)).weekday()
        report_mail.save_schedule(s, actor=lena.id, enabled=True, weekday=today, hour=0)
        leads = sorted(u.email for u in report_mail.recipients(s))
    assert leads

    def reports() -> list:
        return [r for r in pair.smtp.received if str(r.message["Subject"]).startswith("Help desk weekly report")]

    wait_until(lambda: len(reports()) >= len(leads), what="the weekly report mailed")
    for n in range(2):  # both workers run on for a few more cycles
        _marker_sent(pair, 10 + n)
    by_week: dict[str, list[str]] = {}
    for r in reports():  # grouped by week: a week turning during the test gives that week its own report
        by_week.setdefault(str(r.message["Subject"]).split()[4], []).append(str(r.message["To"]))
    assert all(sorted(to) == leads for to in by_week.values()), by_week
    with read_session(pair.engine) as s:
        sent = s.scalars(select(OutboxMail.subject).where(OutboxMail.subject.like("Help desk weekly report%"))).all()
    assert len(sent) == len(leads) * len(by_week)
