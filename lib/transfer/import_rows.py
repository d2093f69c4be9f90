"""What the import layouts share (lib.transfer.importer_generic, lib.transfer.importer_servicenow) and the
driver (lib.transfer.importer) uses: the unit of import, the refusal, reading the CSV rows, parsing helpers."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol, TypeVar

from sqlalchemy.orm import Session

_V = TypeVar("_V")


class Layout(Protocol):
    """A CSV layout the driver imports: how many rows per transaction, the header check, the items, one item."""

    batch: int

    def check_header(self, header: list[str]) -> None: ...

    def count_rows(self, path: Path) -> int: ...

    def items(self, path: Path) -> Iterator[Item]: ...

    def handle(self, session: Session, item: Item) -> str: ...

    def columns(self, header: list[str]) -> list[tuple[str, str]]:
        """Each column of ``header``, in order, with what it becomes (``IGNORED`` where it is not read)."""
        ...


#: What :meth:`Layout.columns` says of a column the layout does not read.
IGNORED = "ignored"


class Refused(Exception):
    """A row (or a whole incident) cannot be imported; ``str()`` names the row and every problem found."""


@dataclass
class Item:
    """One unit of import: a ticket's row(s), with where they are in the file for messages."""

    where: str  # "row 17" or "rows 2-5 (INC0000045)"
    rows: list[tuple[int, dict[str, str]]]
    key: str = ""


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
