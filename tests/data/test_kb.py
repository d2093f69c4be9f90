"""Knowledge base on SQLite and PostgreSQL: drafts, versions, publishing by role, drafting from a resolved
ticket, linking ("solved with KB-12") and the solved counts for the metrics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from lib import kb, tickets
from lib.db import read_session, transaction
from lib.directory import DeviceInput, RequesterInput
from lib.errors import PermissionDenied, StaleTicket, ValidationError
from lib.models import Category, KbArticle, KbArticleVersion, Ticket, TicketEvent
from lib.tickets import TicketDraft
from lib.workflow import ActionKind, EventKind, KbStatus

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def draft(**kw) -> kb.ArticleDraft:
    base = dict(title="Printer jams on tray 2", symptoms="Paper jams from tray 2", cause="Worn roller",
                resolution_steps="1. Replace the **pickup roller**", tags="Printer, paper jam, printer")
    base.update(kw)
    return kb.ArticleDraft(**base)  # type: ignore[arg-type]


def test_refs() -> None:
    assert kb.kb_ref(12) == "KB-12"
    assert [kb.parse_kb_ref(x) for x in ("KB-12", "kb12", " 12 ", "kb #7", "HD-1", "", "KB-0")] == \
        [12, 12, 12, 7, None, None, None]


def test_versions_publishing_and_roles(engine, staff) -> None:
    with transaction(engine) as s:
        a = kb.create_article(s, actor=staff.tech, draft=draft(), now=T0)
        aid = a.id
        assert (a.status, a.version, a.tags) == (KbStatus.DRAFT.value, 1, "printer, paper jam")
    # a technician edits a draft; publishing needs a senior or a lead (read from the database)
    with transaction(engine) as s:
        kb.update_article(s, actor=staff.tech2, article_id=aid, expected_version=1, draft=draft(cause="Worn rollers"),
                          note="typo", now=T0 + timedelta(minutes=1))
    with pytest.raises(PermissionDenied), transaction(engine) as s:
        kb.publish(s, actor=staff.tech, article_id=aid, expected_version=2, now=T0)
    with transaction(engine) as s:
        a = kb.publish(s, actor=staff.senior, article_id=aid, expected_version=2, now=T0 + timedelta(minutes=2))
        assert (a.status, a.version, a.published_by_id) == (KbStatus.PUBLISHED.value, 3, staff.senior)
    # published: technicians no longer edit it; a senior does, as a new version
    with pytest.raises(PermissionDenied), transaction(engine) as s:
        kb.update_article(s, actor=staff.tech, article_id=aid, expected_version=3, draft=draft(title="x"), now=T0)
    with transaction(engine) as s:
        kb.update_article(s, actor=staff.lead, article_id=aid, expected_version=3,
                          draft=draft(resolution_steps="1. Replace the roller\n2. Test"), now=T0 + timedelta(minutes=3))
    # an edit from an older version is refused with who saved in between
    with pytest.raises(StaleTicket, match="KB-.*Lena Lead saved version 4"), transaction(engine) as s:
        kb.update_article(s, actor=staff.senior, article_id=aid, expected_version=3, draft=draft(title="Mine"), now=T0)
    # saving the same text makes no new version
    with transaction(engine) as s:
        assert kb.update_article(s, actor=staff.lead, article_id=aid, expected_version=4,
                                 draft=draft(resolution_steps="1. Replace the roller\n2. Test"), now=T0).version == 4
    with read_session(engine) as s:
        history = kb.versions(s, aid)
        assert [(v.version, v.status) for v in history] == [(4, "published"), (3, "published"), (2, "draft"),
                                                             (1, "draft")]
        assert history[0].editor.name == "Lena Lead" and history[2].note == "typo"
        assert history[3].cause == "Worn roller" and history[2].cause == "Worn rollers"
        assert s.get(KbArticle, aid).resolution_steps.endswith("2. Test")
    with transaction(engine) as s:
        a = kb.unpublish(s, actor=staff.senior, article_id=aid, expected_version=4, reason="Outdated model",
                         now=T0 + timedelta(minutes=4))
        assert a.status == KbStatus.DRAFT.value
    with read_session(engine) as s:
        assert kb.versions(s, aid)[0].note == "unpublished: Outdated model"


@pytest.mark.parametrize(("changes", "field"), [
    ({"title": "  "}, "title"),
    ({"title": "x" * 201}, "title"),
    ({"symptoms": "", "resolution_steps": ""}, "resolution_steps"),
    ({"category_id": 9999}, "category"),
    ({"category_id": "2"}, "category"),
    ({"tags": "a" * 41}, "tags"),
    ({"tags": ",".join(f"t{i}" for i in range(25))}, "tags"),
    ({"cause": "bad\x00"}, "cause"),
])
def test_article_validation(engine, staff, changes, field) -> None:
    with pytest.raises(ValidationError) as err, transaction(engine) as s:
        kb.create_article(s, actor=staff.tech, draft=draft(**changes), now=T0)
    assert field in err.value.fields


def _resolved_ticket(engine, staff) -> int:
    with transaction(engine) as s:
        t = tickets.create_ticket(s, actor=staff.tech, now=T0, draft=TicketDraft(
            summary="Label printer prints blank labels", category="Printing", priority="Low", channel="phone",
            description="Every label comes out blank since Monday.",
            requester=RequesterInput(name="Ann Smith", email="ann@example.com"),
            device=DeviceInput(asset_tag="PRN-0042", device_type="Printer", make_model="Zebra ZD420")))
        tid = t.id
        tickets.take(s, actor=staff.tech, ticket_id=tid, now=T0)
        tickets.log_action(s, actor=staff.tech, ticket_id=tid, kind=ActionKind.DIAGNOSIS, text="Head dirty", now=T0)
    with transaction(engine) as s:
        v = s.get(Ticket, tid).version
        tickets.provide_workaround(s, actor=staff.tech, ticket_id=tid, text="Use the printer in room 2", now=T0)
        tickets.resolve(s, actor=staff.tech, ticket_id=tid, expected_version=v, resolution_notes="Cleaned the head",
                        root_cause="Dust on the thermal head", now=T0)
    return tid


def test_draft_from_a_resolved_ticket(engine, staff) -> None:
    with transaction(engine) as s:
        open_id = tickets.create_ticket(s, actor=staff.tech, now=T0, draft=TicketDraft(
            summary="Something", category="Printing", priority="Low", channel="phone",
            requester=RequesterInput(name="Ann Smith", email="ann@example.com"))).id
    with pytest.raises(ValidationError, match="not resolved"), transaction(engine) as s:
        kb.draft_from_ticket(s, actor=staff.tech, ticket_id=open_id, now=T0)
    tid = _resolved_ticket(engine, staff)
    with transaction(engine) as s:
        a = kb.draft_from_ticket(s, actor=staff.tech2, ticket_id=tid, now=T0)
        aid = a.id
        assert a.title == "Label printer prints blank labels" and a.status == KbStatus.DRAFT.value
        assert "Every label comes out blank" in a.symptoms and "Zebra ZD420" in a.symptoms
        assert a.cause == "Dust on the thermal head"
        assert "Cleaned the head" in a.resolution_steps and "Use the printer in room 2" in a.resolution_steps
        assert a.tags == "printer, zebra zd420" and a.source_ticket_id == tid and a.author_id == staff.tech2
        printing = s.scalar(select(Category.id).where(Category.name == "Printing"))
        assert a.category_id == printing
    with transaction(engine) as s:  # asking again returns the same draft
        assert kb.draft_from_ticket(s, actor=staff.tech, ticket_id=tid, now=T0).id == aid
    with read_session(engine) as s:
        events = s.scalars(select(TicketEvent).where(TicketEvent.ticket_id == tid,
                                                     TicketEvent.kind == EventKind.KB_DRAFTED.value)).all()
        assert len(events) == 1 and f"KB-{aid}" in events[0].body
        assert [(x.ref, x.solved) for x in kb.articles_for_ticket(s, tid)] == [(f"KB-{aid}", False)]
        assert s.scalar(select(KbArticleVersion.version).where(KbArticleVersion.article_id == aid)) == 1


def test_link_solved_and_counts(engine, staff) -> None:
    with transaction(engine) as s:
        a1 = kb.create_article(s, actor=staff.tech, draft=draft(), now=T0)
        a2 = kb.create_article(s, actor=staff.tech, draft=draft(title="VPN drops"), now=T0)
        ids = [tickets.create_ticket(s, actor=staff.tech, now=T0, draft=TicketDraft(
            summary=f"Jam {i}", category="Printing", priority="Low", channel="phone",
            requester=RequesterInput(name="Ann Smith", email="ann@example.com"))).id for i in range(4)]
    with transaction(engine) as s:
        kb.link_article(s, actor=staff.tech, article_id=a1.id, ticket_id=ids[0], solved=True, now=T0)
        kb.link_article(s, actor=staff.tech2, article_id=a1.id, ticket_id=ids[1], solved=True, now=T0)
        kb.link_article(s, actor=staff.tech, article_id=a2.id, ticket_id=ids[1], now=T0)  # linked, not solved
        kb.link_article(s, actor=staff.tech, article_id=a2.id, ticket_id=ids[2], solved=True,
                        now=T0 + timedelta(days=10))  # outside the window below
        kb.link_article(s, actor=staff.tech, article_id=a2.id, ticket_id=ids[3], now=T0)
    with transaction(engine) as s:  # linking again: no duplicate; "solved" upgrades a plain link
        kb.link_article(s, actor=staff.tech, article_id=a1.id, ticket_id=ids[0], solved=True, now=T0)
        kb.link_article(s, actor=staff.tech, article_id=a2.id, ticket_id=ids[3], solved=True, now=T0)
    with pytest.raises(ValidationError), transaction(engine) as s:
        kb.link_article(s, actor=staff.tech, article_id=999, ticket_id=ids[0], now=T0)
    with read_session(engine) as s:
        counts = kb.kb_solved_counts(s, T0 - timedelta(days=1), T0 + timedelta(days=1))
        assert [(c.ref, c.count) for c in counts] == [(f"KB-{a1.id}", 2), (f"KB-{a2.id}", 1)]
        assert [(c.ref, c.count) for c in kb.kb_solved_counts(s, T0, T0 + timedelta(days=30))][1] == \
            (f"KB-{a2.id}", 2)
        linked = s.scalars(select(TicketEvent).where(TicketEvent.kind == EventKind.KB_LINKED.value)
                           .order_by(TicketEvent.id)).all()
        assert len(linked) == 6 and linked[0].body.startswith(f"Solved with KB-{a1.id}")
        assert [t.ticket_id for t in kb.linked_tickets(s, a1.id)] == [ids[0], ids[1]] or \
            sorted(t.ticket_id for t in kb.linked_tickets(s, a1.id)) == [ids[0], ids[1]]
        rows = kb.list_articles(s)
        assert {r.id: r.solved_count for r in rows} == {a1.id: 2, a2.id: 2}
        assert kb.category_counts(s) == [] and kb.category_counts(s, include_drafts=True)[0][1:] == \
            ("Uncategorised", 2)
