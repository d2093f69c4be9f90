"""The weekly report by mail, through two real workers racing and a real SMTP server (aiosmtpd on loopback):
sent once per week to the leads and the subscribers, on the lead's schedule in desk time, with the headline
numbers, two trend charts as inline images, and the CSV and XLSX attached."""

from __future__ import annotations

import io
import os
import threading
from datetime import UTC, datetime, timedelta
from email.header import decode_header, make_header

import openpyxl
import pytest
from sqlalchemy import select, update

from lib import report_mail, worker
from lib.db import read_session, transaction
from lib.models import OutboxMail, User
from tests.data.test_services import create, do, in_progress


def body_parts(message) -> dict[str, list]:  # type: ignore[no-untyped-def]
    out: dict[str, list] = {"text/plain": [], "text/html": [], "image/png": [], "attachments": []}
    for part in message.walk():
        if part.is_multipart():
            continue
        if part.get_filename() and part.get("Content-Disposition", "").startswith("attachment"):
            out["attachments"].append((part.get_filename(), part.get_payload(decode=True)))
        elif part.get_content_type() in out:
            out[part.get_content_type()].append(part)
    return out


def test_weekly_report_mailed_once_by_two_workers(clock, engine, staff, smtp_server, monkeypatch):
    # a desk with history: tickets created and resolved in the week before the clock's (2026-W48)
    week_start = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    for i in range(3):
        tid = in_progress(engine, staff, now=week_start + timedelta(days=i))
        if i < 2:
            from lib import tickets
            do(engine, tickets.log_action, tid, actor=staff.tech, kind="diagnosis", text="Looked")
            do(engine, tickets.resolve, tid, actor=staff.tech, resolution_notes="Fixed", root_cause="Cable")
    with transaction(engine) as s:  # Tom subscribes on My account; Tara did not
        report_mail.set_subscribed(s, staff.tech, True)
        s.execute(update(User).where(User.id == staff.senior).values(email=None))
    smtp = smtp_server.config()
    with transaction(engine) as s:  # the lead's schedule: Tuesdays at 11:00 desk time (London)
        report_mail.save_schedule(s, actor=staff.lead, enabled=True, weekday=1, hour=11)
    clock.set(datetime(2026, 12, 1, 10, 59, tzinfo=UTC))  # Tuesday 10:59 in London: not yet
    assert worker.run_cycle(engine, smtp=smtp).weekly_report is None
    clock.set(datetime(2026, 12, 1, 11, 0, tzinfo=UTC))

    results: list[str | None] = []
    barrier = threading.Barrier(2)

    def one_worker() -> None:
        barrier.wait()
        results.append(worker.run_cycle(engine, smtp=smtp).weekly_report)

    threads = [threading.Thread(target=one_worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(results, key=str) == ["2026-W48", None]
    worker.run_cycle(engine, smtp=smtp)  # and later cycles send nothing more
    clock.set(datetime(2026, 12, 4, 9, 0, tzinfo=UTC))
    assert worker.run_cycle(engine, smtp=smtp).weekly_report is None

    reports = [r for r in smtp_server.received if "weekly report" in r.message["Subject"]]
    assert sorted(r.rcpt_tos[0] for r in reports) == ["lead@desk.example", "tech@desk.example"]
    msg = reports[0].message
    subject = str(make_header(decode_header(msg["Subject"]))).replace("\r\n", "")
    assert subject == "Help desk weekly report 2026-W48 (23 Nov – 29 Nov 2026)"
    parts = body_parts(msg)
    text = parts["text/plain"][0].get_payload(decode=True).decode()
    html = parts["text/html"][0].get_payload(decode=True).decode()
    created_line = next(line for line in text.splitlines() if line.startswith("Created "))
    assert created_line.split()[-3] == "3"  # this week's created
    assert "Open at the end of the week" in html and "<td style='text-align:right'>3</td>" in html
    files = dict(parts["attachments"])
    assert set(files) == {"weekly-report-2026-W48.csv", "weekly-report-2026-W48.xlsx"}
    assert files["weekly-report-2026-W48.csv"].decode("utf-8-sig").startswith('"measure","label","unit","this_week"')
    book = openpyxl.load_workbook(io.BytesIO(files["weekly-report-2026-W48.xlsx"]))
    assert "Headline" in book.sheetnames
    images = parts["image/png"]
    if not images:
        if os.environ.get("HELPDESK_REQUIRE_E2E") == "1":
            pytest.fail("HELPDESK_REQUIRE_E2E=1 but the charts were not drawn as images (kaleido needs Chromium)")
        pytest.skip("no Chromium here for kaleido: the charts went as tables (the fallback has its own test)")
    assert len(images) == 2 and all(p.get_payload(decode=True).startswith(b"\x89PNG") for p in images)
    assert all(f"cid:{p['Content-ID'].strip('<>')}" in html for p in images)


def test_no_report_for_a_week_before_the_desk_began_or_when_off(clock, engine, staff, smtp_server, monkeypatch):
    clock.set(datetime(2026, 12, 1, 10, 0, tzinfo=UTC))
    create(engine, staff.tech)  # the first ticket is this week's: last week had none
    assert worker.run_cycle(engine, smtp=smtp_server.config()).weekly_report is None
    with transaction(engine) as s:
        report_mail.save_schedule(s, actor=staff.lead, enabled=False, weekday=0, hour=8)
    create(engine, staff.tech, now=datetime(2026, 11, 24, 10, 0, tzinfo=UTC))
    assert worker.run_cycle(engine, smtp=smtp_server.config()).weekly_report is None
    with transaction(engine) as s:
        report_mail.save_schedule(s, actor=staff.lead, enabled=True, weekday=0, hour=8)
    # without images (no Chromium / kaleido): the trend goes as a table and the mail says so
    monkeypatch.setattr(report_mail, "_png", lambda fig: None)
    assert worker.run_cycle(engine, smtp=smtp_server.config()).weekly_report == "2026-W48"
    with read_session(engine) as s:
        row = s.scalars(select(OutboxMail).where(OutboxMail.subject.like("Help desk weekly report%"))).one()
        assert "could not be drawn as images" in row.html_body and not any(p.get("cid") for p in row.parts)


def test_schedule_is_checked_and_audited(engine, staff):
    with pytest.raises(report_mail.ValidationError), transaction(engine) as s:
        report_mail.save_schedule(s, actor=staff.lead, enabled=True, weekday=7, hour=8)
    with pytest.raises(report_mail.ValidationError), transaction(engine) as s:
        report_mail.save_schedule(s, actor=staff.lead, enabled=True, weekday=0, hour=24)
    with transaction(engine) as s:
        got = report_mail.save_schedule(s, actor=staff.lead, enabled=True, weekday=4, hour=16)
        assert got.describe().startswith("Fridays at 16:00")
    with read_session(engine) as s:
        assert report_mail.get_schedule(s) == report_mail.Schedule(True, 4, 16)
