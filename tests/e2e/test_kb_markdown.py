"""Hostile Markdown in a KB article stays inert in the real browser: no dialog, no script from the article,
no javascript: link, no event handler; the harmless parts still render."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import login, seed_accounts, settle, shot, wait_idle

HOSTILE_STEPS = """\
<script>window.__kbPwned = 'script'; alert('script')</script>

1. Open the [settings](javascript:alert('link')) page
2. Also [this one](JaVaScRiPt:window.__kbPwned='link2')
3. And <a href="javascript:alert('raw link')">a raw link</a>

<img src="x" onerror="window.__kbPwned='img'; alert('img')">

![picture](javascript:alert('image'))

<div onmouseover="alert('hover')" style="position:fixed;inset:0;z-index:99999">raw html block</div>

<iframe src="javascript:alert('iframe')"></iframe><svg onload="alert('svg')"></svg>

<style>body { display: none }</style>

[good link](https://example.com/ok) and **bold text** and `code`
"""


@pytest.fixture(scope="module")
def article(app_server):  # type: ignore[no-untyped-def]
    engine = seed_accounts(app_server.db)
    from lib import kb
    from lib.db import transaction
    from lib.users import get_by_username

    with transaction(engine) as s:
        tom, lena = get_by_username(s, "tom"), get_by_username(s, "lena")
        a = kb.create_article(s, actor=tom.id, draft=kb.ArticleDraft(
            title="<b onmouseover=alert('title')>Printer</b> jams <script>alert('t')</script>",
            symptoms="<img src=x onerror=alert('symptoms')> paper jams [x](javascript:alert('s'))",
            cause="<script>alert('cause')</script>", resolution_steps=HOSTILE_STEPS, tags="printer"))
        kb.publish(s, actor=lena.id, article_id=a.id, expected_version=a.version)
        aid = a.id
    engine.dispose()
    return app_server, aid


def test_hostile_markdown_is_inert_in_the_browser(browser, article) -> None:  # type: ignore[no-untyped-def]
    server, aid = article
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = ctx.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    login(page, server.url, "tom", path=f"/kb?id={aid}")
    page.get_by_text("bold text").first.wait_for(timeout=30_000)
    wait_idle(page)
    body = page.get_by_test_id("stHtml").first
    body.hover()
    page.get_by_text("raw html block").first.hover()  # shown as text, so nothing to hover into
    page.mouse.move(10, 10)
    page.mouse.move(700, 500)
    settle(page)
    shot(page, "kb_hostile_markdown")

    assert dialogs == []
    assert page.evaluate("window.__kbPwned") is None
    # nothing from the article became an element: no script, image, frame, svg, style or handler
    for selector in ("script", "img", "iframe", "svg", "style", "[onerror]", "[onmouseover]", "[onload]"):
        assert body.locator(selector).count() == 0, selector
    assert page.locator('a[href^="javascript:" i]').count() == 0
    assert page.locator("[onerror], [onmouseover]").count() == 0
    # the hostile text is visible as text; the harmless Markdown still works
    assert "<script>window.__kbPwned" in body.inner_text()
    good = body.locator("a", has_text="good link")
    assert good.get_attribute("href") == "https://example.com/ok"
    assert "noopener" in (good.get_attribute("rel") or "")
    assert body.locator("strong", has_text="bold text").count() == 1
    assert body.locator("ol li").count() == 3
    # the title and the plain-text fields show the typed markup literally
    assert page.get_by_text("<b onmouseover=alert('title')>Printer</b>", exact=False).count() >= 1
    assert page.get_by_text("<img src=x onerror=alert('symptoms')>", exact=False).count() >= 1
    # clicking where the javascript: link would be does nothing either
    page.get_by_text("settings", exact=False).first.click()
    settle(page)
    assert dialogs == [] and page.evaluate("window.__kbPwned") is None
    ctx.close()
