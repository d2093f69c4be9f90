"""The page timer: runs over `slow_page_ms` are logged with their page and time, in a form the bench reads."""

from __future__ import annotations

import logging
import time

import pytest
from streamlit.runtime.scriptrunner_utils.exceptions import RerunException

from lib import page_timer


@pytest.fixture
def lines(caplog: pytest.LogCaptureFixture):  # type: ignore[no-untyped-def]
    page_timer.log.addHandler(caplog.handler)
    caplog.set_level(logging.INFO, logger="helpdesk.pages")
    yield caplog
    page_timer.log.removeHandler(caplog.handler)


def test_a_run_over_the_threshold_is_logged_with_its_page_and_ms(lines) -> None:  # type: ignore[no-untyped-def]
    with page_timer.timed(threshold_ms=0) as run:
        run.page = "ticket"
    (record,) = lines.records
    page, ms = page_timer.parse(record.getMessage())
    assert page == "ticket" and 0 <= ms < 1000
    assert page_timer.queries(record.getMessage()) == 0


def test_the_line_carries_the_run_s_cpu_time_and_the_process_s() -> None:
    line = "2026-12-04 09:00:00,000 helpdesk.pages page run: ticket 38.2 ms, 21 queries, 30.5 ms cpu, 36.0 ms process cpu"
    assert page_timer.parse(line) == ("ticket", 38.2)
    assert page_timer.queries(line) == 21
    assert page_timer.cpu(line) == (30.5, 36.0)
    assert page_timer.cpu("page run: ticket 38.2 ms, 21 queries") is None  # a line of an older server


def test_a_busy_run_s_cpu_time_is_counted(lines) -> None:  # type: ignore[no-untyped-def]
    with page_timer.timed(threshold_ms=0) as run:
        run.page = "metrics"
        deadline = time.thread_time() + 0.02
        while time.thread_time() < deadline:  # 20 ms of this thread's own CPU, however busy the machine is
            pass
    own, process = page_timer.cpu(lines.records[0].getMessage())
    assert 20 <= own <= process


def test_a_run_under_the_threshold_is_not_logged(lines) -> None:  # type: ignore[no-untyped-def]
    with page_timer.timed(threshold_ms=60_000) as run:
        run.page = "queue"
    assert lines.records == []


def test_a_run_ended_by_a_rerun_is_logged_marked_and_the_rerun_goes_on(lines) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RerunException):
        with page_timer.timed(threshold_ms=0) as run:
            run.page = "intake"
            raise RerunException(None)
    message = lines.records[0].getMessage()
    assert "intake" in message and "ended by RerunException" in message
    assert page_timer.parse(message)[0] == "intake"


def test_the_threshold_comes_from_the_setting(lines, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from lib.config import get_settings

    monkeypatch.setenv("HELPDESK_SLOW_PAGE_MS", "0")
    get_settings.cache_clear()
    try:
        with page_timer.timed() as run:
            run.page = "board"
    finally:
        monkeypatch.delenv("HELPDESK_SLOW_PAGE_MS")
        get_settings.cache_clear()
    assert page_timer.parse(lines.records[0].getMessage())[0] == "board"


def test_other_lines_are_not_read_as_runs() -> None:
    assert page_timer.parse("2026-12-03 10:00:00 helpdesk.worker cycle done") is None
    assert page_timer.parse("page run: ticket fast ms") is None


def test_the_line_carries_the_statements_the_run_sent(lines) -> None:  # type: ignore[no-untyped-def]
    with page_timer.timed(threshold_ms=0) as run:
        run.page, run.queries = "ticket", 17
    message = lines.records[0].getMessage()
    assert page_timer.parse(message)[0] == "ticket"
    assert page_timer.queries(message) == 17
    assert page_timer.queries("2026-12-03 10:00:00 helpdesk.worker cycle done") is None
