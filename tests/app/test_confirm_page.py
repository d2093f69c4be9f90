"""The requester's confirmation page (no login): opening records nothing; buttons confirm or reopen;
tampered, expired and used links are refused clearly."""

from __future__ import annotations

from datetime import timedelta

from streamlit.testing.v1 import AppTest

from lib import confirm_links, tickets
from lib.db import transaction
from lib.queries import timeline
from lib.workflow import Status
from tests.app.conftest import PAGES
from tests.conftest import awaiting_confirmation


def _resolved_ticket(engine, staff) -> int:  # type: ignore[no-untyped-def]
    return awaiting_confirmation(engine, staff)


def _token(engine, tid: int, **kw) -> str:  # type: ignore[no-untyped-def]
    with transaction(engine) as s:
        return confirm_links.issue(s, tickets.get_ticket(s, tid), **kw)


def _page(token: str) -> AppTest:
    at = AppTest.from_file(str(PAGES / "confirm.py"), default_timeout=30)
    at.query_params["t"] = token
    return at


def _status(engine, tid: int) -> Status:  # type: ignore[no-untyped-def]
    with transaction(engine) as s:
        return Status(tickets.get_ticket(s, tid).status)


def test_opening_records_nothing_then_yes_confirms_once(app_env, staff_app) -> None:
    tid = _resolved_ticket(app_env, staff_app)
    token = _token(app_env, tid)
    at = _page(token)
    at.run()
    assert not at.exception
    with transaction(app_env) as s:
        before = len(timeline(s, tid))
    at.run()  # a mail scanner fetching the link twice changes nothing
    with transaction(app_env) as s:
        assert len(timeline(s, tid)) == before
        assert tickets.get_ticket(s, tid).confirmed_at is None
    next(b for b in at.button if "Yes" in b.label).click().run()
    with transaction(app_env) as s:
        t = tickets.get_ticket(s, tid)
        assert t.confirmed_at is not None and t.confirmation_via == "link"
    again = _page(token)
    again.run()
    assert any("already used" in e.value for e in again.error)


def test_no_with_comment_reopens_with_public_comment(app_env, staff_app) -> None:
    tid = _resolved_ticket(app_env, staff_app)
    at = _page(_token(app_env, tid))
    at.run()
    next(b for b in at.button if "No" in b.label).click().run()
    assert any("tell us what is still not working" in e.value for e in at.error)  # nothing lost, asked for it
    at.text_area(key="confirm_comment").input("Still drops after lunch")
    next(b for b in at.button if "No" in b.label).click().run()
    assert _status(app_env, tid) in (Status.IN_PROGRESS, Status.NEW)
    with transaction(app_env) as s:
        reopened = [e for e in timeline(s, tid) if e.kind == "reopened"]
        assert reopened and reopened[-1].public and "Still drops after lunch" in (reopened[-1].body or "")


def test_tampered_and_expired_links_are_refused(app_env, staff_app) -> None:
    tid = _resolved_ticket(app_env, staff_app)
    token = _token(app_env, tid)
    tampered = token[:-2] + ("00" if not token.endswith("00") else "11")
    for bad in (tampered, "garbage", ""):
        at = _page(bad)
        at.run()
        assert any("not valid" in e.value for e in at.error)
    expired = _token(app_env, tid, ttl=timedelta(seconds=-1))
    at = _page(expired)
    at.run()
    assert any("expired" in e.value for e in at.error)
    assert _status(app_env, tid) is Status.AWAITING_CONFIRMATION


def test_the_page_names_the_ticket_in_the_configured_form(app_env, staff_app, monkeypatch) -> None:
    from lib.config import get_settings

    tid = _resolved_ticket(app_env, staff_app)
    monkeypatch.setenv("HELPDESK_TICKET_PREFIX", "IT")
    get_settings.cache_clear()
    at = _page(_token(app_env, tid))
    at.run()
    assert not at.exception
    shown = " ".join(str(e.value) for kind in ("title", "header", "subheader", "markdown", "caption")
                     for e in at.get(kind))
    assert f"IT-{tid:06d}" in shown and "HD-" not in shown
