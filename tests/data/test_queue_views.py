"""The queue's word search, saved views and CSV download, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest

from lib import queries, saved_views, tickets
from lib.db import read_session, transaction
from lib.directory import RequesterInput
from lib.errors import PermissionDenied, ValidationError
from lib.models import Setting, User
from lib.queries import QueueFilter, QueueView, Sort
from lib.queue_export import COLUMNS, export_note, queue_csv
from lib.queue_state import QueueState, from_params, to_params
from lib.search import SearchTextError
from lib.tickets import TicketDraft
from lib.workflow import Priority, Role

ANN = RequesterInput(name="Ann Smith", email="ann.smith@example.com")
ZED = RequesterInput(name="=HYPERLINK(\"http://evil.example\",\"x\")", email="zed@example.org")


@pytest.fixture(params=["like", "indexed"])
def search_index(request, engine):  # type: ignore[no-untyped-def]
    """Each search test runs with the word-search index (migration 0016) and without it (the plain LIKE path,
    e.g. a database restored from before 0016)."""
    from lib import queue_index

    if request.param == "like":
        with engine.begin() as conn:
            queue_index.uninstall(conn)
    assert queue_index.installed(engine, refresh=True) is (request.param == "indexed")
    yield request.param
    if request.param == "like":
        with engine.begin() as conn:
            queue_index.install(conn)
        queue_index.installed(engine, refresh=True)


@pytest.fixture
def desk(engine, staff, search_index):  # type: ignore[no-untyped-def]
    ids: dict[str, int] = {}
    with transaction(engine) as s:
        for key, summary, description, priority, requester in (
            ("paging", "Ticket 07 paging fails", "The pager app shows nothing", "High", ANN),
            ("printer", "Printer jams on tray 2", "Paper stuck; HD-style label printer", "Low", ZED),
            ("vpn", "VPN drops every hour", "Since the 07:00 update", "Critical", ZED),
            ("formula", "-2+3 =cmd|' /C calc'!A0", "@SUM(1)", "Medium", ZED),
        ):
            t = tickets.create_ticket(s, actor=staff.tech, draft=TicketDraft(
                summary=summary, description=description, category="Other", priority=priority, channel="phone",
                requester=requester))
            ids[key] = t.id
        tickets.take(s, actor=staff.tech, ticket_id=ids["vpn"])
    return ids


def found(engine, text: str, view: QueueView = QueueView.ALL, **kw) -> list[int]:  # type: ignore[no-untyped-def]
    with read_session(engine) as s:
        return [r.id for r in queries.list_queue(s, QueueFilter(view=view, text=text, **kw), sort=Sort.OLDEST).rows]


def test_words_in_any_order(engine, desk, search_index) -> None:
    assert found(engine, "ticket 07 paging") == [desk["paging"]]
    assert found(engine, "aging") == ([desk["paging"]] if search_index == "like" else [])  # inside a word
    assert found(engine, "paging 07") == [desk["paging"]]
    assert found(engine, "PAGING   ticket") == [desk["paging"]]
    assert found(engine, "pag") == [desk["paging"]]  # the last word as a prefix
    assert found(engine, "07") == [desk["paging"], desk["vpn"]]  # summary and description
    assert found(engine, "pager nothing") == [desk["paging"]]  # description words
    assert found(engine, "paging vpn") == []  # every word must match the same ticket


def test_requester_name_and_email(engine, desk) -> None:
    assert found(engine, "ann.smith@example.com") == [desk["paging"]]
    assert found(engine, "smith paging") == [desk["paging"]]  # requester + summary
    assert found(engine, "example.org") == [desk["printer"], desk["vpn"], desk["formula"]]
    assert found(engine, "example.org printer") == [desk["printer"]]


def test_a_number_jumps_to_the_ticket(engine, desk) -> None:
    vpn = desk["vpn"]
    for text in (f"HD-{vpn:06d}", f"hd-{vpn}", str(vpn), f"  {vpn} "):
        with read_session(engine) as s:
            page = queries.list_queue(s, QueueFilter(view=QueueView.UNASSIGNED, text=text))  # vpn is assigned
        assert [r.id for r in page.rows] == [vpn] and page.exact == vpn and page.total == 1, text
    with read_session(engine) as s:
        missing = queries.list_queue(s, QueueFilter(view=QueueView.ALL, text="HD-999999"))
    assert missing.rows == [] and missing.exact is None and missing.total == 0


def test_no_match_and_operators_never_fail(engine, desk) -> None:
    assert found(engine, "nothing like this anywhere") == []
    for text in ('"', '""', 'paging"', "NEAR(", "NEAR(paging 07)", "paging*", "*", "paging OR vpn", "-paging",
                 "a:b", "^", "(", ")", "%", "_", "\\", "'; DROP TABLE tickets; --", "🖨️", "x" * 300):
        found(engine, text)  # no error on either engine
    assert found(engine, "paging*") == [] and found(engine, '"paging"') == []  # typed characters are literal
    with pytest.raises(SearchTextError, match=r"U\+0000"):
        found(engine, "paging\x00")
    with read_session(engine) as s:  # the session still works afterwards
        assert queries.list_queue(s, QueueFilter(view=QueueView.ALL)).total == 4


def test_search_words() -> None:
    assert queries.search_words("  Paging\t07  paging ") == ["paging", "07"]
    assert queries.search_words("cafe\u0301") == ["café"]
    assert len(queries.search_words(" ".join(f"w{i}" for i in range(30)))) == queries.MAX_SEARCH_WORDS
    with pytest.raises(SearchTextError):
        queries.search_words("\x1b")


def test_search_combines_with_filters(engine, desk) -> None:
    assert found(engine, "example.org", priorities=[Priority.CRITICAL, Priority.LOW]) == [desk["printer"], desk["vpn"]]
    assert found(engine, "example.org", view=QueueView.UNASSIGNED) == [desk["printer"], desk["formula"]]


# --- saved views ---------------------------------------------------------------------------------------------


def test_personal_views_are_private(engine, staff) -> None:
    params = to_params(QueueState(view=QueueView.UNASSIGNED, priorities=(Priority.HIGH,), text="printer"),
                       fallback_view=None)
    with transaction(engine) as s:
        saved_views.save_view(s, actor=staff.tech, name="  My   printers ", params=params)
        saved_views.save_view(s, actor=staff.tech2, name="Other", params={"view": ["all"]})
    with read_session(engine) as s:
        mine = saved_views.list_views(s, user_id=staff.tech)
        theirs = saved_views.list_views(s, user_id=staff.tech2)
        row = s.get(Setting, saved_views.personal_key(staff.tech))
        assert row is not None and isinstance(row.value, list)
    assert [(v.name, v.shared) for v in mine] == [("My printers", False)]
    assert [v.name for v in theirs] == ["Other"]
    assert from_params(mine[0].params).state == QueueState(view=QueueView.UNASSIGNED, priorities=(Priority.HIGH,),
                                                           text="printer")
    assert mine[0].link == "/?view=unassigned&priority=High&q=printer"
    with transaction(engine) as s:  # the same name (any case) replaces it in place
        saved_views.save_view(s, actor=staff.tech, name="my printers", params={"view": ["all"]})
        saved_views.save_view(s, actor=staff.tech, name="Second", params={})
        saved_views.rename_view(s, actor=staff.tech, name="my printers", new_name="All of them")
    with read_session(engine) as s:
        assert [(v.name, v.params) for v in saved_views.list_views(s, user_id=staff.tech)] == [
            ("All of them", {"view": ["all"]}), ("Second", {})]
    with transaction(engine) as s:
        with pytest.raises(ValidationError, match="already a view named"):
            saved_views.rename_view(s, actor=staff.tech, name="Second", new_name="ALL OF THEM")
        with pytest.raises(ValidationError, match="No view named"):
            saved_views.delete_view(s, actor=staff.tech, name="Other")  # tech2's view is not tech's to delete
        saved_views.delete_view(s, actor=staff.tech, name="Second")
    with read_session(engine) as s:
        assert [v.name for v in saved_views.list_views(s, user_id=staff.tech)] == ["All of them"]
        assert [v.name for v in saved_views.list_views(s, user_id=staff.tech2)] == ["Other"]


def test_shared_views_only_the_lead_changes(engine, staff) -> None:
    with transaction(engine) as s:
        with pytest.raises(PermissionDenied, match="team lead"):
            saved_views.save_view(s, actor=staff.senior, name="Everyone", params={}, shared=True)
        saved_views.save_view(s, actor=staff.lead, name="Breaching", params={"view": ["at-risk"]}, shared=True)
        saved_views.save_view(s, actor=staff.tech, name="Mine", params={})
    with read_session(engine) as s:
        assert [(v.name, v.shared) for v in saved_views.list_views(s, user_id=staff.tech)] == [
            ("Breaching", True), ("Mine", False)]
        assert [(v.name, v.shared) for v in saved_views.list_views(s, user_id=staff.tech2)] == [("Breaching", True)]
    for action in (lambda s: saved_views.delete_view(s, actor=staff.tech, name="Breaching", shared=True),
                   lambda s: saved_views.rename_view(s, actor=staff.tech, name="Breaching", new_name="X", shared=True)):
        with transaction(engine) as s, pytest.raises(PermissionDenied):
            action(s)
    with transaction(engine) as s:  # a personal delete by that name does not touch the shared one
        with pytest.raises(ValidationError):
            saved_views.delete_view(s, actor=staff.tech, name="Breaching")
    with transaction(engine) as s:  # demoted since login: the database decides
        s.get(User, staff.lead).role = int(Role.SENIOR)
    with transaction(engine) as s, pytest.raises(PermissionDenied):
        saved_views.delete_view(s, actor=staff.lead, name="Breaching", shared=True)
    with transaction(engine) as s:
        s.get(User, staff.lead).role = int(Role.LEAD)
    with transaction(engine) as s:
        saved_views.rename_view(s, actor=staff.lead, name="Breaching", new_name="At risk", shared=True)
        saved_views.delete_view(s, actor=staff.lead, name="At risk", shared=True)
    with read_session(engine) as s:
        assert [v.name for v in saved_views.list_views(s, user_id=staff.tech)] == ["Mine"]


@pytest.mark.parametrize("name,message", [("", "Give the view a name"), ("   ", "Give the view a name"),
                                          ("x" * 61, "at most 60"), ("a\x00b", "control characters")])
def test_view_names_are_checked(engine, staff, name: str, message: str) -> None:
    with transaction(engine) as s, pytest.raises(ValidationError, match=message):
        saved_views.save_view(s, actor=staff.tech, name=name, params={})


def test_damaged_rows_and_unknown_parameters(engine, staff) -> None:
    with transaction(engine) as s:
        s.add(Setting(key=saved_views.personal_key(staff.tech), value=[
            "junk", {"name": 3}, {"name": "Good", "params": {"view": ["all"], "evil": ["x"], "page": "2"}}]))
    with read_session(engine) as s:
        views = saved_views.list_views(s, user_id=staff.tech)
    assert [(v.name, v.params) for v in views] == [("Good", {"view": ["all"]})]


# --- CSV ------------------------------------------------------------------------------------------------------


def test_csv_holds_the_whole_filtered_view_and_is_formula_safe(engine, desk) -> None:
    from zoneinfo import ZoneInfo

    f = QueueFilter(view=QueueView.ALL, text="example.org")
    with read_session(engine) as s:
        text = queue_csv(s, f, sort=Sort.OLDEST, zone=ZoneInfo("Europe/London"), now=f.now or _now())
        small = queue_csv(s, f, sort=Sort.OLDEST, zone=ZoneInfo("Europe/London"), now=_now(), limit=2)
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == list(COLUMNS)
    assert [r[0] for r in rows[1:]] == [f"HD-{desk[k]:06d}" for k in ("printer", "vpn", "formula")]
    formula = rows[3]
    assert formula[1] == "'-2+3 =cmd|' /C calc'!A0"  # a formula-looking summary is text
    assert all(r[6].startswith("'=HYPERLINK") for r in rows[1:])  # the requester's name too
    assert rows[1][7] == "" and rows[2][7] != ""  # only the vpn ticket has an assignee
    assert len(list(csv.reader(io.StringIO(small)))) == 3  # header + the first 2
    assert export_note(2, limit=5) is None and "first 5 of 7" in (export_note(7, limit=5) or "")
    with read_session(engine) as s:
        jump = queue_csv(s, QueueFilter(text=f"HD-{desk['vpn']:06d}"), sort=Sort.OLDEST,
                         zone=ZoneInfo("UTC"), now=_now())
    assert [r[0] for r in list(csv.reader(io.StringIO(jump)))[1:]] == [f"HD-{desk['vpn']:06d}"]


def _now():  # type: ignore[no-untyped-def]
    from lib import clock

    return clock.now()


def test_the_index_follows_edits(engine, staff) -> None:
    """Triggers (SQLite) and expression indexes (PostgreSQL) see new tickets, edits and renamed requesters."""
    from lib import queue_index
    from lib.models import Requester, Ticket

    assert queue_index.installed(engine, refresh=True)  # migration 0016
    with transaction(engine) as s:
        t = tickets.create_ticket(s, actor=staff.tech, draft=TicketDraft(
            summary="Scanner offline", category="Other", priority="Low", channel="phone", requester=ANN))
        tid = t.id
    assert found(engine, "offline scan") == [tid]
    with transaction(engine) as s:
        s.get(Ticket, tid).summary = "Scanner back online"
        s.get(Requester, s.get(Ticket, tid).requester_id).name = "Annika Quist"
    assert found(engine, "offline scan") == [] and found(engine, "online quist") == [tid]
    assert found(engine, "annika") == [tid] and found(engine, "ann.smith") == [tid]


def test_search_pages_and_totals(engine, desk) -> None:
    """A search knows how many tickets match (past the last page too, and without asking for the total)."""
    with read_session(engine) as s:
        pages = [queries.list_queue(s, QueueFilter(view=QueueView.ALL, text="example.org"), sort=Sort.OLDEST,
                                    page=p, page_size=2) for p in range(3)]
        quick = queries.list_queue(s, QueueFilter(view=QueueView.ALL, text="example.org"), page_size=2,
                                   with_total=False)
    assert [[r.id for r in pg.rows] for pg in pages] == [[desk["printer"], desk["vpn"]], [desk["formula"]], []]
    assert [pg.total for pg in pages] == [3, 3, 3] and pages[0].pages == 2
    assert quick.total == 3 and not quick.capped


def test_a_common_word_shows_its_newest_matches_and_says_more_match(engine, desk, staff, monkeypatch) -> None:
    """Past SEARCH_NEWEST matches a search shows the newest of them, in the sort chosen, and says it was cut;
    the windows of newest tickets widen until they hold enough matches or the whole desk."""
    made = []
    for i in range(12):
        with transaction(engine) as s:
            t = tickets.create_ticket(s, actor=staff.tech, draft=TicketDraft(
                summary=f"Toner low on floor {i}" if i % 3 else f"Badge reader {i}", category="Other",
                priority="Low" if i % 2 else "High", channel="phone", requester=ANN))
            made.append((t.id, i % 3 != 0))
    toner = [tid for tid, has in made if has]  # 8 tickets, oldest first
    now = datetime(2026, 12, 1, 10, tzinfo=UTC)
    with read_session(engine) as s:
        f = QueueFilter(view=QueueView.ALL, text="toner", now=now)
        for window in (1, 2, 5, 1000):
            assert queries.newest_matches(s, f, now, limit=5, window=window) == (toner[::-1][:5], True)
            assert queries.newest_matches(s, f, now, limit=8, window=window) == (toner[::-1], False)
        monkeypatch.setattr(queries, "SEARCH_NEWEST", 5)
        monkeypatch.setattr(queries, "SEARCH_WINDOW", 3)
        page = queries.list_queue(s, f, sort=Sort.OLDEST, page_size=50)
        assert (page.total, page.capped, [r.id for r in page.rows]) == (5, True, sorted(toner[-5:]))
        high_first = queries.list_queue(s, f, sort=Sort.PRIORITY, page_size=2)
        assert [r.priority for r in high_first.rows] == [Priority.HIGH, Priority.HIGH] and high_first.pages == 3
        assert queries.list_queue(s, QueueFilter(view=QueueView.ALL, text="badge", now=now)).capped is False
