"""``import-csv PATH``: tickets from a CSV file, in the generic layout or as a ServiceNow incident log.

* The layout is recognised from the header (``--layout auto``) or named.
* Each ticket (generic: a row; ServiceNow: all rows of one incident) is written in its own SAVEPOINT:
  a refused one leaves nothing behind, and the report says which row and why
  (``row 17: priority 'urgent' is not one of Low, Medium, High, Critical``). Rows are numbered as in a
  spreadsheet: the header is row 1.
* Tickets are found again by their external reference (source + id): running the same file again
  changes nothing and reports them as unchanged.
* Imported history sends no mail and carries no SLA policy (docs/cli.md says why).
The layouts themselves are in :mod:`lib.importer_generic` and :mod:`lib.importer_servicenow`.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import TypeVar

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session

from lib.db import transaction
from lib.errors import HelpdeskError, ValidationError

Progress = Callable[[int, int | None], None] | None
LAYOUTS = ("auto", "generic", "servicenow")
MAX_FILE_BYTES = 2 * 1024**3
_V = TypeVar("_V")


@dataclass
class ImportReport:
    layout: str = ""
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    refused: list[str] = field(default_factory=list)
    rows: int = 0

    def summary(self) -> str:
        what = "incidents" if self.layout == "servicenow" else "tickets"
        return (f"{self.layout} import of {self.rows:,} rows: {self.created:,} {what} created, {self.updated:,} updated, "
                f"{self.unchanged:,} unchanged, {len(self.refused):,} refused")


class Refused(Exception):
    """A row (or a whole incident) cannot be imported; ``str()`` names the row and every problem found."""


@dataclass
class Item:
    """One unit of import: a ticket's row(s), with where they are in the file for messages."""

    where: str  # "row 17" or "rows 2-5 (INC0000045)"
    rows: list[tuple[int, dict[str, str]]]
    key: str = ""


def import_csv(engine: Engine, path: Path, *, layout: str = "auto", progress: Progress = None) -> ImportReport:
    """Import ``path``; return what was created, updated, left unchanged and refused (with reasons)."""
    path = Path(path)
    if layout not in LAYOUTS:
        raise ValidationError({"--layout": f"unknown layout {layout!r}; use one of {', '.join(LAYOUTS)}"})
    if not path.is_file():
        raise ValidationError({"path": f"{path} is not a file"})
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ValidationError({"path": f"{path} is larger than {MAX_FILE_BYTES // 1024**3} GB; split it"})
    header = read_header(path)
    chosen = detect_layout(header) if layout == "auto" else layout
    if chosen == "servicenow":
        from lib.importer_servicenow import LAYOUT
    else:
        from lib.importer_generic import LAYOUT  # type: ignore[assignment]  # same interface as the ServiceNow LAYOUT
    LAYOUT.check_header(header)
    report = ImportReport(layout=chosen)
    items = LAYOUT.items(path)
    run(engine, items, LAYOUT.handle, report, progress=progress, total=LAYOUT.count_rows(path), batch=LAYOUT.batch)
    return report


def read_header(path: Path) -> list[str]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            header = next(csv.reader(fh), None)
    except UnicodeDecodeError as exc:
        raise ValidationError({"path": f"{path.name} is not UTF-8 text ({exc.reason} at byte {exc.start})"}) from None
    if not header:
        raise ValidationError({"path": f"{path.name} is empty: expected a header row"})
    return [h.strip() for h in header]


def detect_layout(header: list[str]) -> str:
    names = {h.lower() for h in header}
    if {"number", "incident_state", "sys_mod_count", "sys_updated_at"} <= names:
        return "servicenow"
    if {"external_id", "summary"} <= names:
        return "generic"
    raise ValidationError({"--layout": "cannot tell the layout from the header: the generic layout needs "
                                       "external_id and summary columns, a ServiceNow incident log number, "
                                       "incident_state, sys_mod_count and sys_updated_at (see docs/cli.md)"})


def data_rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """``(spreadsheet row number, {column: value})`` for each data row; the header is row 1."""
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader)]
        width = len(header)
        for n, values in enumerate(reader, start=2):
            if not any(v.strip() for v in values):
                continue  # blank line
            if len(values) != width:
                yield n, {"__width__": f"has {len(values)} cells where the header has {width}"}
                continue
            yield n, dict(zip(header, values, strict=True))


def count_rows(path: Path) -> int:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        return max(0, sum(1 for _ in csv.reader(fh)) - 1)


def run(engine: Engine, items: Iterable[Item], handle: Callable[[Session, Item], str], report: ImportReport, *,
        progress: Progress, total: int | None, batch: int) -> None:
    """Write items in batches (one transaction each), each item in its own SAVEPOINT."""
    it = iter(items)
    while chunk := list(islice(it, batch)):
        with transaction(engine) as session:
            for item in chunk:
                report.rows += len(item.rows)
                try:
                    with session.begin_nested():
                        outcome = handle(session, item)
                except Refused as exc:
                    report.refused.append(str(exc))
                    continue
                except (HelpdeskError, ValueError, IntegrityError, StatementError) as exc:
                    detail = getattr(exc, "orig", None) or exc
                    report.refused.append(f"{item.where}: {detail}")
                    continue
                setattr(report, outcome, getattr(report, outcome) + 1)
        if progress:
            progress(report.rows, total)


# --- shared parsing --------------------------------------------------------------------------------


def norm(text: str) -> str:
    return " ".join(text.replace("_", " ").replace("-", " ").lower().split())


def parse_iso_time(value: str, column: str, problems: list[str], *, now: datetime) -> datetime | None:
    """ISO-8601 (``2024-03-01T09:15:00Z``, ``2024-03-01 09:15+01:00``, ``2024-03-01``); no zone = UTC."""
    text = (value or "").strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        problems.append(f"{column} {text!r} is not an ISO-8601 time (e.g. 2024-03-01T09:15:00Z)")
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    if moment > now + timedelta(days=1):
        problems.append(f"{column} {text!r} is in the future")
        return None
    if moment.year < 1970:
        problems.append(f"{column} {text!r} is before 1970")
        return None
    return moment


def one_of(value: str, column: str, choices: dict[str, _V], shown: Iterable[str], problems: list[str]) -> _V | None:
    """Look ``value`` up by its normalised form; on a miss, say what is allowed."""
    text = (value or "").strip()
    if not text:
        return None
    found = choices.get(norm(text))
    if found is None:
        problems.append(f"{column} {text!r} is not one of {', '.join(shown)}")
    return found


def refuse(where: str, problems: list[str]) -> Refused:
    return Refused(f"{where}: " + "; ".join(problems))
