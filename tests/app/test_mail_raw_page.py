"""AppTest of the raw-message page: technicians read a mail as it arrived, as inert text; others cannot."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from lib.db import transaction
from lib.mail.inbound import ingest_message
from lib.mail.settings import InboundDefaults
from lib.ui.core import SESSION_TOKEN
from lib.ui.pages import PAGES
from tests.app.conftest import APP, page_test, signed_in
from tests.app.conftest import PAGES as PAGES_DIR
from tests.mail_fixtures import NEWSLETTER

pytestmark = pytest.mark.filterwarnings("ignore")

HOSTILE = (b"From: Eve <eve@example.com>\r\nSubject: look\r\nMessage-ID: <hostile-1@example.com>\r\n"
           b"Content-Type: text/html\r\n\r\n<script>alert(1)</script><img src=x onerror=alert(2)>"
           b"<a href=\"javascript:alert(3)\">[link](javascript:alert(4))</a> invoice\xe2\x80\xaegnp.exe \xff")


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [t.value for t in at.title] + [e.value for e in at.error]
    parts += [i.value for i in at.info] + [w.value for w in at.warning] + [t.value for t in at.text]
    return "\n".join(str(p) for p in parts)


def ingest(engine, raw: bytes):
    with transaction(engine) as s:
        return ingest_message(s, raw, defaults=InboundDefaults(spam_mail="ticket"))


def test_a_raw_message_is_shown_as_inert_text_and_listed_for_its_ticket(app_env, staff_app) -> None:
    result = ingest(app_env, HOSTILE)
    ingest(app_env, NEWSLETTER)
    at = page_test("raw_mail.py", "tech", query={"id": "1"})
    at.run()
    assert not at.exception
    code = at.get("code")[0].proto.code_text
    assert "<script>alert(1)</script>" in code and "onerror=alert(2)" in code  # shown, not rendered
    assert "⟦U+202E⟧" in code and "\\xff" in code  # direction tricks revealed, undecodable bytes visible
    assert not at.get("html")  # nothing is put into the page as HTML
    assert "Message-ID: <hostile-1@example.com>" in texts(at)
    assert at.get("download_button")
    assert f"/ticket?id={result.ticket_id}" in texts(at)
    # The ticket's list links to each of its raw messages.
    at = page_test("raw_mail.py", "tech", query={"ticket": f"HD-{result.ticket_id}"})
    at.run()
    assert not at.exception and "/raw_mail?id=1" in texts(at) and "/raw_mail?id=2" not in texts(at)


def test_missing_and_bad_ids_say_so(app_env, staff_app) -> None:
    at = page_test("raw_mail.py", "tech", query={"id": "99"})
    at.run()
    assert not at.exception and "Raw message 99 does not exist" in texts(at)
    at = page_test("raw_mail.py", "tech", query={"id": "abc"})
    at.run()
    assert not at.exception and "'abc' is not a message or ticket number" in texts(at)
    at = page_test("raw_mail.py", "tech", query={"ticket": "7"})
    at.run()
    assert not at.exception and "No raw message is kept for HD-000007" in texts(at)


def test_the_page_is_for_signed_in_staff_only(app_env) -> None:
    at = AppTest.from_file(str(PAGES_DIR / "raw_mail.py"), default_timeout=30)
    at.query_params["id"] = "1"
    at.run()
    assert not at.exception and "Please log in." in [w.value for w in at.warning]
    assert not at.get("code")


def test_the_app_registers_the_page_without_a_sidebar_entry(app_env, staff_app) -> None:
    spec = next(p for p in PAGES if p.file == "raw_mail.py")
    assert spec.page().visibility == "hidden" and spec.url_path == "raw_mail"
    assert all(p.page().visibility == "visible" for p in PAGES if p is not spec)
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.session_state[SESSION_TOKEN] = signed_in("tom")
    at.run()
    assert not at.exception and "Queue" in texts(at)
    at.switch_page("pages/raw_mail.py").run()  # reached through the app's navigation, as a link would
    assert not at.exception
    assert [t.value for t in at.title] == ["✉️ Raw message"]
