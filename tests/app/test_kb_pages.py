"""AppTest: suggestions on intake and the ticket page, repeat notices, the knowledge-base page, follow-ups due."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from lib import clock, followups, kb, tickets
from lib.db import read_session, transaction
from lib.directory import DeviceInput, RequesterInput
from lib.models import Category, KbArticle, KbArticleTicket, Ticket
from lib.queries import QueueView
from lib.tickets import TicketDraft
from lib.workflow import ActionKind, KbStatus
from tests.app.conftest import page_test

pytestmark = pytest.mark.filterwarnings("ignore")
PRN = DeviceInput(asset_tag="PRN-0042", device_type="Printer", make_model="HP LaserJet M404")


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [t.value for t in at.title] + [e.value for e in at.error]
    parts += [w.value for w in at.warning] + [i.value for i in at.info] + [c.value for c in at.caption]
    parts += [s.value for s in at.subheader]
    return "\n".join(str(p) for p in parts)


def printing(engine) -> int:
    with read_session(engine) as s:
        return s.scalar(select(Category.id).where(Category.name == "Printing"))


def published_article(engine, staff, **kw) -> int:
    values = dict(title="Printer jams on tray 2", symptoms="Paper jams when printing from tray 2.",
                  cause="Worn pickup roller.", resolution_steps="1. Open tray 2\n2. Replace the **pickup roller**",
                  category_id=printing(engine), tags="printer, paper jam")
    values.update(kw)
    with transaction(engine) as s:
        a = kb.create_article(s, actor=staff.tech, draft=kb.ArticleDraft(**values))  # type: ignore[arg-type]
        kb.publish(s, actor=staff.lead, article_id=a.id, expected_version=a.version)
        return a.id


def ticket(engine, staff, *, summary: str = "Printer jams", days_ago: float = 0, device=None) -> int:
    with transaction(engine) as s:
        return tickets.create_ticket(s, actor=staff.tech, now=clock.now() - timedelta(days=days_ago),
                                     draft=TicketDraft(summary=summary, category="Printing", priority="Medium",
                                                       channel="phone", device=device,
                                                       requester=RequesterInput(name="Ann", email="ann@example.com"))).id


def test_intake_suggests_the_article_that_solves_a_known_problem(app_env, staff_app) -> None:
    aid = published_article(app_env, staff_app)
    published_article(app_env, staff_app, title="VPN drops every few minutes", symptoms="VPN disconnects",
                      resolution_steps="Lower the MTU", tags="vpn", category_id=None)
    at = page_test("intake.py", "tech")
    at.run()
    assert "Suggestions" not in texts(at)
    at.text_input(key="in_summary").input("Paper keeps jamming in the printer tray")
    at.selectbox(key="in_category").select(printing(app_env))
    at.run()
    assert not at.exception, at.exception
    shown = texts(at)
    assert f"KB-{aid}" in shown and "Printer jams on tray 2" in shown and "pickup roller" in shown
    assert "VPN" not in shown


def test_intake_and_ticket_page_notice_the_third_ticket_for_a_printer(app_env, staff_app) -> None:
    ticket(app_env, staff_app, days_ago=12, device=PRN)
    ticket(app_env, staff_app, days_ago=4, device=PRN)
    at = page_test("intake.py", "tech")
    at.run()
    at.radio(key="in_dev_mode").set_value("Existing asset")
    at.run()
    at.text_input(key="in_dev_search").input("PRN-0042")
    at.run()
    assert not at.exception, at.exception
    assert any("3rd ticket for this printer in 30 days" in w.value for w in at.warning)

    third = ticket(app_env, staff_app, device=PRN)
    at = page_test("ticket.py", "tech", query={"id": str(third)})
    at.run()
    assert not at.exception, at.exception
    assert any("3rd ticket for this printer in 30 days" in w.value for w in at.warning)


def test_ticket_page_suggestion_records_solved_with(app_env, staff_app) -> None:
    aid = published_article(app_env, staff_app)
    tid = ticket(app_env, staff_app, summary="Printer in room 4 jams on tray 2")
    at = page_test("ticket.py", "tech", query={"id": str(tid)})
    at.run()
    assert not at.exception, at.exception
    at.button(key=f"solved_{tid}_{aid}").click().run()
    assert not at.exception, at.exception
    with read_session(app_env) as s:
        link = s.get(KbArticleTicket, (aid, tid))
        assert link is not None and link.solved
    assert f"solved with [KB-{aid}]" in texts(at)


def test_create_kb_article_from_a_resolved_ticket_then_publish(app_env, staff_app) -> None:
    tid = ticket(app_env, staff_app, summary="Label printer prints blank labels")
    with transaction(app_env) as s:
        tickets.take(s, actor=staff_app.tech, ticket_id=tid)
        tickets.log_action(s, actor=staff_app.tech, ticket_id=tid, kind=ActionKind.DIAGNOSIS, text="Dirty head")
    with transaction(app_env) as s:
        tickets.resolve(s, actor=staff_app.tech, ticket_id=tid, expected_version=s.get(Ticket, tid).version,
                        resolution_notes="Cleaned the thermal head", root_cause="Dust")
    at = page_test("ticket.py", "tech", query={"id": str(tid)})
    at.run()
    at.button(key=f"kb_draft_{tid}").click().run()
    assert not at.exception, at.exception
    with read_session(app_env) as s:
        article = s.scalars(select(KbArticle)).one()
        assert article.status == KbStatus.DRAFT.value and article.source_ticket_id == tid
        aid = article.id
    assert f"KB-{aid}" in texts(at)

    # a technician cannot publish; a senior can
    at = page_test("kb.py", "tech", query={"id": str(aid)})
    at.run()
    assert not at.exception, at.exception
    assert "Cleaned the thermal head" in [h.proto.body for h in at.get("html")][0]
    assert not [b for b in at.button if b.key == "kb_publish"]
    at = page_test("kb.py", "senior", query={"id": str(aid)})
    at.run()
    at.button(key="kb_publish").click().run()
    assert not at.exception, at.exception
    with read_session(app_env) as s:
        assert s.get(KbArticle, aid).status == KbStatus.PUBLISHED.value


def test_kb_page_sections_search_and_hostile_markdown(app_env, staff_app) -> None:
    aid = published_article(app_env, staff_app, resolution_steps=(
        "<script>alert(1)</script>\n\n[x](javascript:alert(1))\n\n<img src=x onerror=alert(1)>\n\n**fine**"))
    at = page_test("kb.py", "lead")
    at.run()
    assert not at.exception, at.exception
    at.text_input(key="kb_query").input("printer jam")
    at.run()
    assert f"KB-{aid}" in texts(at)
    for query in ('"unbalanced', "AND OR", "-printer", "NEAR(a b)"):
        at.text_input(key="kb_query").input(query)
        at.run()
        assert not at.exception, (query, at.exception)
    for section in ("🗂️ Browse", "➕ New article", "🔁 Repeat issues"):
        at.segmented_control(key="kb_section").set_value(section).run()
        assert not at.exception, (section, at.exception)
    at = page_test("kb.py", "tech", query={"id": str(aid)})
    at.run()
    html = at.get("html")[0].proto.body
    assert "<script" not in html and "javascript:" not in html.replace("[x](javascript:alert(1))", "")
    assert "<img" not in html and "&lt;script&gt;" in html and "<strong>fine</strong>" in html


def test_new_article_form_keeps_input_on_error(app_env, staff_app) -> None:
    at = page_test("kb.py", "tech")
    at.run()
    at.segmented_control(key="kb_section").set_value("➕ New article").run()
    at.text_input(key="kb_new_title").input("Scanner to e-mail fails")
    [b for b in at.button if b.label == "Save draft"][0].click().run()
    assert not at.exception, at.exception
    assert at.text_input(key="kb_new_title").value == "Scanner to e-mail fails"
    assert any("resolution steps" in e.value for e in at.error)
    at.text_area(key="kb_new_steps").input("Allow the scanner on the relay")
    [b for b in at.button if b.label == "Save draft"][0].click().run()
    assert not at.exception, at.exception
    with read_session(app_env) as s:
        assert s.scalars(select(KbArticle.title)).all() == ["Scanner to e-mail fails"]


def test_follow_ups_due_view_shows_the_owner_what_is_due(clock, app_env, staff_app) -> None:
    tid = ticket(app_env, staff_app, summary="Check the new roller")
    past = clock.now() - timedelta(days=3)
    with transaction(app_env) as s:
        followups.schedule(s, actor=staff_app.lead, ticket_id=tid, due_at=past + timedelta(days=1),
                           owner_id=staff_app.tech, note="Call Ann about the roller", now=past)
    at = page_test("queue.py", "tech")
    at.run()
    at.segmented_control(key="queue_view").set_value(QueueView.FOLLOW_UPS.value).run()
    assert not at.exception, at.exception
    assert "Call Ann about the roller" in texts(at)
    frame = at.dataframe[0].value
    assert len(frame) == 1 and f"HD-{tid:06d}" in frame.iloc[0]["Ticket"]
    at = page_test("queue.py", "tech2")  # not the owner
    at.run()
    at.segmented_control(key="queue_view").set_value(QueueView.FOLLOW_UPS.value).run()
    assert "No follow-ups of yours are due." in texts(at)

    at = page_test("ticket.py", "tech", query={"id": str(tid)})
    at.run()
    with read_session(app_env) as s:
        fid = followups.list_for_ticket(s, tid)[0].id
    at.text_input(key=f"fu_outcome_{fid}").input("Roller fine")
    [b for b in at.button if b.label == "Complete follow-up"][0].click().run()
    assert not at.exception, at.exception
    with read_session(app_env) as s:
        assert followups.list_for_ticket(s, tid)[0].outcome == "Roller fine"
