"""AppTest: the knowledge base with no article says what it is and how to add the first one, for each role."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from lib import kb
from lib.db import transaction
from tests.app.conftest import page_test

pytestmark = pytest.mark.filterwarnings("ignore")


def texts(at: AppTest) -> str:
    return "\n".join(str(x.value) for x in [*at.markdown, *at.caption, *at.info])


def open_kb(who: str) -> AppTest:
    at = page_test("kb.py", who)
    at.run()
    assert not at.exception, at.exception
    return at


@pytest.mark.parametrize("who", ["tech", "senior", "lead"])
def test_an_empty_knowledge_base_explains_itself(app_env, staff_app, who: str) -> None:
    at = open_kb(who)
    text = texts(at)
    assert "No articles yet" in text
    assert "symptoms" in text and "resolution steps" in text
    assert "📝 Create KB article" in text  # from a resolved ticket
    assert "➕ New article" in text
    if who == "tech":
        assert "a **senior technician or a team lead publishes** them" in text
    else:
        assert "you draft **and publish**" in text and "🚀 Publish" in text


def test_the_first_article_button_opens_the_form_and_the_hint_goes_once_there_is_one(app_env, staff_app) -> None:
    at = open_kb("tech")
    at.button(key="kb_empty_new").click().run()
    assert not at.exception, at.exception
    assert at.segmented_control(key="kb_section").value == "➕ New article"
    assert at.text_input(key="kb_new_title") is not None  # the article form is shown
    with transaction(app_env) as s:
        kb.create_article(s, actor=staff_app.tech, draft=kb.ArticleDraft(
            title="VPN drops every hour", symptoms="The VPN disconnects.", cause="Idle timeout.",
            resolution_steps="Raise the timeout.", category_id=None, tags=""))
    at = open_kb("tech")
    assert "No articles yet" not in texts(at)
    assert "To look through every article, use **🗂️ Browse**." in texts(at)
