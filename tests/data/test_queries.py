"""The read side on SQLite and PostgreSQL: queue views, filters, sorts, paging, search, counts, timeline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from lib import clock, queries, tickets
from lib.db import read_session, transaction
from lib.directory import DeviceInput, RequesterInput, resolve_category
from lib.models import Ticket
from lib.queries import QueueFilter, QueueView, Sort
from lib.tickets import NewAttachment, TicketDraft
from lib.workflow import ActionKind, Channel, ClosureReason, Priority, Status

ANN = RequesterInput(name="Ann Smith", email="ann@example.com")
BOB = RequesterInput(name="Bob Smith", email="bob_smith@example.com")
BOBX = RequesterInput(name="Bob Xavier", email="bobxsmith@example.com")
CAROL = RequesterInput(name="Carol Jones", email="carol@example.com")
DAVE = RequesterInput(name="Dave Brown", email="dave@example.com")
LAPTOP = DeviceInput(asset_tag="LAP-0001", make_model="ThinkPad T14")

# key: (minutes after base, summary, priority, category, channel, requester, what happens next)
PLAN = [
    ("new_low", 0, "Printed 1000 pages then stopped", "Low", "Printing", "email", ANN, None),
    ("mine", 10, "VPN drops every hour", "High", "Networking", "phone", BOB, "work"),
    ("tech2", 20, "Laptop fan loud", "Critical", "Hardware", "walk_in", CAROL, "work2"),
    ("waiting", 30, "Excel crashes on save", "Medium", "Software", "email", ANN, "wait"),
    ("resolved", 40, "Outlook profile broken", "Medium", "Software", "email", BOBX, "resolve"),
    ("closed", 50, "Toner empty", "Low", "Printing", "phone", ANN, "close"),
    ("old_closed", None, "Old keyboard issue", "Low", "Hardware", "phone", DAVE, "close_old"),
    ("alert", 70, "100% CPU on db_01", "Critical", "Networking", "alert", None, None),
    ("dbx", 80, "dbx01 slow", "Medium", "Networking", "alert", None, None),
    ("wifi", 90, "Wi-Fi weak in room B", "Low", "Networking", "on_behalf", CAROL, None),
    ("mouse", 100, "Mouse double-clicks", "Low", "Hardware", "walk_in", CAROL, None),
    ("twelve", 110, "Monitor flickers", "High", "Hardware", "phone", DAVE, None),
]


def seed(engine, staff) -> tuple[dict[str, int], datetime]:
    base = clock.now().replace(microsecond=0) - timedelta(days=2)
    ids: dict[str, int] = {}
    with transaction(engine) as s:
        for key, minutes, summary, priority, category, channel, requester, then in PLAN:
            at = base - timedelta(days=60) if minutes is None else base + timedelta(minutes=minutes)
            t = tickets.create_ticket(s, actor=staff.tech, now=at, draft=TicketDraft(
                summary=summary, priority=priority, category=category, channel=channel, requester=requester,
                description="Query latency above 2 s" if key == "dbx" else "Details of " + key.replace("_", " "),
                device=LAPTOP if key in ("new_low", "waiting") else None))
            ids[key] = t.id
            later = at + timedelta(minutes=5)
            if then in ("work", "wait", "resolve", "close"):
                tickets.take(s, actor=staff.tech, ticket_id=t.id, now=later)
                if then != "close":
                    tickets.acknowledge(s, actor=staff.tech, ticket_id=t.id, expected_version=t.version, now=later)
            if then == "work2":
                tickets.take(s, actor=staff.tech2, ticket_id=t.id, now=later)
                tickets.acknowledge(s, actor=staff.tech2, ticket_id=t.id, expected_version=t.version, now=later)
            if then == "wait":
                tickets.request_info(s, actor=staff.tech, ticket_id=t.id, expected_version=t.version, text="Which file?",
                                     now=later)
            if then == "resolve":
                tickets.resolve(s, actor=staff.tech, ticket_id=t.id, expected_version=t.version,
                                resolution_notes="Rebuilt the profile", now=later)
            if then == "close":
                tickets.close(s, actor=staff.tech, ticket_id=t.id, expected_version=t.version,
                              reason=ClosureReason.CANCELLED, note="Found a spare cartridge", now=later)
            if then == "close_old":
                tickets.close(s, actor=staff.lead, ticket_id=t.id, expected_version=t.version,
                              reason=ClosureReason.CANCELLED, note="Replaced by a new model",
                              now=at + timedelta(days=20))
    assert ids["twelve"] == 12  # fresh database: numbers start at 1
    return ids, base


def listed(engine, sort: Sort = Sort.PRIORITY, **kw) -> list[int]:
    with read_session(engine) as s:
        return [r.id for r in queries.list_queue(s, QueueFilter(**kw), sort=sort, page_size=100).rows]


@pytest.fixture
def data(engine, staff):
    ids, base = seed(engine, staff)
    return engine, staff, ids, base


def test_views(data):
    engine, staff, ids, _ = data
    i = ids
    open_ids = {i[k] for k in ("new_low", "mine", "tech2", "waiting", "alert", "dbx", "wifi", "mouse", "twelve")}
    assert set(listed(engine, view=QueueView.MY_OPEN, me=staff.tech)) == {i["mine"], i["waiting"]}
    assert listed(engine, view=QueueView.MY_OPEN, me=None) == []
    assert set(listed(engine, view=QueueView.UNASSIGNED)) == {i[k] for k in ("new_low", "alert", "dbx", "wifi",
                                                                            "mouse", "twelve")}
    assert set(listed(engine, view=QueueView.ALL_OPEN)) == open_ids
    assert listed(engine, view=QueueView.AWAITING) == [i["resolved"]]
    assert listed(engine, view=QueueView.RECENTLY_CLOSED) == [i["closed"]]  # not the one closed 40 days ago
    assert set(listed(engine, view=QueueView.ALL)) == set(ids.values())
    # the default queue: open tickets, highest priority first, then oldest first
    assert listed(engine) == [i[k] for k in ("tech2", "alert", "mine", "twelve", "waiting", "dbx", "new_low", "wifi",
                                             "mouse")]


def test_filters(data):
    engine, staff, i, base = data
    with read_session(engine) as s:
        hardware = resolve_category(s, "Hardware").id
        networking = resolve_category(s, "Networking").id
    ALL = QueueView.ALL
    assert listed(engine, view=ALL, statuses=[Status.WAITING_USER]) == [i["waiting"]]
    assert set(listed(engine, view=ALL, statuses=[Status.RESOLVED, Status.CLOSED])) == {
        i["resolved"], i["closed"], i["old_closed"]}
    assert set(listed(engine, priorities=[Priority.CRITICAL])) == {i["tech2"], i["alert"]}
    assert set(listed(engine, view=ALL, category_ids=[hardware])) == {i["tech2"], i["old_closed"], i["mouse"],
                                                                      i["twelve"]}
    assert set(listed(engine, category_ids=[hardware, networking], priorities=[Priority.HIGH])) == {
        i["mine"], i["twelve"]}
    assert set(listed(engine, view=ALL, assignee_ids=[staff.tech])) == {i["mine"], i["waiting"], i["resolved"],
                                                                        i["closed"]}
    assert set(listed(engine, assignee_ids=[staff.tech2], include_unassigned=True)) == {
        i["tech2"], i["new_low"], i["alert"], i["dbx"], i["wifi"], i["mouse"], i["twelve"]}
    assert set(listed(engine, view=ALL, include_unassigned=True)) == {
        i["new_low"], i["old_closed"], i["alert"], i["dbx"], i["wifi"], i["mouse"], i["twelve"]}
    assert set(listed(engine, channels=[Channel.ALERT])) == {i["alert"], i["dbx"]}
    assert listed(engine, priorities=[Priority.LOW], channels=[Channel.WALK_IN]) == [i["mouse"]]
    window = dict(created_from=base + timedelta(minutes=30), created_to=base + timedelta(minutes=70))
    assert set(listed(engine, view=ALL, **window)) == {i["waiting"], i["resolved"], i["closed"]}  # to is exclusive
    assert listed(engine, view=ALL, created_to=base) == [i["old_closed"]]
    assert listed(engine, statuses=[Status.WAITING_VENDOR]) == []


def test_sorts_and_paging(data):
    engine, staff, i, _ = data
    by_created = sorted(i.values(), key=lambda tid: (-60 * 24 * 60 if tid == i["old_closed"] else tid))
    assert listed(engine, Sort.OLDEST, view=QueueView.ALL) == by_created
    assert listed(engine, Sort.NEWEST, view=QueueView.ALL) == by_created[::-1]
    with transaction(engine) as s:
        tickets.update_fields(s, actor=staff.lead, ticket_id=i["mouse"], expected_version=1,
                              changes={"priority": "Medium"})
    with read_session(engine) as s:
        rows = queries.list_queue(s, QueueFilter(view=QueueView.ALL), sort=Sort.UPDATED, page_size=100).rows
        assert rows[0].id == i["mouse"]
        assert [r.updated_at for r in rows] == sorted((r.updated_at for r in rows), reverse=True)
        due = queries.list_queue(s, QueueFilter(view=QueueView.ALL), sort=Sort.DUE, page_size=100).rows
        dues = [r.resolution_due_at for r in due]
        known = [d for d in dues if d is not None]
        assert known and dues[: len(known)] == sorted(known)  # soonest first, no due time last
        # a recently closed list is newest closure first whatever the sort
        assert listed(engine, view=QueueView.RECENTLY_CLOSED) == [i["closed"]]
        # paging: pages concatenate to the whole list; total counts every match
        whole = listed(engine, Sort.NEWEST, view=QueueView.ALL)
        pages = [queries.list_queue(s, QueueFilter(view=QueueView.ALL), sort=Sort.NEWEST, page=p, page_size=5)
                 for p in range(4)]
    assert [p.total for p in pages] == [12] * 4 and pages[0].pages == 3
    assert [len(p.rows) for p in pages] == [5, 5, 2, 0]
    assert [r.id for p in pages for r in p.rows] == whole
    with read_session(engine) as s:
        quick = queries.list_queue(s, QueueFilter(view=QueueView.ALL), page_size=3, with_total=False)
        assert quick.total == 3
        clamped = queries.list_queue(s, QueueFilter(view=QueueView.ALL), page=-4, page_size=0)
        assert (clamped.page, clamped.page_size, len(clamped.rows)) == (0, 1, 1)
    row = pages[0].rows[0]
    assert (row.id, row.summary, row.status, row.priority, row.category, row.channel, row.requester) == (
        i["twelve"], "Monitor flickers", Status.NEW, Priority.HIGH, "Hardware", Channel.PHONE, "Dave Brown")


def test_text_search(data):
    engine, _, i, _ = data

    def find(text: str, view: QueueView = QueueView.ALL) -> set[int]:
        return set(listed(engine, view=view, text=text))

    assert find("HD-000012") == {12} and find("hd-12") == {12} and find(" 12 ") == {12} and find("12") == {12}
    assert find("vpn") == {i["mine"]} and find("EXCEL CRASHES") == {i["waiting"]}
    assert find("latency") == {i["dbx"]}  # description
    assert find("carol") == {i["tech2"], i["wifi"], i["mouse"]}  # requester name
    assert find("dave@example") == {i["old_closed"], i["twelve"]}  # requester e-mail
    # LIKE metacharacters are plain characters
    assert find("100%") == {i["alert"]}  # not "1000 pages"
    assert find("db_01") == {i["alert"]}  # not "dbx01"
    assert find("bob_smith") == {i["mine"]}  # not bobxsmith
    assert find("%") == {i["alert"]}
    assert find("_") == {i["alert"], i["mine"]}
    assert find("\\") == set()
    assert find("Outlook", QueueView.ALL_OPEN) == set() and find("Outlook") == {i["resolved"]}
    assert find("nothing like this") == set()


def test_counts_related_and_duplicates(data):
    engine, _, i, _ = data
    with read_session(engine) as s:
        assert queries.open_counts(s) == {Status.NEW: 6, Status.ASSIGNED: 0, Status.IN_PROGRESS: 2,
                                          Status.WAITING_USER: 1, Status.WAITING_VENDOR: 0}
        new_low = s.get(Ticket, i["new_low"])
        carol = s.get(Ticket, i["mouse"]).requester_id
        ann, laptop = new_low.requester_id, new_low.device_id
        dup = queries.possible_duplicates(s, requester_id=ann, device_id=None, exclude=i["new_low"])
        assert [r.id for r in dup] == [i["waiting"]]  # open ones only: the closed toner ticket is not offered
        both = queries.possible_duplicates(s, requester_id=carol, device_id=laptop)
        assert {r.id for r in both} == {i["new_low"], i["waiting"], i["tech2"], i["wifi"], i["mouse"]}
        assert queries.possible_duplicates(s, requester_id=None, device_id=None) == []
        assert [r.id for r in queries.possible_duplicates(s, requester_id=carol, device_id=None, limit=2)] == [
            i["mouse"], i["wifi"]]  # newest first
        assert {r.id for r in queries.requester_tickets(s, ann)} == {i["new_low"], i["waiting"], i["closed"]}
        assert {r.id for r in queries.device_tickets(s, laptop, exclude=i["waiting"])} == {i["new_low"]}


def test_breaching_or_at_risk(engine, staff):
    monday = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)  # London is on UTC in January
    with transaction(engine) as s:
        critical = tickets.create_ticket(s, actor=staff.tech, now=monday, draft=TicketDraft(
            summary="Core switch down", priority="Critical", category="Networking", channel="alert")).id
        low = tickets.create_ticket(s, actor=staff.tech, now=monday, draft=TicketDraft(
            summary="Label printer slow", priority="Low", category="Printing", channel="alert")).id

    def at_risk(minutes: int) -> list[int]:
        return listed(engine, view=QueueView.AT_RISK, now=monday + timedelta(minutes=minutes))

    assert at_risk(10) == []
    assert at_risk(25) == [critical]  # 75 % of the 30-minute response target, nobody has answered
    with transaction(engine) as s:
        tickets.take(s, actor=staff.tech, ticket_id=critical, now=monday + timedelta(minutes=26))
        tickets.acknowledge(s, actor=staff.tech, ticket_id=critical, expected_version=2,
                            now=monday + timedelta(minutes=26))
    assert at_risk(27) == []  # acknowledged: the response clock stopped
    assert at_risk(181) == [critical]  # 75 % of the 4-hour resolution target
    with transaction(engine) as s:
        tickets.request_info(s, actor=staff.tech, ticket_id=critical, expected_version=3, text="Which site?",
                             now=monday + timedelta(minutes=30))
    assert critical not in at_risk(181)  # waiting on the user pauses the clock
    assert low not in at_risk(181)


def test_change_marker_moves_on_each_write(engine, staff):
    def marker() -> int:
        with read_session(engine) as s:
            return queries.change_marker(s)

    seen = [marker()]
    with transaction(engine) as s:
        tid = tickets.create_ticket(s, actor=staff.tech, draft=TicketDraft(
            summary="Scanner offline", priority="Low", category="Hardware", channel="phone", requester=ANN)).id
    seen.append(marker())
    with transaction(engine) as s:
        other = tickets.create_ticket(s, actor=staff.tech, draft=TicketDraft(
            summary="All scanners offline", priority="High", category="Hardware", channel="phone", requester=ANN)).id
    writes = [
        lambda s: tickets.take(s, actor=staff.tech, ticket_id=tid),
        lambda s: tickets.internal_note(s, actor=staff.tech2, ticket_id=tid, text="Seen this before"),
        lambda s: tickets.update_fields(s, actor=staff.tech, ticket_id=tid, expected_version=2,
                                        changes={"summary": "Scanner offline on floor 2"}),
        lambda s: tickets.log_action(s, actor=staff.tech, ticket_id=tid, kind=ActionKind.TROUBLESHOOTING,
                                     text="Power cycled"),
        lambda s: tickets.public_reply(s, actor=staff.tech, ticket_id=tid, text="On it"),
        lambda s: tickets.requester_reply(s, ticket_id=tid, from_label="ann@example.com", text="Thanks"),
        lambda s: tickets.add_attachment(s, actor=staff.tech, ticket_id=tid,
                                         attachment=NewAttachment("photo.png", "image/png", b"\x89PNG")),
        lambda s: tickets.link(s, actor=staff.tech, ticket_id=tid, parent_id=other),
    ]
    seen.append(marker())
    with read_session(engine) as s:  # reading moves nothing
        queries.list_queue(s, QueueFilter(view=QueueView.ALL))
        queries.timeline(s, tid)
    assert marker() == seen[-1]
    for write in writes:
        with transaction(engine) as s:
            write(s)
        seen.append(marker())
    assert len(set(seen)) == len(seen), seen


def test_timeline(clock, engine, staff):
    start = clock.now().replace(microsecond=0) - timedelta(hours=3)
    with transaction(engine) as s:
        tid = tickets.create_ticket(s, actor=staff.tech, now=start, draft=TicketDraft(
            summary="Phone will not sync", priority="Medium", category="Software", channel="email",
            requester=ANN, description="Since the update")).id
        tickets.take(s, actor=staff.tech, ticket_id=tid, now=start + timedelta(minutes=10))
        tickets.public_reply(s, actor=staff.tech, ticket_id=tid, text="Try a restart", now=start + timedelta(minutes=20))
        tickets.requester_reply(s, ticket_id=tid, from_label="ann@example.com", text="Did not help",
                                now=start + timedelta(minutes=30))
        # documented later, but it happened right after the take: the timeline shows it there
        tickets.log_action(s, actor=staff.tech, ticket_id=tid, kind="diagnosis", text="Checked the account",
                           minutes=5, now=start + timedelta(minutes=12))
        tickets.internal_note(s, actor=staff.tech2, ticket_id=tid, text="Known bug in 4.2",
                              now=start + timedelta(minutes=40))
    with read_session(engine) as s:
        entries = queries.timeline(s, tid)
        first_ids = [e.id for e in entries[:2]]
        later = queries.timeline(s, tid, since_id=max(first_ids))
        last = queries.last_event_id(s, tid)
        assert queries.events_since(s, tid, entries[0].id) == len(entries) - 1
    got = [(e.kind, e.actor, e.public, e.body) for e in entries]
    assert got == [
        ("created", "Tom Tech", True, "Since the update"),
        ("assigned", "Tom Tech", False, None),
        ("action", "Tom Tech", False, "Checked the account"),
        ("public_reply", "Tom Tech", True, "Try a restart"),
        ("inbound_email", "ann@example.com", True, "Did not help"),
        ("internal_note", "Tara Tech", False, "Known bug in 4.2"),
    ]
    assert [e.occurred_at for e in entries] == sorted(e.occurred_at for e in entries)
    assert entries[1].from_status == Status.NEW and entries[1].to_status == Status.ASSIGNED
    assert entries[1].field == "assignee" and entries[1].new_value == "Tom Tech"
    assert entries[2].minutes == 5 and entries[2].meta == {"action": "diagnosis"}
    assert all(e.occurred_at.tzinfo is not None for e in entries)
    assert last == max(e.id for e in entries)
    assert {e.id for e in later} == {e.id for e in entries if e.id > max(first_ids)}
