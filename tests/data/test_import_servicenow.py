"""Importing the real ServiceNow incident log (../shared/testdata), checked against pandas over the raw CSV,
on SQLite and PostgreSQL; and the refusals and appends of the ServiceNow layout on small files."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lib.db import read_session
from lib.importer import import_csv
from lib.importer_servicenow import STATES
from lib.models import Category, Requester, Ticket, TicketEvent, User
from tests.conftest import testdata_dir as shared_testdata

LOG = "servicenow_incident_event_log.csv"


def raw_log() -> pd.DataFrame:
    df = pd.read_csv(shared_testdata() / LOG, dtype=str, keep_default_na=False)
    df["row"] = range(2, len(df) + 2)  # spreadsheet row numbers: the header is row 1
    df["mod"] = df["sys_mod_count"].astype(int)
    df["at"] = pd.to_datetime(df["sys_updated_at"], format="%d-%m-%Y %H:%M", utc=True)
    df["opened"] = pd.to_datetime(df["opened_at"], format="%d-%m-%Y %H:%M", utc=True)
    return df


def expected(df: pd.DataFrame) -> dict[str, dict]:
    """What the import must produce per incident, computed from the raw rows in time order
    (sys_updated_at, then sys_mod_count, then file order)."""
    out = {}
    for number, g in df.sort_values(["at", "mod", "row"]).groupby("number", sort=False):
        prev, reopens, resolved, closed = "New", 0, None, None
        for state, at in zip(g["incident_state"], g["at"], strict=True):
            if state != prev:
                if prev in ("Resolved", "Closed") and state not in ("Resolved", "Closed"):
                    reopens, resolved, closed = reopens + 1, None, None
                elif state == "Resolved" and prev != "Closed":
                    resolved = at
                elif state == "Closed":
                    closed = at
            prev = state
        latest = g.sort_values(["mod", "at", "row"]).iloc[-1]  # the README's rule: highest sys_mod_count
        out[number] = {"status": STATES[latest["incident_state"]].value, "reopens": reopens,
                       "column_reopens": int(latest["reopen_count"]), "resolved": resolved, "closed": closed,
                       "created": min(latest["opened"], g["at"].min()), "rows": len(g)}
    return out


def ts(value) -> datetime | None:  # type: ignore[no-untyped-def]
    return None if value is None else value.to_pydatetime().astimezone(UTC)


def test_import_the_real_servicenow_log(engine):
    df = raw_log()
    want = expected(df)
    report = import_csv(engine, shared_testdata() / LOG)
    assert report.layout == "servicenow" and report.refused == []
    assert (report.created, report.rows) == (df["number"].nunique(), len(df)) == (890, 5998)
    with Session(engine) as s:  # objects stay readable after the block
        got = {t.external_ref: t for t in s.scalars(select(Ticket).where(Ticket.external_source == "servicenow")).unique()}
        events = defaultdict(list)
        for ev in s.scalars(select(TicketEvent).order_by(TicketEvent.occurred_at, TicketEvent.id)).unique():
            events[ev.ticket_id].append(ev)
        users = list(s.scalars(select(User)))
        categories = set(s.scalars(select(Category.name)))
        callers = {r.name: r for r in s.scalars(select(Requester))}
    assert set(got) == set(want)
    assert Counter(t.status for t in got.values()) == Counter(w["status"] for w in want.values())
    assert Counter(t.priority for t in got.values()) == Counter(
        {"1 - Critical": 4, "2 - High": 3, "3 - Moderate": 2, "4 - Low": 1}[p]
        for p in df.sort_values(["at", "mod", "row"]).groupby("number").tail(1)["priority"])
    for number, w in want.items():
        t = got[number]
        assert t.reopen_count == w["reopens"], number
        assert t.resolved_at == ts(w["resolved"]), number
        assert t.closed_at == ts(w["closed"]), number
        assert t.created_at == ts(w["created"]), number
        assert (t.closure_reason == "confirmed") == (t.status == "closed"), number
        evs = events[t.id]
        assert len({e.meta["row_hash"] for e in evs if "row_hash" in (e.meta or {})}) == w["rows"], number
        assert sum(e.kind == "reopened" for e in evs) == t.reopen_count, number
        assert [e.to_status for e in evs if e.to_status][-1] == t.status, number
        assert t.sla_policy is None and t.requester_id is not None
    # the data's own reopen_count agrees except where its rows contradict each other (docs/cli.md)
    disagree = {n for n, w in want.items() if w["reopens"] != w["column_reopens"]}
    assert disagree == {"INC0000137"}
    # every state, priority, category, resolver and caller of the log is there
    resolvers = set(df.loc[df["assigned_to"] != "?", "assigned_to"])
    placeholders = {u.name for u in users if u.username.startswith("servicenow-")}
    assert placeholders == resolvers and not any(u.active for u in users if u.name in resolvers)
    assert set(df.loc[df["category"] != "?", "category"]) <= categories
    assert set(df["caller_id"]) - {"?"} <= set(callers)
    assert all(callers[c].email is None for c in set(df["caller_id"]) - {"?"})

    # one incident's timeline, exactly
    t = got["INC0000045"]
    timeline = [(e.kind, e.from_status, e.to_status, e.occurred_at.strftime("%d-%m-%Y %H:%M"), e.actor_label)
                for e in events[t.id]]
    assert timeline == [
        ("created", None, "new", "29-02-2016 01:16", "Opened by 8"),
        ("internal_note", None, None, "29-02-2016 01:23", "Updated by 21"),
        ("resolved", "new", "resolved", "29-02-2016 08:53", "Updated by 642"),
        ("internal_note", None, None, "29-02-2016 11:29", "Updated by 804"),
        ("closed", "resolved", "closed", "05-03-2016 12:00", "Updated by 908"),
    ]
    assert (t.acknowledged_at, t.channel, t.priority) == (datetime(2016, 2, 29, 8, 53, tzinfo=UTC), "phone", 2)
    # a reopened one: INC0000102 (Resolved on 14-03, Active again on 17-03)
    t = got["INC0000102"]
    kinds = [(e.kind, e.occurred_at.strftime("%d-%m %H:%M")) for e in events[t.id] if e.to_status]
    assert kinds[-4:] == [("resolved", "14-03 08:13"), ("reopened", "17-03 16:27"), ("resolved", "17-03 16:28"),
                          ("closed", "24-03 18:59")]
    assert (t.reopen_count, t.resolved_at) == (1, datetime(2016, 3, 17, 16, 28, tzinfo=UTC))

    # running it again changes nothing
    with read_session(engine) as s:
        before = (s.scalar(select(func.count()).select_from(Ticket)), s.scalar(select(func.count()).select_from(TicketEvent)),
                  s.scalar(select(func.count()).select_from(User)), s.scalar(select(func.count()).select_from(Requester)))
    again = import_csv(engine, shared_testdata() / LOG)
    assert (again.created, again.updated, again.unchanged, again.refused) == (0, 0, 890, [])
    with read_session(engine) as s:
        after = (s.scalar(select(func.count()).select_from(Ticket)), s.scalar(select(func.count()).select_from(TicketEvent)),
                 s.scalar(select(func.count()).select_from(User)), s.scalar(select(func.count()).select_from(Requester)))
    assert after == before


def _small_log(tmp_path: Path, numbers: list[str], *, rows: int | None = None, edit=None) -> Path:  # type: ignore[no-untyped-def]
    df = pd.read_csv(shared_testdata() / LOG, dtype=str, keep_default_na=False)
    df = df[df["number"].isin(numbers)]
    if rows is not None:
        df = df.groupby("number").head(rows)
    if edit is not None:
        df = edit(df.copy())
    path = tmp_path / f"log_{len(df)}.csv"
    df.to_csv(path, index=False)
    return path


def test_a_bad_row_refuses_its_whole_incident(engine, tmp_path):
    def edit(df: pd.DataFrame) -> pd.DataFrame:
        df.loc[df["number"] == "INC0000102", "category"] = "Category 9999"
        first = df.index[df["number"] == "INC0000102"][3]
        df.loc[first, "incident_state"] = "Pending"
        df.loc[first, "sys_updated_at"] = "31-02-2016 25:00"
        df.loc[df.index[df["number"] == "INC0000102"][5], "assigned_to"] = "Resolver 99999"
        return df

    path = _small_log(tmp_path, ["INC0000045", "INC0000102"], edit=edit)
    report = import_csv(engine, path, layout="servicenow")
    assert report.created == 1 and len(report.refused) == 1
    refused = report.refused[0]
    assert refused.startswith("INC0000102: row 9: incident_state 'Pending' is not one of New, Active")
    assert "row 9: sys_updated_at '31-02-2016 25:00' is not a time" in refused and "none of its 19 rows" in refused
    with read_session(engine) as s:
        assert s.scalar(select(Ticket).where(Ticket.external_ref == "INC0000102")) is None
        assert s.scalar(select(Category).where(Category.name == "Category 9999")) is None
        assert s.scalar(select(User).where(User.name == "Resolver 99999")) is None


def test_later_rows_of_an_incident_are_appended(engine, tmp_path):
    partial = _small_log(tmp_path, ["INC0000102"], rows=8)
    assert import_csv(engine, partial).created == 1
    with read_session(engine) as s:
        t = s.scalar(select(Ticket).where(Ticket.external_ref == "INC0000102"))
        assert t.is_open and t.status == "in_progress" and t.resolved_at is None
        n_before = s.scalar(select(func.count()).select_from(TicketEvent).where(TicketEvent.ticket_id == t.id))
    full = _small_log(tmp_path, ["INC0000102"])
    report = import_csv(engine, full)
    assert (report.updated, report.unchanged) == (1, 0)
    with read_session(engine) as s:
        t = s.scalar(select(Ticket).where(Ticket.external_ref == "INC0000102"))
        assert (t.status, t.reopen_count, t.closure_reason) == ("closed", 1, "confirmed")
        hashes = [e.meta.get("row_hash") for e in s.scalars(select(TicketEvent).where(TicketEvent.ticket_id == t.id))]
        assert len(hashes) > n_before and len({h for h in hashes if h}) == 19
    assert import_csv(engine, full).unchanged == 1
    assert "differ from the ones imported before" in import_csv(engine, partial).refused[0]


@pytest.mark.parametrize("header, message", [
    ("number,incident_state,sys_mod_count,sys_updated_at\n", "missing ServiceNow column(s): opened_at, priority"),
])
def test_servicenow_header_is_checked(sqlite_engine, tmp_path, header, message):
    from lib.errors import ValidationError

    path = tmp_path / "x.csv"
    path.write_text(header)
    with pytest.raises(ValidationError) as exc:
        import_csv(sqlite_engine, path)
    assert message in str(exc.value)
