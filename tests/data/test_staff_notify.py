"""Staff notifications on both engines: who is told of what (and who is not), at risk once per ticket per SLA clock,
@mentions, inactive people never told, each person's mail choice, the daily digest once a day even with two workers
racing, and the inbox's read marks."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from lib import followups, staff_jobs, staff_notify, tickets
from lib.config import get_settings
from lib.db import transaction
from lib.models import Notification, OutboxMail, StaffDigest, User
from lib.staff_notify import EmailMode
from lib.worker import record_sla_breaches
from tests.data.test_services import create, do, get


def notes(engine, user_id: int | None = None) -> list[Notification]:  # type: ignore[no-untyped-def]
    with transaction(engine) as s:
        stmt = select(Notification).order_by(Notification.id)
        if user_id is not None:
            stmt = stmt.where(Notification.user_id == user_id)
        return list(s.scalars(stmt))


def staff_mails(engine) -> list[OutboxMail]:  # type: ignore[no-untyped-def]
    """Mail to staff: not tied to a ticket (the requester's correspondence is)."""
    with transaction(engine) as s:
        return list(s.scalars(select(OutboxMail).where(OutboxMail.ticket_id.is_(None)).order_by(OutboxMail.id)))


def set_mode(engine, user_id: int, mode: EmailMode) -> None:  # type: ignore[no-untyped-def]
    with transaction(engine) as s:
        staff_notify.set_email_mode(s, user_id=user_id, mode=mode)


def deactivate(engine, user_id: int) -> None:  # type: ignore[no-untyped-def]
    with transaction(engine) as s:
        s.execute(update(User).where(User.id == user_id).values(active=False))


@pytest.fixture
def env_settings(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Set HELPDESK_* variables for one test: the settings are read again from the environment."""

    def setenv(**values: str) -> None:
        for k, v in values.items():
            monkeypatch.setenv(f"HELPDESK_{k.upper()}", v)
        get_settings.cache_clear()

    yield setenv
    get_settings.cache_clear()


# --- mentions ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, names", [
    ("@tom, can you look?", ["tom"]),
    ("ask Tara (@tech2) first", ["tech2"]),
    ("mail email@tom.com and see https://x.example/@tom", []),
    ("done. @Tom.", ["tom"]),
    ("@tom @tom and @ann.lee-2 then @", ["tom", "ann.lee-2"]),
    ("no one here", []),
])
def test_mentions_are_parsed_as_people_write_them(text: str, names: list[str]) -> None:
    assert staff_notify.mentions(text) == names


# --- who is told --------------------------------------------------------------------------------------------


def test_assigned_tells_the_new_assignee_unless_they_took_it_themselves(engine, staff) -> None:
    mine = create(engine, staff.tech)
    do(engine, tickets.take, mine, actor=staff.tech)
    assert notes(engine) == []  # took it: nobody to tell
    tid = create(engine, staff.lead)
    do(engine, tickets.assign, tid, actor=staff.lead, assignee_id=staff.tech)
    [note] = notes(engine)
    assert (note.user_id, note.kind, note.ticket_id, note.link) == (staff.tech, "assigned", tid, f"/ticket?id={tid}")
    assert "Lena Lead assigned HD-" in note.text and note.read_at is None and note.event_id is not None
    do(engine, tickets.assign, tid, actor=staff.lead, assignee_id=staff.tech2)
    assert [(n.user_id, n.kind) for n in notes(engine)] == [(staff.tech, "assigned"), (staff.tech2, "assigned")]
    do(engine, tickets.assign, tid, actor=staff.lead, assignee_id=None)  # unassigned: nobody new must act
    assert len(notes(engine)) == 2


def test_escalation_to_a_senior_tells_the_senior_only(engine, staff) -> None:
    tid = create(engine, staff.tech)
    do(engine, tickets.take, tid, actor=staff.tech)
    do(engine, tickets.acknowledge, tid, actor=staff.tech)
    do(engine, tickets.escalate_to_senior, tid, actor=staff.tech, senior_id=staff.senior, reason="Needs AD rights")
    [note] = notes(engine)
    assert (note.user_id, note.kind) == (staff.senior, "escalated")
    assert "Tom Tech escalated" in note.text and "Needs AD rights" in note.text
    other = create(engine, staff.tech)
    do(engine, tickets.take, other, actor=staff.tech)
    do(engine, tickets.acknowledge, other, actor=staff.tech)
    do(engine, tickets.escalate_to_vendor, other, actor=staff.tech, vendor_name="Acme", case_ref="C-1",
       promised_at=None)
    assert len(notes(engine)) == 1  # a vendor escalation tells no one on the desk


def test_a_requester_reply_tells_the_assignee(engine, staff) -> None:
    unassigned = create(engine, staff.tech)
    with transaction(engine) as s:
        tickets.requester_reply(s, ticket_id=unassigned, from_label="Ann Smith", text="Any news?")
    assert notes(engine) == []
    tid = create(engine, staff.tech)
    do(engine, tickets.take, tid, actor=staff.tech)
    with transaction(engine) as s:
        tickets.requester_reply(s, ticket_id=tid, from_label="Ann Smith", text="It happened again")
    [note] = notes(engine)
    assert (note.user_id, note.kind, note.text.startswith("Ann Smith replied on HD-")) == (
        staff.tech, "requester_replied", True)


def test_a_breach_tells_the_assignee_once_per_clock(clock, engine, staff) -> None:
    tid = create(engine, staff.lead)
    do(engine, tickets.assign, tid, actor=staff.lead, assignee_id=staff.tech)
    due = get(engine, tid).resolution_due_at
    record_sla_breaches(engine, now=due + timedelta(minutes=1))
    record_sla_breaches(engine, now=due + timedelta(minutes=2))
    breached = [n for n in notes(engine, staff.tech) if n.kind == "sla_breached"]
    assert sorted(n.text.split(" missed its ")[1].split(" ")[0] for n in breached) == ["resolution", "response"]
    assert all(n.user_id == staff.tech for n in notes(engine) if n.kind == "sla_breached")


def test_at_risk_tells_the_assignee_once_per_ticket_per_clock(clock, engine, staff) -> None:
    tid = create(engine, staff.lead)
    do(engine, tickets.assign, tid, actor=staff.lead, assignee_id=staff.tech)
    nobody = create(engine, staff.lead)  # unassigned: no one to tell
    t = get(engine, tid)
    assert t.response_risk_at < t.response_due_at
    assert staff_jobs.notify_at_risk(engine, now=t.response_risk_at - timedelta(minutes=1)) == 0
    at = t.response_risk_at + timedelta(minutes=1)
    assert staff_jobs.notify_at_risk(engine, now=at) == 1
    assert staff_jobs.notify_at_risk(engine, now=at + timedelta(minutes=1)) == 0  # not every cycle
    [note] = [n for n in notes(engine) if n.kind == "sla_at_risk"]
    assert (note.user_id, note.ticket_id, note.dedupe_key) == (staff.tech, tid, f"sla_at_risk:{tid}:response")
    assert "at risk of missing its response target" in note.text
    # the technician responds: the response clock is done; the resolution clock's risk comes later, once
    do(engine, tickets.acknowledge, tid, actor=staff.tech)
    t = get(engine, tid)
    later = t.resolution_risk_at + timedelta(minutes=1)
    assert later < t.resolution_due_at
    assert staff_jobs.notify_at_risk(engine, now=later) == 1
    assert staff_jobs.notify_at_risk(engine, now=later + timedelta(minutes=5)) == 0
    assert [n.dedupe_key for n in notes(engine) if n.kind == "sla_at_risk"] == [
        f"sla_at_risk:{tid}:response", f"sla_at_risk:{tid}:resolution"]
    assert not [n for n in notes(engine) if n.ticket_id == nobody]


def test_at_risk_skips_breached_tickets_and_inactive_assignees(clock, engine, staff) -> None:
    late = create(engine, staff.lead)
    do(engine, tickets.assign, late, actor=staff.lead, assignee_id=staff.tech)
    t = get(engine, late)
    assert staff_jobs.notify_at_risk(engine, now=t.response_due_at + timedelta(minutes=1)) == 0  # breached instead
    away = create(engine, staff.lead)
    do(engine, tickets.assign, away, actor=staff.lead, assignee_id=staff.tech2)
    deactivate(engine, staff.tech2)
    t = get(engine, away)
    staff_jobs.notify_at_risk(engine, now=t.response_risk_at + timedelta(minutes=1))
    assert not [n for n in notes(engine) if n.kind == "sla_at_risk" and n.ticket_id == away]
    assert [n.kind for n in notes(engine, staff.tech2)] == ["assigned"]  # from before they left


def test_two_workers_racing_write_one_at_risk_notice(clock, engine, staff) -> None:
    tid = create(engine, staff.lead)
    do(engine, tickets.assign, tid, actor=staff.lead, assignee_id=staff.tech)
    at = get(engine, tid).response_risk_at + timedelta(minutes=1)
    results: list[int] = []
    barrier = threading.Barrier(2)

    def worker() -> None:
        barrier.wait()
        results.append(staff_jobs.notify_at_risk(engine, now=at))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert sorted(results) == [0, 1]
    assert len([n for n in notes(engine) if n.kind == "sla_at_risk"]) == 1


def test_a_due_follow_up_tells_its_owner_in_the_app_and_mails_once(clock, engine, staff) -> None:
    tid = create(engine, staff.tech)
    due = clock.now() + timedelta(days=1)
    with transaction(engine) as s:
        followups.schedule(s, actor=staff.tech, ticket_id=tid, due_at=due, owner_id=staff.tech2, note="Check backups")
    set_mode(engine, staff.tech2, EmailMode.EACH)
    with transaction(engine) as s:
        assert followups.send_due_reminders(s, now=due + timedelta(minutes=1)) == 1
    [note] = notes(engine)
    assert (note.user_id, note.kind) == (staff.tech2, "follow_up_due") and "Check backups" in note.text
    assert note.mailed_at is not None  # the follow-up's own mail (template follow_up_due) is the mail
    with transaction(engine) as s:
        to_owner = list(s.scalars(select(OutboxMail).where(OutboxMail.to_address == "tech2@desk.example")))
    assert len(to_owner) == 1 and "Follow-up due" in to_owner[0].subject


def test_mentions_tell_active_staff_named_but_never_the_author(engine, staff) -> None:
    tid = create(engine, staff.tech)
    deactivate(engine, staff.senior)
    do(engine, tickets.internal_note, tid, actor=staff.lead,
       text="@tech, can you check? Ask Tara (@tech2) too. Not bob@tech.com; @lead @senior @nobody")
    got = notes(engine)
    assert sorted(n.user_id for n in got) == sorted([staff.tech, staff.tech2])
    assert all(n.kind == "mentioned" and n.text.startswith("Lena Lead mentioned you on HD-") for n in got)
    do(engine, tickets.internal_note, tid, actor=staff.tech, text="email@tech2.com, nothing for anyone")
    assert len(notes(engine)) == 2


def test_public_text_never_mentions(engine, staff) -> None:
    tid = create(engine, staff.tech)
    do(engine, tickets.take, tid, actor=staff.tech)
    do(engine, tickets.public_reply, tid, actor=staff.tech, text="@tech2 will visit you")
    assert notes(engine) == []


# --- mail: each, digest, none --------------------------------------------------------------------------------


def test_the_default_mail_choice_is_the_setting(engine, staff, env_settings) -> None:
    with transaction(engine) as s:
        assert staff_notify.email_mode(s, staff.tech) is EmailMode.DIGEST
    env_settings(staff_mail_default="each")
    with transaction(engine) as s:
        assert staff_notify.email_mode(s, staff.tech) is EmailMode.EACH
    tid = create(engine, staff.lead)
    do(engine, tickets.assign, tid, actor=staff.lead, assignee_id=staff.tech)
    assert [m.to_address for m in staff_mails(engine)] == ["tech@desk.example"]
    env_settings(staff_mail_default="sometimes")
    with pytest.raises(ValueError, match="staff_mail_default"):
        get_settings()


def test_each_mails_every_notification_and_none_mails_nothing(engine, staff) -> None:
    set_mode(engine, staff.tech, EmailMode.EACH)
    set_mode(engine, staff.tech2, EmailMode.NONE)
    tid = create(engine, staff.lead)
    do(engine, tickets.assign, tid, actor=staff.lead, assignee_id=staff.tech)
    [mail] = staff_mails(engine)
    assert mail.to_address == "tech@desk.example" and mail.subject.startswith("HD-") and "[" not in mail.subject
    assert "Lena Lead assigned" in mail.body and "{{public_url}}/ticket?id=" in mail.body
    assert notes(engine)[0].mailed_at is not None
    do(engine, tickets.assign, tid, actor=staff.lead, assignee_id=staff.tech2)
    assert len(staff_mails(engine)) == 1  # tech2 chose none: in the app only
    assert notes(engine, staff.tech2)[0].mailed_at is None
    with transaction(engine) as s, pytest.raises(Exception, match="email_mode"):
        staff_notify.set_email_mode(s, user_id=staff.tech, mode="hourly")


def test_the_digest_comes_once_a_day_from_the_hour_with_the_unread_unmailed(clock, engine, staff, env_settings) -> None:
    env_settings(staff_digest_hour="9", timezone="Europe/Paris")
    set_mode(engine, staff.tech2, EmailMode.NONE)
    a = create(engine, staff.lead)
    b = create(engine, staff.lead)
    do(engine, tickets.assign, a, actor=staff.lead, assignee_id=staff.tech)
    do(engine, tickets.assign, b, actor=staff.lead, assignee_id=staff.tech)
    do(engine, tickets.assign, b, actor=staff.lead, assignee_id=staff.tech2)
    read = notes(engine, staff.tech)[1]
    with transaction(engine) as s:
        assert staff_notify.mark_read(s, user_id=staff.tech, notification_id=read.id)
    day = datetime(2026, 12, 2, tzinfo=UTC)
    assert staff_jobs.send_digests(engine, now=day.replace(hour=7, minute=59)) == 0  # 08:59 in Paris
    assert staff_jobs.send_digests(engine, now=day.replace(hour=8)) == 1  # 09:00 in Paris
    [mail] = staff_mails(engine)
    assert mail.to_address == "tech@desk.example" and mail.subject == "1 unread notification(s) on the help desk"
    assert f"/ticket?id={a}" in mail.body and f"/ticket?id={b}" not in mail.body
    assert "{{public_url}}/inbox" in mail.body
    do(engine, tickets.internal_note, a, actor=staff.lead, text="@tech any news?")
    assert staff_jobs.send_digests(engine, now=day.replace(hour=15)) == 0  # never twice a day
    assert staff_jobs.send_digests(engine, now=day.replace(hour=23, minute=30)) == 0  # 00:30 the next day in Paris
    assert staff_jobs.send_digests(engine, now=day.replace(hour=8) + timedelta(days=1)) == 1  # the next day
    second = staff_mails(engine)[1]
    assert "mentioned you" in second.body and f"/ticket?id={a}" in second.body and "assigned" not in second.body
    with transaction(engine) as s:
        days = [(d.user_id, d.day, d.items) for d in s.scalars(select(StaffDigest).order_by(StaffDigest.day))]
    assert days == [(staff.tech, "2026-12-02", 1), (staff.tech, "2026-12-03", 1)]


def test_two_workers_racing_send_one_digest(clock, engine, staff) -> None:
    tid = create(engine, staff.lead)
    do(engine, tickets.assign, tid, actor=staff.lead, assignee_id=staff.tech)
    at = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
    results: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def worker() -> None:
        barrier.wait()
        try:
            results.append(staff_jobs.send_digests(engine, now=at))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert not errors and sorted(results) == [0, 1]
    assert len(staff_mails(engine)) == 1


def test_the_worker_cycle_runs_the_staff_steps(clock, engine, staff) -> None:
    from lib.worker import run_cycle

    tid = create(engine, staff.lead)
    do(engine, tickets.assign, tid, actor=staff.lead, assignee_id=staff.tech)
    at = get(engine, tid).response_risk_at + timedelta(minutes=1)
    report = run_cycle(engine, now=at)
    assert not report.errors
    assert [n.kind for n in notes(engine, staff.tech)] == ["assigned", "sla_at_risk"]
    assert len(staff_mails(engine)) == (1 if staff_jobs.digest_day(at) else 0)


# --- the inbox ------------------------------------------------------------------------------------------------


def test_read_marks_are_each_persons_own(engine, staff) -> None:
    for _ in range(3):
        tid = create(engine, staff.lead)
        do(engine, tickets.assign, tid, actor=staff.lead, assignee_id=staff.tech)
    do(engine, tickets.assign, tid, actor=staff.lead, assignee_id=staff.tech2)
    with transaction(engine) as s:
        assert staff_notify.unread_count(s, staff.tech) == 3
        assert staff_notify.unread_count_for(s, "tech") == 3
        newest = staff_notify.list_for(s, staff.tech)
        assert [n.id for n in newest] == sorted((n.id for n in newest), reverse=True)
        theirs = staff_notify.list_for(s, staff.tech2)[0]
        assert not staff_notify.mark_read(s, user_id=staff.tech, notification_id=theirs.id)
        assert staff_notify.mark_read(s, user_id=staff.tech, notification_id=newest[0].id)
        assert not staff_notify.mark_read(s, user_id=staff.tech, notification_id=newest[0].id)  # already read
    with transaction(engine) as s:
        assert staff_notify.unread_count(s, staff.tech) == 2
        assert [n.id for n in staff_notify.list_for(s, staff.tech, unread_only=True)] == [n.id for n in newest[1:]]
        assert staff_notify.mark_all_read(s, user_id=staff.tech) == 2
    with transaction(engine) as s:
        assert staff_notify.unread_count(s, staff.tech) == 0
        assert staff_notify.unread_count(s, staff.tech2) == 1

