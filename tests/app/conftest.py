"""AppTest fixtures: a migrated SQLite database per test, staff accounts, logged-in page runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from streamlit.testing.v1 import AppTest

from lib.config import get_settings
from lib.ui.core import SESSION_TOKEN
from tests.conftest import ROOT, Staff, fresh_sqlite, make_staff

APP = ROOT / "app.py"
PAGES = ROOT / "pages"
USERS = {"tech": ("tom", "Tom Tech", "technician"), "senior": ("senior", "Sam Senior", "senior"),
         "lead": ("lena", "Lena Lead", "lead"), "tech2": ("tech2", "Tara Tech", "technician")}


@pytest.fixture
def app_env(tmp_path: Path, sqlite_template: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    # As in server.py: routing is st.navigation's, never the legacy pages/ folder handling (which AppTest
    # re-enables before every run, so its reruns would execute a page file instead of app.py).
    from streamlit.runtime.pages_manager import PagesManager

    original_init = PagesManager.__init__

    def init(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        original_init(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init)
    import streamlit as st

    from lib.ui import kept

    # Each test has a database of its own whose ids and change markers start again from 1: reads cached for an
    # earlier test's database (keyed on those) must not be served here.
    st.cache_data.clear()
    kept.clear()  # keyed on the database's URL as well, so this is hygiene, not a need
    engine = fresh_sqlite(sqlite_template, tmp_path)
    monkeypatch.setenv("HELPDESK_DATABASE_URL", str(engine.url))
    monkeypatch.setenv("HELPDESK_QUEUE_REFRESH_SECONDS", "0")
    get_settings.cache_clear()
    yield engine
    st.cache_data.clear()
    kept.clear()
    get_settings.cache_clear()
    engine.dispose()


@pytest.fixture
def staff_app(app_env: Engine) -> Staff:
    staff = make_staff(app_env)
    # make_staff names the technician "tech"; the pages log in as "tom": rename for readability.
    from sqlalchemy import update

    from lib.db import transaction
    from lib.models import User

    with transaction(app_env) as s:
        s.execute(update(User).where(User.id == staff.tech).values(username="tom"))
        s.execute(update(User).where(User.id == staff.lead).values(username="lena"))
    return staff


def signed_in(username: str) -> str:
    """A session token for ``username``, as the /auth/session route would set it in the cookie."""
    from lib import sessions
    from lib.db import get_engine, transaction
    from lib.users import get_by_username

    with transaction(get_engine(get_settings().database_url)) as s:  # the engine the pages will use
        user = get_by_username(s, username)
        assert user is not None, username
        code = sessions.start(s, user_id=user.id)
        token = sessions.claim(s, code=code)
    assert token is not None
    return token


def page_test(page: str, who: str, *, query: dict[str, str] | None = None) -> AppTest:
    at = AppTest.from_file(str(PAGES / page), default_timeout=30)
    username, name, role = USERS[who]
    at.session_state[SESSION_TOKEN] = signed_in(username)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    return at
