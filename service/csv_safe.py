"""CSV files the product writes, safe to open in a spreadsheet (OWASP "CSV Injection").

A cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return (or their full-width forms) is read
as a formula by Excel, LibreOffice and Google Sheets: a department named `=HYPERLINK(...)` would run in the
reader's spreadsheet. Such text cells get a leading `'`, which spreadsheets show as text; a cell holding the
separator, a quote or a line break is quoted, embedded quotes doubled (so no cell can spill into the next).
Numbers the product computed are written as numbers.

Every CSV writer uses :func:`dict_writer` (a test checks that no other module writes CSV).
"""

import csv
from collections.abc import Iterable, Mapping
from typing import Any, TextIO

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def safe_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class SafeDictWriter(csv.DictWriter):
    def writerow(self, rowdict: Mapping[str, Any]) -> Any:
        return super().writerow({k: safe_cell(v) for k, v in rowdict.items()})

    def writerows(self, rowdicts: Iterable[Mapping[str, Any]]) -> None:
        for row in rowdicts:
            self.writerow(row)


def dict_writer(buf: TextIO, fieldnames: list[str], **options: Any) -> SafeDictWriter:
    options.setdefault("quoting", csv.QUOTE_MINIMAL)
    options.setdefault("lineterminator", "\r\n")
    return SafeDictWriter(buf, fieldnames=fieldnames, **options)
