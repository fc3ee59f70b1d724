"""CSV for spreadsheets: every export writes through here, so no cell runs as a formula.

A spreadsheet reads a cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return (or
their full-width forms) as a formula. As OWASP advises for CSV injection, such a cell gets a
leading single quote and every text cell is quoted, so the spreadsheet shows it as text. A cell
that is only a number (`-12.5`, `+7701`) stays a number: it cannot run anything.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence

FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def safe_cell(value: object) -> str | int | float:
    """Return a cell a spreadsheet cannot run: numbers as they are, text defused and as text."""
    if value is None:
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    text = str(value)
    if text.startswith(FORMULA_START) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def to_csv(header: Sequence[str], rows: Iterable[Sequence[object]], *, bom: bool = False) -> str:
    """Return a header and rows as CSV, every cell through `safe_cell` and every text quoted.

    `bom` starts the text with a byte-order mark, so spreadsheets read UTF-8 (Cyrillic) right.
    """
    out = io.StringIO()
    if bom:
        out.write("\ufeff")
    writer = csv.writer(out, quoting=csv.QUOTE_NONNUMERIC)
    writer.writerow([safe_cell(h) for h in header])
    for row in rows:
        writer.writerow([safe_cell(v) for v in row])
    return out.getvalue()
