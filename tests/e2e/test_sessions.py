"""Browser sessions: lockout, deep links through the login, tickets in new tabs, two people on one ticket."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from tests.e2e.conftest import PASSWORD, login, open_from_grid, pick, seed_accounts, shot, wait_idle


@pytest.fixture(scope="module")
def seeded(app_server):  # type: ignore[no-untyped-def]
    engine = seed_accounts(app_server.db)
    from lib import tickets
    from lib.db import transaction
    from lib.directory import RequesterInput
    from lib.tickets import TicketDraft
    from lib.users import get_by_username

    ids = []
    with transaction(engine) as s:
        tom = get_by_username(s, "tom")
        for i in range(3):
            t = tickets.create_ticket(s, actor=tom.id, draft=TicketDraft(
                summary=f"Laptop {i} will not boot", category="Hardware", priority="High", channel="phone",
                requester=RequesterInput(name=f"User {i}", email=f"user{i}@example.com")))
            tickets.take(s, actor=tom.id, ticket_id=t.id)
            ids.append(t.id)
    engine.dispose()
    return app_server, ids


def test_lockout_after_five_wrong_passwords(browser, seeded) -> None:  # type: ignore[no-untyped-def]
    server, _ = seeded
    ctx = browser.new_context(viewport={"width": 1300, "height": 900})
    page = ctx.new_page()
    for _ in range(5):
        login(page, server.url, "tom", "not the password")
    page.get_by_text("locked").first.wait_for()
    shot(page, "20_lockout")
    login(page, server.url, "tom", PASSWORD)  # the right password is refused while locked
    assert page.get_by_role("button", name="Log in").count() == 1
    ctx.close()
    # Unlock for the other tests (a lead's reset does the same on the Admin page).
    from lib.db import make_engine, transaction
    from lib.users import get_by_username

    engine = make_engine(f"sqlite:///{server.db}")
    with transaction(engine) as s:
        tom = get_by_username(s, "tom")
        tom.failed_logins, tom.locked_until = 0, None
    engine.dispose()


def test_deep_link_survives_login_and_new_tabs_need_no_login(browser, seeded) -> None:  # type: ignore[no-untyped-def]
    server, ids = seeded
    ctx = browser.new_context(viewport={"width": 1300, "height": 900})
    page = ctx.new_page()
    login(page, server.url, "tom", path=f"/ticket?id={ids[1]}")
    page.get_by_role("heading", name=f"HD-{ids[1]:06d}").wait_for()
    shot(page, "21_deep_link_after_login")
    # From the queue, three tickets open in their own tabs, each on its own ticket; the login form never
    # appears in them, not even for a moment (a watcher in each new page records any sight of it).
    ctx.add_init_script("""
        window.__sawLogin = false;
        new MutationObserver(() => {
            if (document.body && document.body.innerText.includes("Log in to the help desk")) window.__sawLogin = true;
        }).observe(document, {subtree: true, childList: true, characterData: true});
    """)
    page.goto(server.url + "/")
    wait_idle(page)
    for tid in ids:
        tab = open_from_grid(page, ctx, f"HD-{tid:06d}")
        tab.get_by_role("heading", name=f"HD-{tid:06d}").wait_for()
        assert tab.get_by_role("button", name="Log in").count() == 0
        assert tab.evaluate("window.__sawLogin") is False
        shot(tab, f"22_tab_{tid}")
    ctx.close()


def test_two_people_edit_one_ticket(browser, seeded) -> None:  # type: ignore[no-untyped-def]
    server, ids = seeded
    tid = ids[0]
    a = browser.new_context(viewport={"width": 1300, "height": 900}).new_page()
    b = browser.new_context(viewport={"width": 1300, "height": 900}).new_page()
    login(a, server.url, "tom", path=f"/ticket?id={tid}")
    login(b, server.url, "lena", path=f"/ticket?id={tid}")
    for p in (a, b):
        pick(p, "Details")
    a.get_by_role("textbox", name="Summary").fill("Laptop 0 will not boot after update")
    a.get_by_role("button", name="Save changes").click()
    wait_idle(a)
    b.get_by_role("textbox", name="Summary").fill("Laptop 0: no POST")
    b.get_by_role("button", name="Save changes").click()
    wait_idle(b)
    shot(b, "23_conflict_attempt")
    b.get_by_text("was changed after you loaded it").first.wait_for()
    shot(b, "23_conflict")
    pick(b, "Details")
    assert b.get_by_role("textbox", name="Summary").input_value() == "Laptop 0: no POST"  # the draft is kept
    # A note from the second person still goes through.
    pick(b, "Internal note")
    b.get_by_role("textbox", name="Note").fill("Checked BIOS settings")
    b.get_by_role("button", name="Add note").click()
    wait_idle(b)
    b.get_by_text("Checked BIOS settings").first.wait_for()


def _session_cookie(context) -> dict:  # type: ignore[no-untyped-def]
    found = [c for c in context.cookies() if c["name"] == "helpdesk_session"]
    assert len(found) == 1, context.cookies()
    return found[0]


def _shows_login(page) -> bool:  # type: ignore[no-untyped-def]
    wait_idle(page)
    page.get_by_role("button", name="Log in").wait_for()
    return page.get_by_role("heading", name="Queue").count() == 0


def test_log_out_logs_out_here_in_new_tabs_and_wherever_the_cookie_was_copied(browser, seeded) -> None:  # type: ignore[no-untyped-def]
    server, _ = seeded
    ctx = browser.new_context(viewport={"width": 1300, "height": 900})
    page = ctx.new_page()
    login(page, server.url, "tom")
    page.get_by_role("heading", name="Queue").wait_for()
    cookie = _session_cookie(ctx)
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert "helpdesk_session" not in page.evaluate("document.cookie")  # no page script can read it
    # A copy of the cookie in another browser signs in (that is what a stolen cookie would do) ...
    thief = browser.new_context(viewport={"width": 1300, "height": 900})
    thief.add_cookies([cookie])
    stolen = thief.new_page()
    stolen.goto(server.url + "/")
    wait_idle(stolen)
    stolen.get_by_role("heading", name="Queue").wait_for()
    # ... until the owner logs out.
    page.goto(server.url + "/account")
    wait_idle(page)
    page.get_by_text("Where I am signed in").wait_for()
    page.get_by_test_id("stDataFrame").first.wait_for()
    shot(page, "24_my_sessions")
    page.get_by_role("button", name="Log out", exact=True).click()
    assert _shows_login(page)
    assert not [c for c in ctx.cookies() if c["name"] == "helpdesk_session"]  # the route cleared it
    shot(page, "25_logged_out")
    page.reload()
    assert _shows_login(page)
    other_tab = ctx.new_page()
    other_tab.goto(server.url + "/ticket?id=1")
    assert _shows_login(other_tab)
    stolen.reload()
    assert _shows_login(stolen)  # the copied cookie is refused: its session ended in the database
    thief.close()
    ctx.close()


def test_a_copied_cookie_is_refused_after_a_password_reset(browser, seeded) -> None:  # type: ignore[no-untyped-def]
    server, _ = seeded
    ctx = browser.new_context(viewport={"width": 1300, "height": 900})
    page = ctx.new_page()
    login(page, server.url, "lena")
    page.get_by_role("heading", name="Queue").wait_for()
    cookie = _session_cookie(ctx)
    from lib import users
    from lib.db import make_engine, transaction

    engine = make_engine(f"sqlite:///{server.db}")
    with transaction(engine) as s:
        lena = users.get_by_username(s, "lena")
        assert lena is not None
        users.reset_password(s, actor=lena.id, user_id=lena.id, new=PASSWORD)
    engine.dispose()
    copy = browser.new_context(viewport={"width": 1300, "height": 900})
    copy.add_cookies([cookie])
    elsewhere = copy.new_page()
    elsewhere.goto(server.url + "/")
    assert _shows_login(elsewhere)
    page.reload()
    assert _shows_login(page)  # the browser it came from is signed out too
    copy.close()
    ctx.close()


def test_no_page_or_route_can_be_framed_by_another_site(seeded) -> None:  # type: ignore[no-untyped-def]
    """Every response of the app server forbids framing (the confirmation page and the login form cannot be
    overlaid by another site) and content-type guessing."""
    server, _ = seeded
    for path in ("/", "/confirm?t=x", "/ticket?id=1", "/api/health", "/auth/session?code=nothing", "/auth/logout",
                 "/_stcore/health", "/no-such-page"):
        request = urllib.request.Request(server.url + path)
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            response = opener.open(request, timeout=30)
            headers = response.headers
        except urllib.error.HTTPError as exc:  # a redirect or an error status still carries the headers
            headers = exc.headers
        assert headers["X-Frame-Options"] == "DENY", path
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"], path
        assert headers["X-Content-Type-Options"] == "nosniff", path


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None


def test_the_requester_page_has_no_staff_chrome_and_opens_for_signed_in_staff(browser, seeded) -> None:  # type: ignore[no-untyped-def]
    """A confirmation link shows the requester's page alone: no login form above it for a requester, and no
    "Page not found" for a technician who is signed in and clicks it."""
    server, _ = seeded
    ctx = browser.new_context(viewport={"width": 1300, "height": 900})
    page = ctx.new_page()
    page.goto(server.url + "/confirm?t=not-a-real-link")
    wait_idle(page)
    page.get_by_role("heading", name="Is it fixed?").wait_for()
    assert page.get_by_role("button", name="Log in").count() == 0
    assert page.get_by_test_id("stSidebar").count() == 0
    assert page.get_by_text("Page not found").count() == 0
    shot(page, "26_confirm_logged_out")
    login(page, server.url, "tom")
    page.get_by_role("heading", name="Queue").wait_for()
    page.goto(server.url + "/confirm?t=not-a-real-link")
    wait_idle(page)
    page.get_by_role("heading", name="Is it fixed?").wait_for()
    assert page.get_by_text("Page not found").count() == 0
    assert page.get_by_test_id("stSidebar").count() == 0
    ctx.close()
