"""Cells a spreadsheet shows as text and never runs: every CSV, XLSX and HTML export writes through here.

Requester names and ticket summaries come from the From and Subject of inbound e-mail, so anyone can
choose them. A spreadsheet (Excel, LibreOffice, Google Sheets) that opens a file with a cell beginning
``=HYPERLINK("http://evil.example","x")`` runs it as a formula. The OWASP "CSV injection" rule:

* a text cell beginning with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading
  single quote (``'=1+2``): :func:`neutralise`;
* numbers stay numbers (``-2`` is a number, not text, and is written as one);
* a cell holding the separator must not open a new cell that starts with one of those characters:
  CSV files quote every text cell (:data:`CSV_QUOTING`), so a ``;`` inside a name stays inside its cell
  in a spreadsheet that splits on ``;``;
* XLSX cells holding text are stored as text (``data_type "s"``), never as a formula
  (:func:`write_xlsx`), and a link, where one is wanted, is a plain cell with ``cell.hyperlink`` set to a
  URL the desk builds, never a ``HYPERLINK`` formula and never a URL taken from outside text.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, BinaryIO, Final, Literal, TypeVar, overload

import pandas as pd

#: A text cell starting with one of these is read as a formula (after a tab or CR, by what follows).
FORMULA_STARTS = frozenset(("=", "+", "-", "@", "\t", "\r"))
#: csv.writer / DataFrame.to_csv quoting: every text cell in quotes, numbers bare.
CSV_QUOTING: Final[Literal[2]] = csv.QUOTE_NONNUMERIC

_T = TypeVar("_T")


@overload
def neutralise(value: str) -> str: ...


@overload
def neutralise(value: _T) -> _T: ...


def neutralise(value: Any) -> Any:
    """``value`` as a cell a spreadsheet shows as text and never evaluates.

    The rule (OWASP CSV injection): a ``str`` that begins with ``=``, ``+``, ``-``, ``@``, a tab
    (``\\t``) or a carriage return (``\\r``) is returned with a single quote in front
    (``"=1+2"`` → ``"'=1+2"``, ``"-2+3"`` → ``"'-2+3"``). Every other value is returned unchanged:
    other text, ``None``, and numbers (int, float, Decimal, NaN, numpy numbers), so a negative number
    stays a number.
    """
    if isinstance(value, str) and value[:1] in FORMULA_STARTS:
        return "'" + value
    return value


def neutralise_row(row: Iterable[Any]) -> list[Any]:
    """:func:`neutralise` applied to each cell of ``row`` (its test inlined: this runs for every cell of
    exports with millions of rows)."""
    return [("'" + v) if isinstance(v, str) and v[:1] in FORMULA_STARTS else v for v in row]


def neutralise_frame(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` with :func:`neutralise` applied to its column names and to every text column's
    cells; numeric columns are left as they are."""
    out = df.copy()
    for i in range(out.shape[1]):
        column = out.iloc[:, i]
        if not (pd.api.types.is_numeric_dtype(column) or pd.api.types.is_datetime64_any_dtype(column)):
            out.isetitem(i, pd.Series(neutralise_row(column), index=column.index, dtype=object))
    out.columns = [neutralise(c) for c in out.columns]
    return out


def write_xlsx(path: Path | str | BinaryIO, sheets: Mapping[str, pd.DataFrame]) -> None:
    """Write one sheet per frame (the name cut to Excel's 31 characters) to ``path`` (or a binary file), every text cell
    neutralised and stored as text: no cell of the workbook is a formula."""
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        for name, df in sheets.items():
            title = name[:31]
            neutralise_frame(df).to_excel(writer, sheet_name=title, index=False)
            for row in writer.sheets[title].iter_rows():
                for cell in row:
                    if isinstance(cell.value, str):
                        cell.data_type = "s"
