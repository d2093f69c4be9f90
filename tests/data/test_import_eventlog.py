"""Event-log import (one row per change of a case): a generated log in the BPI 2013 shape, with reopenings,
waits, owner changes and times written with offsets, imported with the default mapping on SQLite and
PostgreSQL; reopen counts, resolution times and the backlog per week checked against a plain pandas
computation on the raw rows; the mapping's own refusals; command-line overrides."""

from __future__ import annotations

import csv
import random
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select

from lib.db import read_session
from lib.errors import ValidationError
from lib.metrics.measures import MetricFilter, backlog, durations, flow
from lib.models import Category, Ticket, TicketEvent, User
from lib.transfer.importer import import_csv
from lib.transfer.importer_eventlog import apply_overrides, parse_mapping

HEADER = ["SR Number", "Change Date+Time", "Status", "Sub Status", "Involved ST", "Impact", "Product", "Country"]
OURS = {  # the default mapping, written out again: the reference must not read the product's tables
    ("Queued", "Awaiting Assignment"): "new", ("Accepted", "Assigned"): "assigned",
    ("Accepted", "In Progress"): "in_progress", ("Accepted", "Wait - User"): "waiting_user",
    ("Accepted", "Wait - Vendor"): "waiting_vendor", ("Completed", "Resolved"): "resolved",
    ("Completed", "Closed"): "closed", ("Completed", "Cancelled"): "closed"}
OPEN = {"new", "assigned", "in_progress", "waiting_user", "waiting_vendor"}
START = datetime(2012, 1, 2, 8, 0, tzinfo=UTC)  # a Monday
ZONES = [timezone(timedelta(hours=1)), timezone(timedelta(hours=2)), timezone(timedelta(hours=-5)), UTC]


def generate(path: Path, cases: int = 240, seed: int = 13) -> Path:
    """A log of ``cases`` cases over about 20 weeks; rows in time order across cases, as such logs are."""
    rng = random.Random(seed)
    rows = []
    for c in range(cases):
        at = START + timedelta(hours=rng.uniform(0, 20 * 7 * 24))
        case = f"1-{364285768 + c * 7}"
        owner = rng.choice(["Siebel", "Frederic", "Anne Claire", "Krzysztof", "Pedro"])
        impact, product = rng.choice(["Low", "Medium", "High", "Major"]), f"PROD{rng.randint(1, 12)}"
        country = rng.choice(["fr", "se", "nl", "in"])
        steps = [("Queued", "Awaiting Assignment"), ("Accepted", "Assigned"), ("Accepted", "In Progress")]
        for _ in range(rng.choice([0, 0, 1, 2])):
            steps += [rng.choice([("Accepted", "Wait - User"), ("Accepted", "Wait - Vendor")]),
                      ("Accepted", "In Progress")]
        ending = rng.random()
        if ending < 0.15:
            pass  # still open
        elif ending < 0.25:
            steps.append(("Completed", "Cancelled"))
        else:
            steps.append(("Completed", "Resolved"))
            for _ in range(rng.choice([0, 0, 0, 1, 2])):  # reopened, worked, resolved again
                steps += [("Accepted", "In Progress"), ("Completed", "Resolved")]
            if rng.random() < 0.7:
                steps.append(("Completed", "Closed"))
        for k, (status, sub) in enumerate(steps):
            if k and rng.random() < 0.25:  # an owner change
                owner = rng.choice(["Siebel", "Frederic", "Anne Claire", "Krzysztof", "Pedro"])
            if rng.random() < 0.1:
                country = rng.choice(["fr", "se", "nl", "in"])  # a change no mapped column sees
            rows.append((at, case, status, sub, owner, impact, product, country))
            at += timedelta(minutes=rng.choice([1, 5, 30, 90, 600, 2880, 10080]))
    rows.sort(key=lambda r: r[0])
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(HEADER)
        for at, case, status, sub, owner, impact, product, country in rows:
            zone = ZONES[hash(case) % len(ZONES)]
            w.writerow([case, at.astimezone(zone).isoformat(), status, sub, owner, impact, product, country])
    return path


def reference(path: Path) -> pd.DataFrame:
    """Per case, from the raw rows with pandas: created, resolved (the last resolution, cleared by a later
    reopening), reopenings, and the mapped status after every row (for the backlog)."""
    df = pd.read_csv(path, dtype=str)
    df["at"] = pd.to_datetime(df["Change Date+Time"], utc=True, format="ISO8601")
    df["row"] = range(len(df))
    df["ours"] = [OURS[(s, u)] for s, u in zip(df["Status"], df["Sub Status"], strict=True)]
    df = df.sort_values(["at", "row"])
    df["prev"] = df.groupby("SR Number")["ours"].shift(fill_value="new")
    df["reopen"] = df["prev"].isin(["resolved", "closed"]) & df["ours"].isin(OPEN)
    df["resolves"] = (df["ours"] == "resolved") & df["prev"].isin(OPEN)
    return df


def per_case(df: pd.DataFrame) -> pd.DataFrame:
    g = df.groupby("SR Number")
    out = pd.DataFrame({"created": g["at"].min(), "reopens": g["reopen"].sum(), "status": g["ours"].last()})
    last_res = df[df["resolves"]].groupby("SR Number")["at"].max()
    last_reopen = df[df["reopen"]].groupby("SR Number")["at"].max()
    out["resolved"] = last_res
    cleared = out.index.isin(last_reopen.index) & ~(out["resolved"] > last_reopen.reindex(out.index))
    out.loc[cleared, "resolved"] = pd.NaT
    return out


def weekly_backlog(df: pd.DataFrame, ends: list[datetime]) -> list[int]:
    return [int(df[df["at"] < end].groupby("SR Number")["ours"].last().isin(OPEN).sum()) for end in ends]


def test_generated_event_log_equals_pandas(engine, tmp_path):
    path = generate(tmp_path / "bpi_like.csv")
    df = reference(path)
    want = per_case(df)
    assert want["reopens"].sum() > 20 and (want["status"] == "waiting_user").sum() + df["ours"].eq("waiting_user").sum()

    report = import_csv(engine, path, layout="eventlog")
    assert report.refused == [], report.refused[:3]
    assert (report.created, report.rows) == (len(want), len(df))
    with read_session(engine) as s:
        got = {t.external_ref: t for t in s.scalars(select(Ticket).where(Ticket.external_source == "eventlog"))}
        assert set(got) == set(want.index)
        for case, w in want.iterrows():
            t = got[case]
            assert t.reopen_count == w["reopens"], case
            assert t.status == w["status"], case
            assert t.created_at == w["created"].to_pydatetime(), case
            want_res = None if pd.isna(w["resolved"]) else w["resolved"].to_pydatetime()
            assert t.resolved_at == want_res, case
        # owners became inactive placeholder technicians; products became categories
        placeholders = {u.name: u for u in s.scalars(select(User).where(User.username.like("eventlog-%")))}
        assert set(placeholders) == set(df["Involved ST"]) and not any(u.active for u in placeholders.values())
        assert set(df["Product"]) <= set(s.scalars(select(Category.name)))
        # cancellations are closures of another kind, not resolved work
        cancelled = df[df["Sub Status"] == "Cancelled"]["SR Number"]
        assert {got[c].closure_reason for c in cancelled} == {"cancelled"}
        # every owner change is an assignment event at the row's own time
        assigned = s.scalar(select(func.count()).select_from(TicketEvent).where(TicketEvent.kind == "assigned"))
        changes = int(df.groupby("SR Number")["Involved ST"].transform(lambda o: o.ne(o.shift())).sum())
        assert assigned == changes

        # the metrics, per week, against pandas
        f = MetricFilter(start=date(2012, 1, 2), end=date(2012, 6, 4), tz="UTC")
        ends = [datetime(2012, 1, 2, tzinfo=UTC) + timedelta(weeks=k + 1) for k in range(22)]
        assert backlog(s, f)["backlog_end"].tolist() == weekly_backlog(df, ends)
        fl = flow(s, f).groupby("period")[["reopened", "resolved"]].sum()
        starts = [e - timedelta(weeks=1) for e in ends]
        assert fl["reopened"].tolist() == [int(df[df["reopen"] & (df["at"] >= a) & (df["at"] < b)].shape[0])
                                           for a, b in zip(starts, ends, strict=True)]
        res = want.dropna(subset=["resolved"])
        assert fl["resolved"].tolist() == [int(((res["resolved"] >= a) & (res["resolved"] < b)).sum())
                                           for a, b in zip(starts, ends, strict=True)]
        hours = ((res["resolved"] - res["created"]).dt.total_seconds() / 3600).to_numpy()
        got_res = durations(s, f)["resolution"]
        assert got_res["n"] == len(hours)
        assert got_res["median_h"] == pytest.approx(float(np.median(hours)), abs=1e-6)
        assert got_res["p90_h"] == pytest.approx(float(np.percentile(hours, 90)), abs=1e-6)

    # the same log again: nothing changes; a longer copy appends only the new rows
    again = import_csv(engine, path, layout="eventlog")
    assert (again.created, again.updated, again.unchanged, again.refused) == (0, 0, len(want), [])


def test_a_longer_copy_appends(engine, tmp_path):
    full = generate(tmp_path / "full.csv", cases=30, seed=5)
    lines = full.read_text(encoding="utf-8").splitlines(keepends=True)
    part = tmp_path / "part.csv"
    part.write_text("".join(lines[: len(lines) * 2 // 3]), encoding="utf-8")
    first = import_csv(engine, part, layout="eventlog")
    assert first.refused == []
    second = import_csv(engine, full, layout="eventlog")
    assert second.refused == [] and second.updated > 0 and second.created == 30 - first.created
    want = per_case(reference(full))
    with read_session(engine) as s:
        got = {t.external_ref: t for t in s.scalars(select(Ticket))}
        assert {c: got[c].reopen_count for c in want.index} == want["reopens"].to_dict()
        assert {c: got[c].status for c in want.index} == want["status"].to_dict()


def test_unmapped_states_and_bad_times_are_refused_per_case(sqlite_engine, tmp_path):
    path = tmp_path / "log.csv"
    path.write_text(
        "SR Number,Change Date+Time,Status,Sub Status,Involved ST,Impact,Product\n"
        "A-1,2012-03-01T09:00:00+01:00,Queued,Awaiting Assignment,Siebel,Low,PROD1\n"
        "A-1,2012-03-01T10:00:00+01:00,Parked,Frozen,Siebel,Low,PROD1\n"
        "B-2,01/03/2012 09:00,Queued,Awaiting Assignment,Siebel,Low,PROD1\n"
        "C-3,2012-03-01T09:00:00+01:00,Queued,Awaiting Assignment,Siebel,Enormous,PROD1\n"
        "D-4,2012-03-01T09:00:00+01:00,Accepted,In Progress,,,\n", encoding="utf-8")
    report = import_csv(sqlite_engine, path, layout="eventlog")
    assert report.created == 1  # D-4: no owner, default priority, category "Other"
    refused = "\n".join(report.refused)
    assert "row 3: status 'Parked/Frozen' is not in the mapping's [status]" in refused
    assert "(none of its 2 rows imported)" in refused
    assert "row 4: Change Date+Time '01/03/2012 09:00' is not an ISO 8601 time" in refused
    assert "row 5: priority 'Enormous' is not in the mapping's [priority]" in refused
    with read_session(sqlite_engine) as s:
        t = s.scalars(select(Ticket)).one()
        assert (t.external_ref, t.priority, t.assignee_id, t.status) == ("D-4", 2, None, "in_progress")
        assert t.category.name == "Other" and t.summary == "D-4: Other"


def test_mapping_from_toml_and_overrides(sqlite_engine, tmp_path):
    path = tmp_path / "log.csv"
    path.write_text(
        "case;when;state;who;area;title\n"
        "7;05/03/2012 14:00;open;ann;Printers;Toner low\n"
        "7;05/03/2012 16:30;done;ann;Printers;Toner low\n"
        "7;06/03/2012 08:00;open;ben;Printers;Toner low\n", encoding="utf-8")
    mapping = """
[file]
source = "legacy"
delimiter = ";"
[columns]
case = "case"
time = "when"
status = "state"
owner = "who"
category = "area"
[time]
format = "%d/%m/%Y %H:%M"
timezone = "Europe/Amsterdam"
[status]
open = "in_progress"
[category]
mode = "map"
unmapped = "Hardware"
[category.map]
Printers = "Printing"
"""
    refused = import_csv(sqlite_engine, path, layout="eventlog", mapping_toml=mapping).refused
    assert len(refused) == 1 and "row 3: status 'done' is not in the mapping's [status] (it maps 'open')" in refused[0]
    data = apply_overrides(mapping, ["summary=title"], ["done=resolved"])
    report = import_csv(sqlite_engine, path, layout="eventlog", mapping_toml=data)
    assert report.refused == [] and report.created == 1
    with read_session(sqlite_engine) as s:
        t = s.scalars(select(Ticket)).one()
        assert (t.external_source, t.summary, t.category.name, t.reopen_count) == ("legacy", "Toner low", "Printing", 1)
        assert t.created_at == datetime(2012, 3, 5, 13, 0, tzinfo=UTC)  # 14:00 in Amsterdam
        assert t.assignee.name == "ben" and not t.assignee.active


def test_bad_mappings_say_what_is_wrong():
    with pytest.raises(ValidationError) as err:
        parse_mapping('[columns]\ncase = "id"\n[status]\nopen = "working"\n[category]\nmode = "guess"\n'
                      '[time]\ntimezone = "Mars/Base"\n')
    text = str(err.value.fields["mapping"])
    for part in ("columns.time is required", "columns.status is required", "'working' is not one of",
                 "category.mode 'guess'", "'Mars/Base' is not a time zone"):
        assert part in text
    with pytest.raises(ValidationError, match="not valid TOML"):
        parse_mapping("[columns\n")
    with pytest.raises(ValidationError, match="only closed takes a reason"):
        parse_mapping('[columns]\ncase="a"\ntime="b"\nstatus="c"\n[status]\nx = "resolved:cancelled"\n')
    with pytest.raises(ValidationError, match="is not NAME=VALUE"):
        apply_overrides(None, ["case"], [])


def test_cli_imports_an_event_log_with_a_mapping_file_and_overrides(engine, tmp_path, capsys):
    from lib.cli import main

    url = engine.url.render_as_string(hide_password=False)
    assert main(["show-mapping"]) == 0
    default = capsys.readouterr().out
    assert parse_mapping(default).columns["case"] == "SR Number"
    log = tmp_path / "log.csv"
    log.write_text("Incident,At,State,Owner\n"
                   "X1,2013-05-02T10:00:00+02:00,Working,Ann\n"
                   "X1,2013-05-02T12:00:00+02:00,Done,Ann\n", encoding="utf-8")
    mapping = tmp_path / "mine.toml"
    mapping.write_text(default.replace('case = "SR Number"', 'case = "Incident"')
                       .replace('time = "Change Date+Time"', 'time = "At"'), encoding="utf-8")
    args = ["--database-url", url, "import-csv", str(log), "--layout", "eventlog", "--mapping", str(mapping)]
    assert main(args) == 1  # the file has no Status column (the mapping's) yet
    assert "the mapping names column(s) the file does not have: status ('Status')" in capsys.readouterr().err
    overrides = ["--column", "status=State", "--column", "sub_status=", "--column", "owner=Owner",
                 "--column", "priority=", "--column", "category=", "--status", "Working=in_progress",
                 "--status", "Done=resolved"]
    assert main(args + overrides + ["--quiet"]) == 0
    assert "1 tickets created" in capsys.readouterr().out
    with read_session(engine) as s:
        t = s.scalars(select(Ticket).where(Ticket.external_ref == "X1")).one()
        assert (t.status, t.resolved_at) == ("resolved", datetime(2013, 5, 2, 10, 0, tzinfo=UTC))
    assert main(["--database-url", url, "import-csv", str(log), "--mapping", str(mapping)]) == 1
    assert "read by --layout eventlog only" in capsys.readouterr().err
