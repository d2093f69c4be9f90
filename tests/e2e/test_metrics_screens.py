"""The Metrics and Weekly report pages in a real browser, in the light and the dark theme.

Screenshots (test-artifacts/screenshots/6x_*.png) are for looking at: the chart rules (fixed priority
colours, titled axes, legible text in both themes, a clear empty state) are checked by eye there and
by the unit tests in tests/unit/test_charts.py.
"""

from __future__ import annotations

import re
from datetime import date

import pytest

from tests.e2e.conftest import PASSWORD, full_shot, login, seed_accounts, settle, shot, wait_idle

CHARTS = '[data-testid="hdPlotlyChart"]'  # lib.ui.plotly_chart


@pytest.fixture(scope="module")
def seeded(app_server):  # type: ignore[no-untyped-def]
    engine = seed_accounts(app_server.db)
    from lib.seed.demo import seed_demo

    seed_demo(engine, tickets=2000, years=1, seed=23, demo_password=PASSWORD)
    engine.dispose()
    return app_server


@pytest.fixture(scope="module")
def servers(seeded):  # type: ignore[no-untyped-def]
    """One server for both schemes: .streamlit/config.toml has a [theme.light] and a [theme.dark] table and no
    fixed base, so the browser's colour scheme (each context's ``color_scheme``) picks the theme."""
    return {"light": seeded, "dark": seeded}


def open_page(browser, servers, path: str, scheme: str):  # type: ignore[no-untyped-def]
    server = servers[scheme]
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000}, color_scheme=scheme)
    page = ctx.new_page()
    login(page, server.url, "lena", path=path)
    return ctx, page


def wait_charts(page, n: int) -> None:  # type: ignore[no-untyped-def]
    page.wait_for_function(f"document.querySelectorAll('{CHARTS} .main-svg').length >= {n}", timeout=30_000)
    wait_idle(page)
    settle(page)  # plotly lays out after its element appears


def background(page) -> str:  # type: ignore[no-untyped-def]
    return page.evaluate("getComputedStyle(document.querySelector('[data-testid=\"stApp\"]')).backgroundColor")


def title_colour(page) -> str:  # type: ignore[no-untyped-def]
    return page.evaluate(f"getComputedStyle(document.querySelector('{CHARTS} .gtitle')).fill")


def _luma(css: str) -> float:
    r, g, b = (float(v) for v in css[css.index("(") + 1:css.index(")")].split(",")[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_metrics_page(browser, servers, scheme: str) -> None:  # type: ignore[no-untyped-def]
    ctx, page = open_page(browser, servers, "/metrics", scheme)
    page.get_by_role("heading", name="Metrics").wait_for()
    wait_charts(page, 2)
    # The page opens on its first section: its two charts, no more (the other sections are drawn when opened).
    assert page.locator(CHARTS).count() == 2
    # The charts drew with plotly.js's cartesian bundle (lib.ui.plotly_chart), fetched once for the page, and
    # Streamlit's own Plotly chart code (4.7 MB) was never fetched.
    resources = "performance.getEntriesByType('resource').filter(e => e.name.includes(%r)).length"
    assert page.evaluate(resources % "/charts/plotly-cartesian.") == 1
    assert page.evaluate(resources % "PlotlyChart.") == 0
    # The chart text follows the theme: dark text on the light page, light text on the dark one.
    bg, fg = _luma(background(page)), _luma(title_colour(page))
    assert (bg > 128) == (scheme == "light") and abs(bg - fg) > 100, (scheme, background(page), title_colour(page))
    full_shot(page, f"60_metrics_{scheme}")

    # Click a bar of "Created per week, by priority": a link opens exactly those tickets in the queue.
    # The tallest bar of the first series (a click selects that series' bar of the week): which bars are empty
    # depends on the seeded data around today's date.
    chart = page.locator(CHARTS).first
    bars = chart.locator(".trace.bars").first.locator(".point path")
    tallest = bars.evaluate_all("ps => ps.map(p => p.getBBox().height).reduce((best, h, i, hs) => h > hs[best] ? i : best, 0)")
    bars.nth(tallest).click(force=True)
    wait_idle(page)
    link = page.get_by_role("link", name="Open these").first
    link.wait_for(timeout=15_000)
    href = link.get_attribute("href") or ""
    assert href.startswith("/?view=All+tickets") and "created_from=" in href and "priority=" in href
    assert href.count("priority=") == 1, href  # the clicked bar's priority only, not every bar of its week
    counted = int(re.search(r"Open these ([\d,]+) tickets", link.inner_text()).group(1).replace(",", ""))
    shot(page, f"61_metrics_selection_{scheme}")
    if scheme == "light":
        page.goto(servers["light"].url + href)
        wait_idle(page)
        page.get_by_role("heading", name="Queue").wait_for()
        shot(page, "62_queue_from_metrics")
        # the queue shows exactly the tickets the bar counted, whatever their status now
        page.get_by_text("Only tickets created from").wait_for()
        page.get_by_text(f"{counted:,} ticket(s) · page 1").wait_for()
    ctx.close()


def chart_titles(page) -> list[str]:  # type: ignore[no-untyped-def]
    return page.evaluate(f"[...document.querySelectorAll('{CHARTS} .gtitle')].map(t => t.textContent)")


def test_metrics_sections(browser, servers) -> None:  # type: ignore[no-untyped-def]
    """Each section's tab draws its charts; the open section is in the address, so a reload or a shared link
    opens it again."""
    ctx, page = open_page(browser, servers, "/metrics", "light")
    wait_charts(page, 2)
    expected = {"Backlog and closures": ["Backlog at the end of each week", "Closures by reason"],
                "Response, resolution and SLA": ["Resolution time by priority", "SLA compliance"],
                "Team": ["Workload against capacity", "Age of open tickets"]}
    for n, (section, titles) in enumerate(expected.items()):
        page.get_by_role("tab", name=section).click()
        page.wait_for_function(f"[...document.querySelectorAll('{CHARTS} .gtitle')].map(t => t.textContent)"
                               f".includes({titles[0]!r})", timeout=30_000)
        wait_charts(page, 2)
        assert sorted(chart_titles(page)) == sorted(titles), section
        assert "section=" in page.url
        shot(page, f"66_metrics_section_{n}")
    page.reload()
    wait_charts(page, 2)
    assert sorted(chart_titles(page)) == sorted(expected["Team"])
    assert page.get_by_role("tab", name="Team").get_attribute("aria-selected") == "true"
    page.get_by_role("tab", name="Repeat issues").click()
    page.get_by_text("The same requester, device or category again within 30 days").wait_for(timeout=30_000)
    wait_idle(page)
    assert page.locator(CHARTS).count() == 0
    ctx.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_metrics_page_empty_period(browser, servers, scheme: str) -> None:  # type: ignore[no-untyped-def]
    ctx, page = open_page(browser, servers, f"/metrics?from={date(2001, 1, 1)}&to={date(2001, 3, 31)}", scheme)
    page.get_by_role("heading", name="Metrics").wait_for()
    page.get_by_text("No tickets in this period").first.wait_for(timeout=15_000)
    wait_charts(page, 2)
    full_shot(page, f"63_metrics_empty_{scheme}")
    ctx.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_report_page(browser, servers, scheme: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ctx, page = open_page(browser, servers, "/report", scheme)
    page.get_by_role("heading", name="Weekly report").wait_for()
    wait_charts(page, 5)
    for label in ("CSV", "Excel (XLSX)", "HTML with charts"):
        page.get_by_role("button", name=label, exact=True).wait_for()
    full_shot(page, f"64_report_{scheme}")
    if scheme == "light":
        with page.expect_download(timeout=60_000) as dl:
            page.get_by_role("button", name="HTML with charts", exact=True).click()
        path = tmp_path / "report.html"
        dl.value.save_as(path)
        html = path.read_text(encoding="utf-8")
        assert "<html" in html.lower() and "plotly" in html.lower()
        report = ctx.new_page()
        report.set_viewport_size({"width": 1200, "height": 900})
        report.goto(path.as_uri())
        report.wait_for_function("document.querySelectorAll('.main-svg').length >= 1", timeout=30_000)
        settle(report)
        shot(report, "65_report_html_file")
    ctx.close()
