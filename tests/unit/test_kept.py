"""lib.ui.kept: the ticket page's kept reads, keyed per database and on plain arguments."""

from __future__ import annotations

import pytest

from lib.ui import core, kept


class _Engine:
    def __init__(self, url: str) -> None:
        self.url = url


@pytest.fixture
def database(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    current = {"engine": _Engine("sqlite:///one.sqlite3")}
    monkeypatch.setattr(core, "get_engine", lambda: current["engine"])
    yield current
    kept.clear()


def test_a_value_is_read_once_per_key_and_database_and_the_underscored_argument_is_not_keyed(database) -> None:
    calls: list[tuple] = []

    @kept.kept(ttl=60, max_entries=10)
    def read(ticket_id: int, marker: tuple, _hint: int) -> list:
        calls.append((ticket_id, marker, _hint))
        return [ticket_id, marker]

    assert read(1, (3, 4), 7) == [1, (3, 4)]
    assert read(1, (3, 4), 8) is read(1, (3, 4), 9)  # kept: the same object; _hint is no part of the key
    assert len(calls) == 1
    read(1, (3, 5), 7)  # the ticket changed
    read(2, (3, 4), 7)
    assert len(calls) == 3
    database["engine"] = _Engine("sqlite:///two.sqlite3")  # another database with the same ids and markers
    read(1, (3, 4), 7)
    assert len(calls) == 4


def test_values_expire_the_oldest_go_first_and_a_failed_read_is_not_kept(database, monkeypatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(kept.time, "monotonic", lambda: now[0])
    calls: list[int] = []

    @kept.kept(ttl=60, max_entries=2)
    def read(n: int) -> int:
        calls.append(n)
        if n < 0:
            raise ValueError("the database went away")
        return n * 10

    read(1), read(2), read(1)
    assert calls == [1, 2]
    read(3)  # 2 was used least recently: it goes
    read(1), read(2)
    assert calls == [1, 2, 3, 2]
    now[0] += 61
    read(2)
    assert calls == [1, 2, 3, 2, 2]
    with pytest.raises(ValueError):
        read(-1)
    with pytest.raises(ValueError):
        read(-1)
    assert calls[-2:] == [-1, -1]
    kept.clear()
    read(2)
    assert calls[-1] == 2
