"""Monitoring alerts → incident tickets (lib.alerts.intake), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, func, select, update

from lib import tickets
from lib.alerts.intake import (
    AlertSettings,
    alert_key,
    find_alert_ticket,
    incident_ref,
    ingest_alerts,
    list_incidents,
    load_alert_settings,
)
from lib.alerts.parse import parse_alert_payload
from lib.config import load_settings
from lib.db import read_session, transaction
from lib.errors import GuardFailed
from lib.models import Category, Ticket, TicketEvent, ticket_ref
from lib.workflow import ClosureReason, EventKind, Priority, Status
from tests.conftest import wait_for_lock_waiter

ALERTS_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "testdata" / "alerts"

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
# What the shared payloads must become: distinct alerts, their priority, the category they land in.
EXPECTED = {
    "alertmanager_msteams_large_19_alerts.json": (19, {Priority.CRITICAL}, "Networking"),
    "alertmanager_msteams_prom_post_request.json": (1, {Priority.MEDIUM}, "Networking"),
    "alertmanager_official_exec_testdata_success.json": (1, {Priority.HIGH}, "Networking"),
    "grafana_webhook_docs_firing.json": (2, {Priority.HIGH}, "Networking"),
}


def am_alert(name: str = "DiskFull", *, instance: str = "db1", status: str = "firing", severity: str | None = "warning",
             fingerprint: str | None = None, summary: str | None = None, ends_at: str | None = None,
             **labels: str) -> dict:
    alert: dict = {
        "status": status,
        "labels": {"alertname": name, "instance": instance, **({"severity": severity} if severity else {}), **labels},
        "annotations": {"summary": summary or f"{name} on {instance}", "description": f"{name} fired on {instance}"},
        "startsAt": "2024-05-01T09:58:00Z",
        "endsAt": ends_at or "0001-01-01T00:00:00Z",
    }
    if fingerprint:
        alert["fingerprint"] = fingerprint
    return alert


def am_body(*alerts: dict) -> bytes:
    status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    return json.dumps({"version": "4", "receiver": "helpdesk", "groupKey": "{}:{alertname=\"x\"}",
                       "status": status, "alerts": list(alerts)}).encode()


def shared_alerts_dir() -> Path:
    if not ALERTS_DIR.is_dir():
        pytest.skip(f"shared testdata folder not found: {ALERTS_DIR} (it sits beside the project in CI)")
    return ALERTS_DIR


def ingest(engine, body: bytes, *, now: datetime = T0, config: AlertSettings | None = None):
    alerts = parse_alert_payload(body)
    with transaction(engine) as s:
        return ingest_alerts(s, alerts, source=alerts[0].source if alerts else "test", now=now,
                             config=config or AlertSettings())


def all_tickets(engine) -> list[Ticket]:
    with read_session(engine) as s:
        rows = list(s.scalars(select(Ticket).order_by(Ticket.id)).unique())
        s.expunge_all()  # keep the loaded values after the read session rolls back
        return rows


def events(engine, ticket_id: int, kind: EventKind | None = None) -> list[TicketEvent]:
    with read_session(engine) as s:
        stmt = select(TicketEvent).where(TicketEvent.ticket_id == ticket_id).order_by(TicketEvent.id)
        if kind is not None:
            stmt = stmt.where(TicketEvent.kind == kind.value)
        rows = list(s.scalars(stmt).unique())
        s.expunge_all()
        return rows


def count(engine, model) -> int:
    with read_session(engine) as s:
        return s.scalar(select(func.count()).select_from(model))


# --- the shared, real payloads ----------------------------------------------------------------


def test_every_shared_payload_becomes_tickets(engine):
    folder = shared_alerts_dir()
    files = sorted(p for p in folder.iterdir() if p.suffix == ".json")
    assert {p.name for p in files} >= set(EXPECTED), "a shared payload is missing"
    total = 0
    for path in files:
        alerts = parse_alert_payload(path.read_bytes())
        before = {t.id for t in all_tickets(engine)}
        with transaction(engine) as s:
            result = ingest_alerts(s, alerts, source=alerts[0].source, now=T0, config=AlertSettings())
        new = [t for t in all_tickets(engine) if t.id not in before]
        distinct = {a.fingerprint for a in alerts}
        assert result.created == len(new) == len(distinct), path.name
        assert result.updated == 0 and len(result.tickets) == len(new)
        if path.name in EXPECTED:
            n, priorities, category = EXPECTED[path.name]
            assert len(new) == n, path.name
            assert {Priority(t.priority) for t in new} == priorities, path.name
            assert {t.category.name for t in new} == {category}, path.name
        by_ref = {t.external_ref: t for t in new}
        for alert in alerts:
            ticket = by_ref[alert_key(alert.fingerprint)]
            assert ticket.channel == "alert" and ticket.requester_id is None
            assert ticket.external_source == "alert"
            assert ticket.status == Status.NEW and ticket.is_open and ticket.occurrences == 1
            assert ticket.summary == alert.summary
            assert alert.fingerprint in ticket.description
            created = events(engine, ticket.id, EventKind.CREATED)
            assert len(created) == 1 and created[0].actor_label == alert.source and created[0].actor_id is None
        total += len(new)
    assert count(engine, Ticket) == total == sum(n for n, _, _ in EXPECTED.values())


def test_same_payloads_again_add_occurrences_not_tickets(engine):
    folder = shared_alerts_dir()
    bodies = [p.read_bytes() for p in sorted(folder.glob("*.json"))]
    for body in bodies:
        ingest(engine, body)
    first = {t.id: t.occurrences for t in all_tickets(engine)}
    for body in bodies:
        result = ingest(engine, body, now=T0 + timedelta(minutes=5))
        assert result.created == 0 and result.updated == result.occurrences == len(parse_alert_payload(body))
    after = all_tickets(engine)
    assert [t.id for t in after] == sorted(first)
    assert all(t.occurrences == 2 for t in after)
    for t in after:
        fired = events(engine, t.id, EventKind.ALERT)
        assert len(fired) == 1
        assert fired[0].body.startswith("Alert fired again at 2024-05-01 10:05:00 UTC (occurrence 2).")
        assert fired[0].meta["alert"] == "fired" and fired[0].meta["occurrence"] == 2


def test_burst_of_fifty_identical_posts_makes_one_ticket(engine):
    body = am_body(am_alert("NodeDown", instance="web1", severity="critical"))
    results = [ingest(engine, body, now=T0 + timedelta(seconds=i)) for i in range(50)]
    assert sum(r.created for r in results) == 1
    (ticket,) = all_tickets(engine)
    assert ticket.occurrences == 50
    assert Priority(ticket.priority) is Priority.CRITICAL
    assert len(events(engine, ticket.id, EventKind.ALERT)) == 49
    assert {r.tickets[0] for r in results} == {results[0].tickets[0]}


def test_concurrent_first_fire_makes_one_ticket(engine):
    """Two transactions record the same new alert at once; the second waits, loses the insert and adds to it."""
    alerts = parse_alert_payload(am_body(am_alert("Race", instance="x")))
    first_done = threading.Event()
    release = threading.Event()
    results: dict[str, object] = {}

    def first() -> None:
        with transaction(engine) as s:
            results["a"] = ingest_alerts(s, alerts, source="alertmanager", now=T0, config=AlertSettings())
            first_done.set()
            assert release.wait(10)

    def second() -> None:
        assert first_done.wait(10)
        with transaction(engine) as s:
            results["b"] = ingest_alerts(s, alerts, source="alertmanager", now=T0, config=AlertSettings())

    rolled_back: list[str] = []

    def on_rollback(_conn, name, _context) -> None:
        rolled_back.append(name)

    event.listen(engine, "rollback_savepoint", on_rollback)
    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    try:
        for t in threads:
            t.start()
        assert first_done.wait(10)
        wait_for_lock_waiter(engine)  # the second waits on our insert (PostgreSQL) or at BEGIN IMMEDIATE (SQLite)
        release.set()
        for t in threads:
            t.join(30)
    finally:
        event.remove(engine, "rollback_savepoint", on_rollback)
    if engine.dialect.name == "postgresql":  # the second insert lost on the unique constraint and looked again
        assert rolled_back
    a, b = results["a"], results["b"]
    assert (a.created, b.created, b.occurrences) == (1, 0, 1)
    (ticket,) = all_tickets(engine)
    assert ticket.occurrences == 2


# --- recovery and auto-resolve ----------------------------------------------------------------


def test_resolved_alert_adds_one_recovery_note(engine):
    ingest(engine, am_body(am_alert("DiskFull")))
    resolved = am_body(am_alert("DiskFull", status="resolved", ends_at="2024-05-01T10:04:30Z"))
    result = ingest(engine, resolved, now=T0 + timedelta(minutes=5))
    assert (result.recoveries, result.auto_resolved, result.created) == (1, 0, 0)
    (ticket,) = all_tickets(engine)
    assert ticket.status == Status.NEW and ticket.is_open  # auto-resolve is off by default
    notes = events(engine, ticket.id, EventKind.INTERNAL_NOTE)
    assert [n.body for n in notes] == ["Recovered at 2024-05-01 10:04:30 UTC: the monitoring system reports the alert resolved."]
    assert notes[0].actor_id is None and notes[0].actor_label == "alertmanager" and not notes[0].public
    # Alertmanager may repeat a resolved notification: still one note.
    again = ingest(engine, resolved, now=T0 + timedelta(minutes=6))
    assert (again.recoveries, again.ignored) == (0, 1)
    assert len(events(engine, ticket.id, EventKind.INTERNAL_NOTE)) == 1
    # It fires again (same open ticket), then recovers again: a second note.
    ingest(engine, am_body(am_alert("DiskFull")), now=T0 + timedelta(minutes=10))
    ingest(engine, resolved, now=T0 + timedelta(minutes=15))
    (ticket,) = all_tickets(engine)
    assert ticket.occurrences == 2
    assert len(events(engine, ticket.id, EventKind.INTERNAL_NOTE)) == 2


def test_recovery_of_an_unknown_alert_writes_nothing(engine):
    result = ingest(engine, am_body(am_alert("Ghost", status="resolved")))
    assert (result.created, result.updated, result.ignored, result.tickets) == (0, 0, 1, [])
    assert count(engine, Ticket) == 0 and count(engine, TicketEvent) == 0


def test_fire_and_recover_in_one_post_keep_their_order(engine):
    body = am_body(am_alert("Flap", instance="a"), am_alert("Other", instance="b"),
                   am_alert("Flap", instance="a", status="resolved", ends_at="2024-05-01T09:59:00Z"))
    result = ingest(engine, body)
    assert (result.created, result.recoveries) == (2, 1)
    flap = next(t for t in all_tickets(engine) if t.summary == "Flap on a")
    assert len(events(engine, flap.id, EventKind.INTERNAL_NOTE)) == 1
    assert result.tickets[0] == f"HD-{flap.id:06d}"  # reported in the order of the post


def test_auto_resolve_closes_an_untaken_ticket_and_the_next_fire_opens_a_new_one(engine):
    auto = AlertSettings(auto_resolve=True)
    fp = "abc123def456"
    ingest(engine, am_body(am_alert("CPU", fingerprint=fp)), config=auto)
    result = ingest(engine, am_body(am_alert("CPU", fingerprint=fp, status="resolved", ends_at="2024-05-01T10:03:00Z")),
                    now=T0 + timedelta(minutes=5), config=auto)
    assert (result.recoveries, result.auto_resolved) == (1, 1)
    (first,) = all_tickets(engine)
    assert first.status == Status.CLOSED and first.closure_reason == ClosureReason.NOT_APPLICABLE
    assert first.closure_note == "Recovered automatically at 2024-05-01 10:03:00 UTC, before anyone took the ticket."
    closed = events(engine, first.id, EventKind.CLOSED)
    assert len(closed) == 1 and closed[0].actor_label == "system" and not closed[0].public
    # A repeated resolved notification changes nothing on the closed ticket.
    again = ingest(engine, am_body(am_alert("CPU", fingerprint=fp, status="resolved")), config=auto)
    assert again.ignored == 1 and len(events(engine, first.id, EventKind.INTERNAL_NOTE)) == 1
    # The alert fires again: a new incident, numbered #2, pointing at the first.
    result = ingest(engine, am_body(am_alert("CPU", fingerprint=fp)), now=T0 + timedelta(hours=1), config=auto)
    assert result.created == 1
    first, second = all_tickets(engine)
    assert (first.external_ref, second.external_ref) == (fp, f"{fp}#2")
    assert second.status == Status.NEW and second.occurrences == 1
    assert f"HD-{first.id:06d}" in second.description
    # ... and repeats go to #2; after it closes too, #3.
    ingest(engine, am_body(am_alert("CPU", fingerprint=fp)), now=T0 + timedelta(hours=1, minutes=1), config=auto)
    ingest(engine, am_body(am_alert("CPU", fingerprint=fp, status="resolved")), now=T0 + timedelta(hours=2), config=auto)
    ingest(engine, am_body(am_alert("CPU", fingerprint=fp)), now=T0 + timedelta(hours=3), config=auto)
    refs = [(t.external_ref, t.status, t.occurrences) for t in all_tickets(engine)]
    assert refs == [(fp, Status.CLOSED, 1), (f"{fp}#2", Status.CLOSED, 2), (f"{fp}#3", Status.NEW, 1)]
    with read_session(engine) as s:
        assert [i.number for i in list_incidents(s, fp)] == [1, 2, 3]
        assert find_alert_ticket(s, fp).external_ref == f"{fp}#3"
        assert find_alert_ticket(s, "never-seen") is None


def test_auto_resolve_resolves_an_assigned_ticket_and_a_new_fire_reopens_it(engine, staff):
    auto = AlertSettings(auto_resolve=True)
    ingest(engine, am_body(am_alert("Mem", fingerprint="f00d")), config=auto)
    (ticket,) = all_tickets(engine)
    with transaction(engine) as s:
        tickets.take(s, actor=staff.tech, ticket_id=ticket.id, now=T0 + timedelta(minutes=1))
    ingest(engine, am_body(am_alert("Mem", fingerprint="f00d", status="resolved", ends_at="2024-05-01T10:07:00Z")),
           now=T0 + timedelta(minutes=8), config=auto)
    (ticket,) = all_tickets(engine)
    assert ticket.status == Status.RESOLVED and ticket.assignee_id == staff.tech
    assert ticket.resolution_notes.startswith("Recovered automatically at 2024-05-01 10:07:00 UTC")
    # The fix did not hold: the same ticket is reopened and counts the occurrence.
    result = ingest(engine, am_body(am_alert("Mem", fingerprint="f00d")), now=T0 + timedelta(minutes=30), config=auto)
    assert (result.created, result.reopened, result.occurrences) == (0, 1, 1)
    (ticket,) = all_tickets(engine)
    assert ticket.status == Status.IN_PROGRESS and ticket.reopen_count == 1 and ticket.occurrences == 2
    assert len(events(engine, ticket.id, EventKind.REOPENED)) == 1


def test_a_refused_auto_resolve_keeps_the_recovery_note(engine, staff, monkeypatch):
    auto = AlertSettings(auto_resolve=True)
    ingest(engine, am_body(am_alert("Fan", fingerprint="fan1")), config=auto)
    (ticket,) = all_tickets(engine)
    with transaction(engine) as s:
        tickets.take(s, actor=staff.tech, ticket_id=ticket.id)

    def refuse(*_args, **_kwargs):
        raise GuardFailed("resolve", ["something the rules want"])

    monkeypatch.setattr(tickets, "resolve", refuse)
    result = ingest(engine, am_body(am_alert("Fan", fingerprint="fan1", status="resolved")), config=auto)
    assert (result.recoveries, result.auto_resolved) == (1, 0)
    (ticket,) = all_tickets(engine)
    assert ticket.status == Status.ASSIGNED
    assert len(events(engine, ticket.id, EventKind.INTERNAL_NOTE)) == 1


def test_a_closed_ticket_is_not_reused(engine, staff):
    fp = "deadbeef00"
    ingest(engine, am_body(am_alert("Link", fingerprint=fp)))
    (ticket,) = all_tickets(engine)
    with transaction(engine) as s:
        tickets.close(s, actor=staff.lead, ticket_id=ticket.id, expected_version=ticket.version,
                      reason=ClosureReason.NOT_APPLICABLE, note="planned maintenance")
    ingest(engine, am_body(am_alert("Link", fingerprint=fp)), now=T0 + timedelta(minutes=20))
    ingest(engine, am_body(am_alert("Link", fingerprint=fp)), now=T0 + timedelta(minutes=25))
    ingest(engine, am_body(am_alert("Link", fingerprint=fp, status="resolved")), now=T0 + timedelta(minutes=30))
    old, new = all_tickets(engine)
    assert (old.status, old.occurrences) == (Status.CLOSED, 1)
    assert (new.external_ref, new.status, new.occurrences) == (f"{fp}#2", Status.NEW, 2)
    assert len(events(engine, new.id, EventKind.INTERNAL_NOTE)) == 1
    assert events(engine, old.id, EventKind.INTERNAL_NOTE) == []


# --- mapping, settings, references ------------------------------------------------------------


def test_priority_and_category_mapping(engine):
    config = AlertSettings(severity_map={"warning": "high", "sev1": "critical"}, default_priority="low",
                           category_labels=("category", "team"), default_category="Software")
    cases = [
        (dict(severity="warning"), Priority.HIGH, "Software"),
        (dict(severity="SEV1", category="printing"), Priority.CRITICAL, "Printing"),
        (dict(severity="bogus", team="blue"), Priority.LOW, "Software"),  # unknown severity, unknown team
        (dict(severity=None, team="hardware", category="nonsense"), Priority.LOW, "Hardware"),
    ]
    for i, (labels, priority, category) in enumerate(cases):
        result = ingest(engine, am_body(am_alert(f"Case{i}", **labels)), config=config)
        with read_session(engine) as s:
            ticket = s.get(Ticket, result.ticket_ids[0])
            assert (Priority(ticket.priority), ticket.category.name) == (priority, category), labels
    # A deactivated category is never used; a deactivated default falls back to "Other".
    with transaction(engine) as s:
        s.execute(update(Category).where(Category.name.in_(["Printing", "Software"])).values(active=False))
    result = ingest(engine, am_body(am_alert("Case9", category="Printing")), config=config)
    with read_session(engine) as s:
        assert s.get(Ticket, result.ticket_ids[0]).category.name == "Other"


def test_default_settings_use_the_parser_table(engine):
    ingest(engine, am_body(am_alert("A", severity="page"), am_alert("B", severity="info"), am_alert("C", severity=None)))
    got = {t.summary: Priority(t.priority) for t in all_tickets(engine)}
    assert got == {"A on db1": Priority.CRITICAL, "B on db1": Priority.LOW, "C on db1": Priority.HIGH}


def test_load_alert_settings_from_secrets_and_environment():
    toml = {"alert_severity_map": {"warning": "high"}, "alert_default_category": "Hardware", "alert_auto_resolve": True,
            "alert_category_labels": ["team"]}
    cfg = load_alert_settings(load_settings({}, toml=toml))
    assert cfg.severity_map["warning"] == "high" and cfg.severity_map["critical"] == "critical"
    assert (cfg.default_category, cfg.auto_resolve, cfg.category_labels) == ("Hardware", True, ("team",))
    env = {"HELPDESK_ALERT_AUTO_RESOLVE": "no", "HELPDESK_ALERT_SEVERITY_MAP": "error=critical, info=medium",
           "HELPDESK_ALERT_DEFAULT_PRIORITY": "Medium", "HELPDESK_ALERT_SEVERITY_LABELS": "sev, level"}
    cfg = load_alert_settings(load_settings(env, toml=toml))  # the environment wins over the file
    assert cfg.auto_resolve is False and cfg.default_priority == "medium"
    assert (cfg.severity_map["error"], cfg.severity_map["info"], cfg.severity_map["warning"]) == ("critical", "medium", "medium")
    assert cfg.severity_labels == ("sev", "level")
    json_map = load_settings({"HELPDESK_ALERT_SEVERITY_MAP": '{"p1": "critical"}'}, toml=toml)
    assert load_alert_settings(json_map).severity_map["p1"] == "critical"
    assert load_alert_settings(load_settings({}, toml={})) == AlertSettings()
    for env, message in (
        ({"HELPDESK_ALERT_AUTO_RESOLVE": "maybe"}, "alert_auto_resolve"),
        ({"HELPDESK_ALERT_SEVERITY_MAP": "warning=urgent"}, "use one of low, medium, high, critical"),
        ({"HELPDESK_ALERT_SEVERITY_MAP": "warning"}, "key=value"),
        ({"HELPDESK_ALERT_DEFAULT_PRIORITY": "p0"}, "alert_default_priority"),
    ):
        with pytest.raises(ValueError, match=message):
            load_alert_settings(load_settings(env, toml={}))


def test_alert_keys_fit_the_reference_column(engine):
    assert alert_key("c6eadffa33fcdf37") == "c6eadffa33fcdf37"
    assert alert_key(" padded ") == "padded"
    for odd in ("x" * 300, "a#2", "tab\there", "two  spaces", ""):
        key = alert_key(odd)
        assert key.startswith("sha256:") and len(key) == 71 and key == alert_key(odd)
    assert incident_ref("k", 1) == "k" and incident_ref("k", 12) == "k#12"
    long_fp = "f" * 400
    ingest(engine, am_body(am_alert("Long", fingerprint=long_fp)))
    ingest(engine, am_body(am_alert("Long", fingerprint=long_fp)))
    (ticket,) = all_tickets(engine)
    assert ticket.external_ref == alert_key(long_fp) and ticket.occurrences == 2


def test_control_characters_in_alert_text_are_dropped(engine):
    ingest(engine, am_body(am_alert("Esc", summary="\x1b[31mRED\x1b[0m disk  full\x00")))
    (ticket,) = all_tickets(engine)
    assert ticket.summary == "[31mRED [0m disk full"
    assert "\x1b" not in ticket.description


def test_a_big_post_is_recorded_in_short_transactions_a_save_gets_in_between(engine, staff, monkeypatch):
    """A post of many alerts holds the write lock one batch at a time: a technician's save waiting behind the
    first batch commits before the post is finished (it used to wait for the whole post, or time out)."""
    from lib import api
    from lib.directory import RequesterInput
    from lib.tickets import TicketDraft

    monkeypatch.setattr(api, "ALERT_BATCH", 10)
    api.configure(engine, token="t", alert_settings=AlertSettings())
    first_batch, saved = threading.Event(), threading.Event()
    commits = []
    original = api.run_transaction

    def batch_then_pause(*args, **kwargs):  # type: ignore[no-untyped-def]
        result = original(*args, **kwargs)  # committed, and the write lock is free again
        commits.append(1)
        if len(commits) == 1:
            first_batch.set()
            saved.wait(30)  # hold the post here until the save is in
        return result

    monkeypatch.setattr(api, "run_transaction", batch_then_pause)

    def save() -> None:
        first_batch.wait(30)
        with transaction(engine) as s:
            tickets.create_ticket(s, actor=staff.tech, draft=TicketDraft(
                summary="Printer jams", category="Printing", priority="Low", channel="phone",
                requester=RequesterInput(name="Ann", email="ann@example.com")))
        saved.set()

    body = am_body(*(am_alert("DiskFull", instance=f"host{i:03d}") for i in range(45)))
    outcome: list = []
    try:
        saver = threading.Thread(target=save)
        poster = threading.Thread(target=lambda: outcome.append(api._ingest_body(body, None)), name="poster")
        saver.start()
        poster.start()
        poster.join(120)
        saver.join(60)
    finally:
        api.reset()
    assert saved.is_set()
    [result] = outcome
    assert result.created == 45 and len(commits) == 5  # 45 alerts, 10 per transaction
    assert sorted(result.tickets) == [ticket_ref(t.id) for t in all_tickets(engine) if t.summary != "Printer jams"]
    ids = [t.id for t in all_tickets(engine)]
    printer = next(t.id for t in all_tickets(engine) if t.summary == "Printer jams")
    assert ids[0] < printer < ids[-1]  # the save landed between two batches of the post
