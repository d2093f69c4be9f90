"""``import-csv PATH``: tickets from a CSV file, in the generic layout or as a ServiceNow incident log.

* The layout is recognised from the header (``--layout auto``) or named.
* Each ticket (generic: a row; ServiceNow: all rows of one incident) is written in its own SAVEPOINT:
  a refused one leaves nothing behind, and the report says which row and why
  (``row 17: priority 'urgent' is not one of Low, Medium, High, Critical``). Rows are numbered as in a
  spreadsheet: the header is row 1.
* Tickets are found again by their external reference (source + id): running the same file again
  changes nothing and reports them as unchanged.
* Imported history sends no mail and carries no SLA policy (docs/cli.md says why).
The layouts themselves are in :mod:`lib.transfer.importer_generic` and :mod:`lib.transfer.importer_servicenow`;
what they share is in :mod:`lib.transfer.import_rows`.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session

from lib.db import transaction
from lib.errors import HelpdeskError, ValidationError
from lib.transfer import importer_generic, importer_servicenow
from lib.transfer.import_rows import Item, Layout, Refused

Progress = Callable[[int, int | None], None] | None
LAYOUTS = ("auto", "generic", "servicenow")
LAYOUTS_BY_NAME: dict[str, Layout] = {"generic": importer_generic.LAYOUT, "servicenow": importer_servicenow.LAYOUT}
MAX_FILE_BYTES = 2 * 1024**3


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
    chosen_layout = LAYOUTS_BY_NAME[chosen]
    chosen_layout.check_header(header)
    report = ImportReport(layout=chosen)
    items = chosen_layout.items(path)
    run(engine, items, chosen_layout.handle, report, progress=progress, total=chosen_layout.count_rows(path),
        batch=chosen_layout.batch)
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


