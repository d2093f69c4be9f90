"""``import-csv PATH``: tickets from a CSV file: the generic layout, a ServiceNow incident log or an event log.

* The layout is recognised from the header (``--layout auto``) or named.
* Each ticket (generic: a row; ServiceNow and event logs: all rows of one incident or case) is written in its
  own SAVEPOINT — ServiceNow and event-log batches first without one, and again with one per ticket when a
  ticket fails while writing (:func:`run`): a refused one leaves nothing behind, and the report says which row and why
  (``row 17: priority 'urgent' is not one of Low, Medium, High, Critical``). Rows are numbered as in a
  spreadsheet: the header is row 1.
* Tickets are found again by their external reference (source + id): running the same file again
  changes nothing and reports them as unchanged.
* Imported history sends no mail and carries no SLA policy (docs/cli.md says why).
* A dry run (``dry_run=True``) goes through the same driver in one transaction that is rolled back at the end:
  the counts and refusals are the ones a run would report, and nothing is written.
* A run can be resumed: ``resume`` carries the counts of the items already committed (a checkpoint written by
  ``checkpoint`` inside each batch's transaction, see :mod:`lib.transfer.import_jobs`), and those items are
  skipped.
The layouts themselves are in :mod:`lib.transfer.importer_generic`, :mod:`lib.transfer.importer_servicenow` and
:mod:`lib.transfer.importer_eventlog`;
what they share is in :mod:`lib.transfer.import_rows`.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session

from lib.db import transaction
from lib.errors import HelpdeskError, ValidationError
from lib.transfer import importer_generic, importer_servicenow
from lib.transfer.import_rows import Item, Layout, Refused

Progress = Callable[[int, int | None], None] | None
#: Called inside each batch's transaction, before it commits: (session, the report so far, the refusals of the batch).
Checkpoint = Callable[[Session, "ImportReport", list[str]], None] | None
LAYOUTS = ("auto", "generic", "servicenow", "eventlog")
LAYOUTS_BY_NAME: dict[str, Layout] = {"generic": importer_generic.LAYOUT, "servicenow": importer_servicenow.LAYOUT}
MAX_FILE_BYTES = 2 * 1024**3
#: An event-log mapping: TOML text, its parsed form (e.g. with command-line overrides), or None for the default.
MappingSpec = str | Mapping[str, Any] | None


@dataclass
class ImportReport:
    layout: str = ""
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    refused: list[str] = field(default_factory=list)
    rows: int = 0
    items: int = 0  # tickets (generic: rows; ServiceNow: incidents) handled, refused ones included
    dry_run: bool = False

    def summary(self) -> str:
        what = "incidents" if self.layout == "servicenow" else "tickets"
        if self.dry_run:
            return (f"dry run ({self.layout} layout) of {self.rows:,} rows, nothing written: {self.created:,} "
                    f"{what} would be created, {self.updated:,} updated, {self.unchanged:,} unchanged, "
                    f"{len(self.refused):,} refused")
        return (f"{self.layout} import of {self.rows:,} rows: {self.created:,} {what} created, {self.updated:,} updated, "
                f"{self.unchanged:,} unchanged, {len(self.refused):,} refused")


def get_layout(name: str, mapping_toml: MappingSpec = None) -> Layout:
    """The layout called ``name``; the event-log layout reads its column and status mapping from ``mapping_toml``
    (the text of a TOML mapping file or its parsed form, see docs/cli.md; None = the documented default)."""
    if name == "eventlog":
        from lib.transfer import importer_eventlog

        return importer_eventlog.make_layout(mapping_toml)
    if mapping_toml:
        raise ValidationError({"--mapping": f"a mapping file is only read by the eventlog layout, not by {name}"})
    return LAYOUTS_BY_NAME[name]


def import_csv(engine: Engine, path: Path, *, layout: str = "auto", progress: Progress = None,
               mapping_toml: MappingSpec = None, dry_run: bool = False, checkpoint: Checkpoint = None,
               resume: ImportReport | None = None) -> ImportReport:
    """Import ``path``; return what was created, updated, left unchanged and refused (with reasons).

    ``dry_run``: the same work in one transaction, rolled back: the report says what a run would do.
    ``resume``: the report of the items committed before (its ``items`` are skipped, its counts carried on;
    its ``refused`` list is not copied, so the returned report lists only the refusals of this call).
    """
    path = Path(path)
    chosen, chosen_layout = open_layout(path, layout, mapping_toml)
    report = ImportReport(layout=chosen, dry_run=dry_run)
    if resume is not None and not dry_run:
        report.created, report.updated, report.unchanged = resume.created, resume.updated, resume.unchanged
        report.rows, report.items = resume.rows, resume.items
    items = skip(chosen_layout.items(path), report.items)
    run(engine, items, chosen_layout.handle, report, progress=progress, total=chosen_layout.count_rows(path),
        batch=chosen_layout.batch, dry_run=dry_run, checkpoint=checkpoint,
        optimistic=getattr(chosen_layout, "refuses_before_writing", False))
    return report


def open_layout(path: Path, layout: str = "auto", mapping_toml: MappingSpec = None) -> tuple[str, Layout]:
    """Check the file and its header; ``(layout name, layout)`` (``auto`` resolved from the header)."""
    if layout not in LAYOUTS:
        raise ValidationError({"--layout": f"unknown layout {layout!r}; use one of {', '.join(LAYOUTS)}"})
    if not path.is_file():
        raise ValidationError({"path": f"{path} is not a file"})
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ValidationError({"path": f"{path} is larger than {MAX_FILE_BYTES // 1024**3} GB; split it"})
    header = read_header(path)
    chosen = detect_layout(header) if layout == "auto" else layout
    chosen_layout = get_layout(chosen, mapping_toml)
    delimiter = getattr(chosen_layout, "delimiter", ",")  # an event log may be split on another character
    chosen_layout.check_header(header if delimiter == "," else read_header(path, delimiter))
    return chosen, chosen_layout


def skip(items: Iterator[Item], n: int) -> Iterator[Item]:
    """``items`` without the first ``n`` (committed by an earlier, interrupted run of the same file)."""
    for _ in range(n):
        item = next(items, None)
        if item is None:
            break
        # The ServiceNow layout notes each incident it hands out, to look a batch of them up at once.
        upcoming = getattr(getattr(item, "run", None), "upcoming", None)
        if isinstance(upcoming, dict):
            upcoming.pop(item.key, None)
    return items


def read_header(path: Path, delimiter: str = ",") -> list[str]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            header = next(csv.reader(fh, delimiter=delimiter), None)
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


class _RollBack(Exception):
    """Ends a dry run's transaction (rolled back)."""


class _Retry(Exception):
    """An item failed while writing in a batch handled without savepoints: the batch is rolled back and handled
    again, each item in its own savepoint."""


def run(engine: Engine, items: Iterable[Item], handle: Callable[[Session, Item], str], report: ImportReport, *,
        progress: Progress, total: int | None, batch: int, dry_run: bool = False,
        checkpoint: Checkpoint = None, optimistic: bool = False) -> None:
    """Write items in batches (one transaction each), each item in its own SAVEPOINT. A dry run handles every
    batch in one transaction that is rolled back, so later items see what earlier ones would have written.

    ``optimistic`` (a layout whose ``handle`` raises :class:`Refused` only before it writes anything): a batch is
    first written without savepoints — a third of the import's time on SQLite — and only when an item fails
    while writing is the batch rolled back and written again with a savepoint per item, so the outcome is
    the same either way."""
    it = iter(items)
    if dry_run:
        try:
            with transaction(engine) as session:
                while chunk := list(islice(it, batch)):
                    _handle_batch(session, chunk, handle, report)
                    if progress:
                        progress(report.rows, total)
                raise _RollBack
        except _RollBack:
            return
    while chunk := list(islice(it, batch)):
        if optimistic:
            kept = (report.created, report.updated, report.unchanged, report.rows, report.items, len(report.refused))
            try:
                with transaction(engine) as session:
                    refused = _handle_batch(session, chunk, handle, report, savepoints=False)
                    if checkpoint:
                        checkpoint(session, report, refused)
            except _Retry:
                (report.created, report.updated, report.unchanged, report.rows, report.items), n = kept[:5], kept[5]
                del report.refused[n:]
                for item in chunk:  # what the layout remembered of the rolled-back writes is void
                    rolled_back = getattr(item, "rolled_back", None)
                    if rolled_back is not None:
                        rolled_back()
            else:
                if progress:
                    progress(report.rows, total)
                continue
        with transaction(engine) as session:
            refused = _handle_batch(session, chunk, handle, report)
            if checkpoint:
                checkpoint(session, report, refused)
        if progress:
            progress(report.rows, total)


def _handle_batch(session: Session, chunk: list[Item], handle: Callable[[Session, Item], str],
                  report: ImportReport, *, savepoints: bool = True) -> list[str]:
    """Each item in its own SAVEPOINT (unless ``savepoints`` is False: then an item that fails other than by a
    :class:`Refused` raises :class:`_Retry`); returns the refusals of this batch (also appended to the report)."""
    refused: list[str] = []
    for item in chunk:
        report.rows += len(item.rows)
        report.items += 1
        try:
            if savepoints:
                with session.begin_nested():
                    outcome = handle(session, item)
            else:
                outcome = handle(session, item)
        except Refused as exc:
            refused.append(str(exc))
            continue
        except Exception as exc:
            if not savepoints:
                raise _Retry from exc
            if not isinstance(exc, HelpdeskError | ValueError | IntegrityError | StatementError):
                raise
            detail = getattr(exc, "orig", None) or exc
            refused.append(f"{item.where}: {detail}")
            continue
        setattr(report, outcome, getattr(report, outcome) + 1)
    report.refused += refused
    return refused
