"""A new desk in a real browser: setup → lead → technician → intake → queue → ticket in a new tab → closed."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.e2e.conftest import PASSWORD, choose, login, open_from_grid, pick, shot, wait_idle


def _fill(page, label: str, value: str) -> None:  # type: ignore[no-untyped-def]
    page.get_by_role("textbox", name=label, exact=True).fill(value)


def test_first_run_to_closed_ticket(page, context, app_server) -> None:  # type: ignore[no-untyped-def]
    base = app_server.url
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.goto(base + "/")
    wait_idle(page)
    page.get_by_text("There are no accounts yet").wait_for()
    shot(page, "01_setup")
    _fill(page, "Username", "lena")
    _fill(page, "Full name", "Lena Lead")
    _fill(page, "E-mail", "lena@example.com")
    _fill(page, "Password", PASSWORD)
    _fill(page, "Repeat password", PASSWORD)
    page.get_by_role("button", name="Create lead account").click()
    wait_idle(page)
    page.get_by_role("button", name="Log in").wait_for()
    shot(page, "02_login")

    login(page, base, "lena")
    page.get_by_role("heading", name="Queue").wait_for()
    shot(page, "03_queue_empty")

    # The lead adds a technician.
    page.goto(base + "/admin")
    wait_idle(page)
    # The form by its key; a run still settling can briefly show a stale copy of it, so wait for one.
    form = page.get_by_test_id("stForm").filter(
        has=page.get_by_role("button", name="Create account", exact=True))
    expect(form).to_have_count(1)
    if not form.is_visible():
        page.get_by_text("Add a person").click()
    form.get_by_role("textbox", name="Username", exact=True).fill("tom")
    form.get_by_role("textbox", name="Full name", exact=True).fill("Tom Tech")
    form.get_by_role("textbox", name="E-mail", exact=True).fill("tom@example.com")
    form.get_by_role("textbox", name="Initial password (tell them to change it)").fill(PASSWORD)
    form.get_by_role("button", name="Create account").click()
    wait_idle(page)
    page.get_by_test_id("stDataFrame").first.wait_for()
    shot(page, "04_admin")

    # Intake a walk-in ticket for a new contact.
    page.goto(base + "/intake")
    wait_idle(page)
    page.get_by_text("Walk-in").click()
    wait_idle(page)
    page.get_by_text("New contact").click()
    wait_idle(page)
    _fill(page, "Name", "Ann Smith")
    _fill(page, "E-mail", "ann@example.com")
    page.get_by_role("textbox", name="Summary").fill("Printer on floor 2 jams on every page")
    page.get_by_role("textbox", name="Description").fill("Paper jam light stays on after clearing the tray.")
    page.get_by_role("textbox", name="Description").press("Tab")
    wait_idle(page)
    choose(page, "Category", "Printing")
    wait_idle(page)
    shot(page, "05_intake_filled")
    page.get_by_role("button", name="Create ticket").click()
    wait_idle(page)
    page.get_by_text(re.compile(r"Ticket HD-\d+ created")).wait_for()
    shot(page, "06_intake_done")

    # The queue shows it; its link opens the ticket in a new tab.
    page.goto(base + "/")
    wait_idle(page)
    page.get_by_text("All open").click()
    wait_idle(page)
    grid = page.get_by_test_id("stDataFrame")
    grid.wait_for()
    shot(page, "07_queue")
    tab = open_from_grid(page, context, "HD-000001")
    tab.set_viewport_size({"width": 1400, "height": 1000})
    wait_idle(tab)
    tab.get_by_role("heading", name="HD-000001").wait_for()
    assert tab.get_by_role("button", name="Log in").count() == 0

    # Work it through to closure.
    tab.get_by_role("button", name="Take this ticket").click()
    wait_idle(tab)
    tab.get_by_role("button", name="Acknowledge").click()
    wait_idle(tab)
    pick(tab, "Action")
    tab.get_by_role("textbox", name="What you did and found").fill("Worn pickup roller on tray 2.")
    tab.get_by_role("button", name="Add to timeline").click()
    wait_idle(tab)
    tab.get_by_text("Worn pickup roller on tray 2.").first.wait_for()
    tab.get_by_role("button", name="✅ Resolve").click()  # the primary next step opens its form
    wait_idle(tab)
    tab.get_by_role("textbox", name="Resolution notes (what fixed it; sent to the requester)").fill("Replaced the roller.")
    tab.get_by_role("textbox", name="Root cause", exact=True).fill("Worn pickup roller")
    tab.get_by_role("button", name="Resolve", exact=True).click()
    wait_idle(tab)
    tab.get_by_role("button", name="📨 Ask the user to confirm the fix").click()
    wait_idle(tab)
    tab.get_by_role("button", name="🙆 Record confirmation").click()
    wait_idle(tab)
    tab.get_by_role("button", name="Record confirmation", exact=True).click()
    wait_idle(tab)
    shot(tab, "08_ticket_confirmed")
    tab.get_by_role("button", name="🔒 Close").click()
    wait_idle(tab)
    tab.get_by_role("button", name="Close ticket").click()
    wait_idle(tab)
    tab.get_by_text("Closed", exact=True).first.wait_for()
    shot(tab, "09_ticket_closed")
    assert tab.get_by_text("Confirmed by Ann Smith").count() >= 1
    tab.goto(base + "/account")
    wait_idle(tab)
    tab.get_by_role("heading", name="My account").wait_for()
    shot(tab, "10_account")
