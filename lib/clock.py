"""The one clock: every "now" the product reads comes from :func:`now`.

Services take ``now=`` and fall back to this clock; pages, the worker and the CLI read it too. Tests pin
it with the ``clock`` fixture (tests/conftest.py), so no test result depends on today's date: the unit
and data tests pass with the process clock moved years ahead (``.ci/run`` runs them under faketime).
Pure standard library, no streamlit import.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

Source = Callable[[], datetime]


def system_now() -> datetime:
    """The machine's wall clock, timezone-aware UTC."""
    return datetime.now(UTC)


_source: Source = system_now


def now() -> datetime:
    """The current instant, timezone-aware UTC."""
    return _source()


def utc(moment: datetime | None = None) -> datetime:
    """``moment`` in UTC, or now when None; a naive time is refused (ValueError)."""
    if moment is None:
        return now()
    if moment.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return moment.astimezone(UTC)


def minute() -> int:
    """Whole minutes since the epoch: a cheap key for caches that may be a minute old."""
    return int(now().timestamp() // 60)


def set_source(source: Source) -> Source:
    """Read the time from ``source`` from now on; returns the previous source (to restore it)."""
    global _source
    previous, _source = _source, source
    return previous


@contextmanager
def using(source: Source) -> Iterator[None]:
    """Within the block, the time comes from ``source``."""
    previous = set_source(source)
    try:
        yield
    finally:
        set_source(previous)


def desk_time(moment: datetime | None, fmt: str = "%a %d %b %Y %H:%M") -> str:
    """``moment`` as the desk reads it: in the desk's time zone (``HELPDESK_TIMEZONE``), as every time the app
    shows live (stored event texts keep UTC, which stays true when the desk's zone changes)."""
    from zoneinfo import ZoneInfo

    from lib.config import get_settings  # here, not at the top: the clock stays free of the settings' imports

    if moment is None:
        return "—"
    return moment.astimezone(ZoneInfo(get_settings().timezone)).strftime(fmt)
