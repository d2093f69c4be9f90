"""Formula-safe exports on SQLite and PostgreSQL: requester names and summaries that arrive by e-mail and
look like spreadsheet formulas reach every CSV, XLSX and HTML export as text (a leading ``'``), never as a
formula; numbers, negative ones included, stay numbers.

Exports checked: ``export-csv`` and ``export-events`` (through lib.cli.main), the weekly report as CSV,
XLSX and HTML (through ``report`` in lib.cli.main, lib.metrics.weekly_report.write_report and the Weekly report page's
download, lib.ui.metrics_view.report_file).
"""

from __future__ import annotations

import csv
import math
import re
import zipfile
from datetime import UTC, datetime
from decimal import Decimal
from email.headerregistry import Address
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from lib import tickets
from lib.cli import main
from lib.db import read_session, transaction
from lib.directory import RequesterInput
from lib.mail.inbound import ingest_message
from lib.mail.settings import InboundDefaults
from lib.metrics import weekly_report
from lib.models import Ticket
from lib.tickets import TicketDraft
from lib.transfer.safe_cells import FORMULA_STARTS, neutralise, neutralise_frame, neutralise_row

HOSTILE = ('=HYPERLINK("http://evil.example","x")', "+1+2", "-2+3", "@SUM(A1)", "\t=1", "\r=1")
SEPARATOR = "Printer;=1+1 on floor 3"  # a ';' that would open a new cell in a spreadsheet splitting on ';'
WEEK = "2026-W47"  # Mon 16 - Sun 22 November 2026 (GMT)
MAILED = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)  # the week before: the report's previous week
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def url_of(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def mail(*, name: str, address: str, subject: str, n: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = Address(display_name=name, addr_spec=address)
    msg["To"] = "helpdesk@desk.example"
    msg["Subject"] = subject
    msg["Message-ID"] = f"<hostile-{n}@outside.example>"
    msg.set_content("Please have a look.")
    return msg.as_bytes()


def looks_like_formula(value: object) -> bool:
    return isinstance(value, str) and value[:1] in FORMULA_STARTS


@pytest.fixture
def hostile(engine: Engine, staff) -> dict[int, str]:  # type: ignore[no-untyped-def]
    """Two mails from each hostile sender, the first with the name as its subject, the second with a subject
    holding a ';': twelve open tickets, a repeat issue per sender. The tab and carriage-return values are set
    in the rows afterwards (intake collapses leading
    whitespace, but a row that came by import or from an older version can still hold one). One plain
    ticket in the report's week, so the week's change in tickets created is negative.
    Returns ticket id -> the hostile text its requester name and summary hold."""
    defaults = InboundDefaults(own_addresses=("helpdesk@desk.example",))
    made: dict[int, str] = {}
    n = 0
    for repeat in range(2):
        for i, value in enumerate(HOSTILE):
            n += 1
            raw = mail(name=value.strip(), address=f"sender{i}@outside.example",
                       subject=value.strip() if repeat == 0 else SEPARATOR, n=n)
            with transaction(engine) as s:
                result = ingest_message(s, raw, now=MAILED.replace(minute=n), defaults=defaults)
            assert result.kind == "ticket", result
            made[result.ticket_id] = value
    with transaction(engine) as s:
        for tid, value in made.items():
            ticket = s.get(Ticket, tid)
            if value != value.strip():
                s.execute(text("UPDATE requesters SET name = :v WHERE id = :r"), {"v": value, "r": ticket.requester_id})
                s.execute(text("UPDATE tickets SET summary = :v WHERE id = :t AND summary <> :sep"),
                          {"v": value, "t": tid, "sep": SEPARATOR})
        tickets.create_ticket(s, actor=staff.tech, now=datetime(2026, 11, 17, 9, 0, tzinfo=UTC), draft=TicketDraft(
            summary="Laptop will not start", category="Hardware", priority="Medium", channel="phone",
            requester=RequesterInput(name="Ann Smith", email="ann@example.com")))
    with read_session(engine) as s:
        stored = dict(s.execute(text("SELECT t.id, r.name FROM tickets t JOIN requesters r ON r.id = t.requester_id "
                                     "WHERE t.id IN (" + ",".join(map(str, made)) + ")")).all())
    assert stored == made
    return made


# --- the rule -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_text_gets_a_leading_quote(value: str) -> None:
    assert neutralise(value) == "'" + value


@pytest.mark.parametrize("value", ["Printer jammed", "", " =1", "'=1", "HD-000042", "2026-11-17T09:00:00Z",
                                   "a=b", "x-1", "Ann <ann@example.com>"])
def test_other_text_is_unchanged(value: str) -> None:
    assert neutralise(value) == value


@pytest.mark.parametrize("value", [-2, -2.5, 0, 7, Decimal("-3.25"), np.int64(-4), np.float64(-1.5), True, None])
def test_numbers_and_missing_values_are_unchanged(value: object) -> None:
    out = neutralise(value)
    assert out is value


def test_nan_stays_a_number() -> None:
    out = neutralise(float("nan"))
    assert isinstance(out, float) and math.isnan(out)


def test_rows_and_frames() -> None:
    assert neutralise_row(["=1", -2, "ok", None, "\r=1"]) == ["'=1", -2, "ok", None, "'\r=1"]
    df = pd.DataFrame({"=name": ["@SUM(A1)", "Ann", None], "change": [-2, 3, 0], "ratio": [-0.5, float("nan"), 1.0],
                       "mixed": ["+1", -7, 2.5]})
    out = neutralise_frame(df)
    assert list(out.columns) == ["'=name", "change", "ratio", "mixed"]
    assert out["'=name"].iloc[:2].tolist() == ["'@SUM(A1)", "Ann"] and pd.isna(out["'=name"].iloc[2])
    assert out["change"].dtype == df["change"].dtype and out["change"].tolist() == [-2, 3, 0]
    assert out["ratio"].dtype == df["ratio"].dtype and out["ratio"].iloc[0] == -0.5
    assert out["mixed"].tolist() == ["'+1", -7, 2.5]
    assert df["=name"].iloc[0] == "@SUM(A1)"  # the caller's frame is left alone


# --- CSV exports ----------------------------------------------------------------------------------------


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _no_formula_cells(path: Path) -> None:
    """Every text cell is quoted and none starts like a formula; a bare cell must be a number (the reader
    fails on any other)."""
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.reader(fh, quoting=csv.QUOTE_NONNUMERIC):
            assert not [c for c in row if looks_like_formula(c)], row


def test_export_csv_writes_hostile_text_as_text(engine, hostile, tmp_path, capsys):
    out = tmp_path / "tickets.csv"
    assert main(["--database-url", url_of(engine), "export-csv", str(out), "--quiet"]) == 0
    assert "exported 13 tickets" in capsys.readouterr().out
    _no_formula_cells(out)
    rows = {int(r["id"]): r for r in _rows(out)}
    for tid, value in hostile.items():
        assert rows[tid]["requester"] == "'" + value
        assert rows[tid]["summary"] in ("'" + value, SEPARATOR)
    raw = out.read_text(encoding="utf-8")
    assert f'"{SEPARATOR}"' in raw  # every text cell is quoted: a ';' stays inside its cell
    first = raw.splitlines()[1].split(",")
    assert first[1] == str(min(hostile))  # numbers are written bare
    assert '"\'=HYPERLINK(""http://evil.example"",""x"")"' in raw


def test_export_events_writes_hostile_senders_as_text(engine, hostile, tmp_path):
    out = tmp_path / "events.csv"
    assert main(["--database-url", url_of(engine), "export-events", str(out), "--quiet"]) == 0
    _no_formula_cells(out)
    actors = {r["actor"] for r in _rows(out)}
    assert "'=HYPERLINK(\"http://evil.example\",\"x\") <sender0@outside.example> (e-mail)" in actors
    assert "'-2+3 <sender2@outside.example> (e-mail)" in actors


# --- the weekly report ----------------------------------------------------------------------------------


def _check_xlsx(path: Path, hostile: dict[int, str]) -> None:
    with zipfile.ZipFile(path) as z:
        for name in z.namelist():
            if name.startswith("xl/worksheets/"):
                assert not re.search(rb"<(\w+:)?f[ >/]", z.read(name)), name  # no formula element anywhere
    book = openpyxl.load_workbook(path)
    for sheet in book.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (sheet.title, cell.coordinate, cell.value)
                assert not looks_like_formula(cell.value), (sheet.title, cell.coordinate, cell.value)
    summaries = {"'" + v.replace("\r", "\n") for v in hostile.values()}  # XML reads a bare CR back as LF
    oldest = book["Oldest open"]
    header = [c.value for c in oldest[1]]
    shown = {r[header.index("summary")] for r in oldest.iter_rows(min_row=2, values_only=True)}
    assert shown & summaries and shown <= summaries | {SEPARATOR}
    keys = {r[1] for r in book["Repeat issues"].iter_rows(min_row=2, values_only=True)}
    assert "'=HYPERLINK(\"http://evil.example\",\"x\") <sender0@outside.example>" in keys
    assert "'@SUM(A1) <sender3@outside.example>" in keys
    head = book["Headline"]
    cols = [c.value for c in head[1]]
    created = next(r for r in head.iter_rows(min_row=2) if r[0].value == "created")
    change = created[cols.index("change_vs_previous")]
    assert change.value == 1 - len(hostile) and change.data_type == "n"  # a negative number stays a number


def _check_csv(path: Path, hostile: dict[int, str]) -> None:
    _no_formula_cells(path)
    df = pd.read_csv(path)
    created = df.set_index("measure").loc["created"]
    assert created["change_vs_previous"] == 1 - len(hostile)
    assert pd.api.types.is_numeric_dtype(df["change_vs_previous"])
    line = next(x for x in path.read_text(encoding="utf-8").splitlines() if x.startswith('"created"'))
    assert line.endswith(f",{1 - len(hostile)}")  # bare: a whole number, not the text "'-11"


class _Cells(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.cells: list[str] = []
        self._open: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:  # type: ignore[type-arg]
        if tag in ("td", "th"):
            self._open = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._open is not None:
            self.cells.append("".join(self._open))
            self._open = None

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._open.append(data)


def _check_html(page: str, hostile: dict[int, str]) -> None:
    parser = _Cells()
    parser.feed(page)
    assert parser.cells
    assert not [c for c in parser.cells if looks_like_formula(c)]
    assert "'" + HOSTILE[0] in parser.cells
    assert "'" + HOSTILE[0] + " <sender0@outside.example>" in parser.cells


def test_weekly_report_files(engine, hostile, tmp_path):
    with read_session(engine) as s:
        paths = {fmt: weekly_report.write_report(s, WEEK, fmt, tmp_path / f"week.{fmt}", now=NOW)
                 for fmt in ("csv", "xlsx", "html")}
    _check_xlsx(paths["xlsx"], hostile)
    _check_csv(paths["csv"], hostile)
    _check_html(paths["html"].read_text(encoding="utf-8"), hostile)


def test_weekly_report_from_the_cli(engine, hostile, tmp_path, clock):
    clock.set(NOW)
    for fmt in ("csv", "xlsx", "html"):
        out = tmp_path / f"cli.{fmt}"
        assert main(["--database-url", url_of(engine), "report", "--week", WEEK, "--format", fmt,
                     "--out", str(out)]) == 0
    _check_xlsx(tmp_path / "cli.xlsx", hostile)
    _check_csv(tmp_path / "cli.csv", hostile)
    _check_html((tmp_path / "cli.html").read_text(encoding="utf-8"), hostile)


def test_weekly_report_downloads(engine, hostile, tmp_path, clock, monkeypatch):
    from lib.ui import core
    from lib.ui import metrics_view as mv

    clock.set(NOW)
    monkeypatch.setattr(core, "get_engine", lambda: engine)
    for fmt in ("csv", "xlsx", "html"):
        (tmp_path / f"dl.{fmt}").write_bytes(mv.report_file(WEEK, fmt))
    _check_xlsx(tmp_path / "dl.xlsx", hostile)
    _check_csv(tmp_path / "dl.csv", hostile)
    _check_html((tmp_path / "dl.html").read_text(encoding="utf-8"), hostile)

