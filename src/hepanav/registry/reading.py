"""Read a CSV or XLSX import file exactly as the spreadsheet meant it, or refuse it.

What spreadsheets really exchange, and how each is handled (every handling is
said in the import's ``notes``):

* Encoding: UTF-8 (with or without BOM) and UTF-16 with BOM are read. Any other
  file is read as Windows-1252 only when that is unambiguous: every non-ASCII
  byte means the same character in Windows-1252, Windows-1250 and ISO-8859-15
  (e.g. ``é ü ß ° µ``); otherwise refused with the remedy (save as "CSV UTF-8").
* Delimiter: comma, semicolon or tab, detected from the header line (the one
  that splits it into the most fields).
* Decimal commas (``2,5``) in numeric columns of semicolon- or tab-separated
  files (what a European Excel writes) become ``2.5``; a column mixing decimal
  commas and points (``1.234`` may be a thousands separator) is refused, and so
  is ``1.234`` in any numeric column of a file with decimal commas, and in a
  semicolon- or tab-separated file that shows no decimal point that could not be a
  thousands separator (``2.5``, ``0.125``).
* Empty rows (separators only, spaces) are skipped and counted.
* XLSX: cells formatted as percent (shown 95 %, stored 0.95) in a percentage
  column are stored as 95; a percent cell elsewhere is refused. Date cells become
  ISO dates; numbers in a date column are Excel serial dates and are converted
  with the workbook's own date system (1900 or 1904). In a CSV, where the date
  system is unknown, such numbers are refused with "use YYYY-MM-DD"
  (:mod:`hepanav.registry.schema`).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hepanav.core.errors import InputError

# The largest import file read (bytes): far above any registry export seen, and
# small enough that a wrong file (a CT volume renamed .csv) is refused quickly.
MAX_TABLE_BYTES = 512 * 1024 * 1024
DELIMITERS = (",", ";", "\t")
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab"}
_DECIMAL_COMMA = re.compile(r"^[+-]?\d+,\d+$")
_DECIMAL_POINT = re.compile(r"^[+-]?\d*\.\d+$")
# ``1.234``: a thousands separator or a decimal point, undecidable in a decimal-comma file.
_THOUSANDS_OR_POINT = re.compile(r"^[+-]?\d{1,3}\.\d{3}$")
# The same where the point can only be a thousands separator's if the number is >= 1000.
_THOUSANDS_LIKE = re.compile(r"^[+-]?[1-9]\d{0,2}\.\d{3}$")
_PERCENT_FORMAT = re.compile(r'"[^"]*"|\\.')  # quoted literals and escapes in a format


@dataclass
class Table:
    """Cells of an import file as text (``None`` when empty), one dict per data row.

    Attributes
    ----------
    columns : list of str
        Normalised header names (``"Margin (mm)"`` -> ``"margin_mm"``).
    records : list of dict
        Data rows with at least one value.
    row_numbers : list of int
        Spreadsheet row of each record (header = row 1), for error messages.
    notes : list of str
        How the file was read where it differed from plain UTF-8 comma CSV.
    delimiter : str or None
        The CSV delimiter (None for XLSX).
    """

    columns: list[str]
    records: list[dict[str, Any]]
    row_numbers: list[int]
    notes: list[str] = field(default_factory=list)
    delimiter: str | None = None


def normalise_column(name: Any) -> str:
    """``"Margin (mm)"`` -> ``"margin_mm"``: lower case, runs of non-alphanumerics -> ``_``."""
    return re.sub(r"[^0-9a-z]+", "_", str(name).strip().lower()).strip("_")


def _check_file(path: Path) -> None:
    if not path.exists():
        raise InputError("file not found", path)
    if not path.is_file():
        raise InputError("is not a regular file (a folder, FIFO or device)", path)
    size = path.stat().st_size
    if size > MAX_TABLE_BYTES:
        raise InputError(
            f"is {size / 2**20:.0f} MiB, larger than the {MAX_TABLE_BYTES / 2**20:.0f} MiB "
            "an import file may be; split it",
            path,
        )


def _same_in_all(byte: int) -> bool:
    char = bytes([byte]).decode("cp1252", errors="strict")
    for other in ("cp1250", "iso8859_15"):
        try:
            if bytes([byte]).decode(other) != char:
                return False
        except UnicodeDecodeError:
            return False
    return True


def decode_text(data: bytes, source: Path) -> tuple[str, str | None]:
    """Text of a CSV file and a note when it was not UTF-8; refuse ambiguous encodings."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), "read as UTF-16 (byte-order mark)"
        except UnicodeDecodeError:
            raise InputError("has a UTF-16 byte-order mark but is not UTF-16", source) from None
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        first_bad = exc.start
    remedy = (
        f"is not UTF-8 (byte {data[first_bad]:#04x} at offset {first_bad}) and its "
        "encoding is ambiguous; save it as 'CSV UTF-8' (Excel: Save As > CSV UTF-8) "
        "and import again"
    )
    high = {b for b in data if b >= 0x80}
    try:
        ok = all(_same_in_all(b) for b in high)
    except UnicodeDecodeError:  # a byte undefined in Windows-1252
        ok = False
    if not ok:
        raise InputError(remedy, source)
    chars = "".join(sorted({bytes([b]).decode("cp1252") for b in high}))
    return data.decode("cp1252"), (
        f"not UTF-8: read as Windows-1252 (its non-ASCII characters {chars} mean the same "
        "in Windows-1250 and ISO-8859-15); save as 'CSV UTF-8' to avoid this"
    )


def detect_delimiter(text: str) -> str:
    """The delimiter (comma, semicolon or tab) that splits the header line into most fields."""
    header = next((line for line in text.splitlines() if line.strip()), "")
    best, best_count = ",", 1
    for delimiter in DELIMITERS:
        count = len(next(csv.reader([header], delimiter=delimiter), []))
        if count > best_count:
            best, best_count = delimiter, count
    return best


def _unquote(text: str) -> str:
    """Undo the exporter's formula neutralisation (``'=x`` -> ``=x``, OWASP CSV injection)."""
    if len(text) > 1 and text[0] == "'" and text[1] in "=+-@\t\r":
        return text[1:]
    return text


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _finish(
    header: list[Any], rows: list[tuple[int, list[Any]]], source: Path, notes: list[str]
) -> Table:
    columns = [normalise_column(c) for c in header]
    while (
        columns
        and columns[-1] == ""
        and all(len(r) < len(columns) or _blank(r[len(columns) - 1]) for _, r in rows)
    ):
        columns.pop()  # trailing separators after the last header cell
    if "" in columns:
        raise InputError(f"column {columns.index('') + 1} has no header", source)
    records, numbers, skipped = [], [], 0
    width = len(columns)
    for number, cells in rows:
        extra = [c for c in cells[width:] if not _blank(c)]
        if extra:
            raise InputError(
                f"row {number} has {width + len(extra)} values but the header has {width} columns",
                source,
            )
        cells = list(cells[:width]) + [None] * (width - len(cells))
        values = [_unquote(c.strip()) if isinstance(c, str) else c for c in cells]
        values = [None if _blank(v) else v for v in values]
        if all(v is None for v in values):
            skipped += 1
            continue
        records.append(dict(zip(columns, values, strict=True)))
        numbers.append(number)
    if skipped:
        notes.append(f"{skipped} empty row(s) skipped")
    return Table(columns=columns, records=records, row_numbers=numbers, notes=notes)


def read_csv(path: Path) -> Table:
    """Read a CSV (encoding and delimiter detected); cells as stripped text."""
    _check_file(path)
    text, note = decode_text(path.read_bytes(), path)
    notes = [note] if note else []
    delimiter = detect_delimiter(text)
    if delimiter != ",":
        notes.append(f"{DELIMITER_NAMES[delimiter]}-separated")
    try:
        lines = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True))
    except csv.Error as exc:
        raise InputError(f"cannot read the CSV ({exc})", path) from None
    # Row numbers as a spreadsheet shows them (line breaks inside quotes aside).
    numbered = [(i + 1, row) for i, row in enumerate(lines)]
    while numbered and all(_blank(c) for c in numbered[0][1]):
        numbered.pop(0)  # blank lines before the header
    if not numbered:
        raise InputError("the file is empty (no header row)", path)
    (_, header), body = numbered[0], numbered[1:]
    table = _finish(header, body, path, notes)
    table.delimiter = delimiter
    return table


def _is_percent_format(number_format: str | None) -> bool:
    return bool(number_format) and "%" in _PERCENT_FORMAT.sub("", number_format)


def read_xlsx(
    path: Path, date_columns: tuple[str, ...] = (), percent_columns: tuple[str, ...] = ()
) -> Table:
    """Read the first sheet of an XLSX workbook with openpyxl, honouring cell formats.

    Parameters
    ----------
    date_columns : tuple of str
        Normalised names of date columns: numbers there are Excel serial dates.
    percent_columns : tuple of str
        Columns holding percentages (0-100): percent-formatted cells are scaled.
    """
    import openpyxl
    from openpyxl.utils.datetime import from_excel

    _check_file(path)
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception:  # openpyxl raises many types (BadZipFile, KeyError...) for a damaged file
        raise InputError(
            "cannot read the workbook (not a valid .xlsx file; an .xls or password-protected "
            "workbook must be saved again as .xlsx)",
            path,
        ) from None
    try:
        sheet = book.worksheets[0]
        rows = list(sheet.iter_rows())
        epoch = "1904" if book.epoch.year == 1904 else "1900"
    finally:
        book.close()
    if not rows:
        raise InputError("the first sheet is empty (no header row)", path)
    header = [c.value for c in rows[0]]
    columns = [normalise_column(c) if c is not None else "" for c in header]
    notes: list[str] = []
    serial_columns, percent_scaled = set(), set()
    body = []
    for r, cells in enumerate(rows[1:], start=2):
        values = []
        for k, cell in enumerate(cells):
            value = cell.value
            column = columns[k] if k < len(columns) else ""
            if isinstance(value, bool) or value is None:
                values.append(None if value is None else ("true" if value else "false"))
                continue
            if isinstance(value, dt.datetime):
                value = value.date()
            if isinstance(value, dt.date):
                values.append(value.isoformat())
                continue
            if isinstance(value, int | float):
                if column in date_columns:
                    try:
                        day = from_excel(value, epoch=book.epoch)
                    except (ValueError, OverflowError, TypeError):
                        day = None
                    if isinstance(day, dt.datetime) and 1900 <= day.year <= 2100:
                        serial_columns.add(column)
                        values.append(day.date().isoformat())
                    else:
                        values.append(repr(value))  # refused by the date validator
                    continue
                if _is_percent_format(getattr(cell, "number_format", None)):
                    if column not in percent_columns:
                        raise InputError(
                            f"row {r} {column or f'column {k + 1}'}: cell is formatted as a "
                            "percentage but the column is not one; format it as a number",
                            path,
                        )
                    percent_scaled.add(column)
                    value = round(float(value) * 100.0, 9)
                # Numbers become text as in a CSV, so numeric ids (patient 1001,
                # segment 4) validate; Excel stores 4 as 4.0, hence no ".0".
                value = float(value)
                values.append(str(int(value)) if value.is_integer() else repr(value))
                continue
            values.append(str(value))
        body.append((r, values))
    if serial_columns:
        notes.append(
            f"Excel serial day numbers in {sorted(serial_columns)} converted to dates "
            f"(workbook date system {epoch})"
        )
    if percent_scaled:
        notes.append(
            f"percent-formatted cells in {sorted(percent_scaled)} stored as percentages "
            "(shown 95 %, stored 0.95 -> 95)"
        )
    return _finish(header, body, path, notes)


def read_table(
    path: str | Path, date_columns: tuple[str, ...] = (), percent_columns: tuple[str, ...] = ()
) -> Table:
    """Read a ``.csv`` or ``.xlsx``/``.xlsm`` import file (see the module docstring).

    Raises
    ------
    InputError
        Missing, non-regular, oversized or undecodable file, ragged rows, a
        column without a header, a percent cell outside a percentage column.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return read_csv(path)
    if suffix in (".xlsx", ".xlsm"):
        return read_xlsx(path, date_columns, percent_columns)
    raise InputError("expected a .csv or .xlsx file", path)


def _points_without_evidence(table: Table, numeric_columns: tuple[str, ...]) -> list:
    """Row errors for ``1.234``-like values in a semicolon/tab file without decimal commas
    that shows no decimal point elsewhere: the European Excel that writes semicolons writes
    1234 as ``1.234`` when the cell has a thousands separator, so the value is 1234 or
    1.234 and nothing in the file tells which. Any other value with a point that cannot be
    a thousands separator (``2.5``, ``0.125``, ``12.3456``) shows the file's points are
    decimal points, and then ``1.234`` is read as 1.234.
    """
    cells = [
        (i, column, rec[column].strip())
        for column in numeric_columns
        if column in table.columns
        for i, rec in enumerate(table.records)
        if isinstance(rec.get(column), str)
    ]
    if any(_DECIMAL_POINT.match(v) and not _THOUSANDS_LIKE.match(v) for _, _, v in cells):
        return []
    return [
        {
            "row": table.row_numbers[i],
            "column": column,
            "reason": f"{v}: thousands separator or decimal point? this "
            f"{DELIMITER_NAMES[table.delimiter]}-separated file shows no other decimal "
            f"point; use {v.replace('.', '')} or {v.replace('.', ',')}",
        }
        for i, column, v in cells
        if _THOUSANDS_LIKE.match(v)
    ]


def decimal_commas(table: Table, numeric_columns: tuple[str, ...], source: Path) -> list:
    """Turn decimal commas into points in numeric columns; return row errors (dicts).

    Only in semicolon- or tab-separated files (in a comma-separated file a comma
    inside a number is ambiguous). A column mixing ``2,5`` and ``1.234`` is
    refused: the point may be a thousands separator. In a decimal-comma file (one
    with a decimal comma in any numeric column), a value such as ``1.234`` (one
    point followed by three digits) in any numeric column is refused too, even in a
    column without commas: it may mean 1234 or 1,234. A point that cannot be a
    thousands separator (``2.5``, ``12.25``) is read as a decimal point.
    """
    errors = []
    converted = []
    decimal_comma_file = table.delimiter in (";", "\t") and any(
        isinstance(rec.get(column), str) and _DECIMAL_COMMA.match(rec[column])
        for column in numeric_columns
        if column in table.columns
        for rec in table.records
    )
    if table.delimiter in (";", "\t") and not decimal_comma_file:
        errors += _points_without_evidence(table, numeric_columns)
    if decimal_comma_file:
        for column in numeric_columns:
            if column not in table.columns:
                continue
            values = [rec[column] for rec in table.records]
            if any(isinstance(v, str) and _DECIMAL_COMMA.match(v) for v in values):
                continue  # a column with commas: the mixing rule below applies
            for i, rec in enumerate(table.records):
                value = rec[column]
                if isinstance(value, str) and _THOUSANDS_OR_POINT.match(value.strip()):
                    v = value.strip()
                    errors.append(
                        {
                            "row": table.row_numbers[i],
                            "column": column,
                            "reason": f"{v}: thousands separator or decimal point? this file "
                            f"has decimal commas; use {v.replace('.', '')} or "
                            f"{v.replace('.', ',')}",
                        }
                    )
    for column in numeric_columns:
        if column not in table.columns:
            continue
        cells = [(i, rec[column]) for i, rec in enumerate(table.records)]
        cells = [(i, v) for i, v in cells if isinstance(v, str)]
        commas = [i for i, v in cells if _DECIMAL_COMMA.match(v)]
        if not commas:
            continue
        if table.delimiter not in (";", "\t"):
            for i in commas:
                errors.append(
                    {
                        "row": table.row_numbers[i],
                        "column": column,
                        "reason": "decimal comma in a comma-separated file is ambiguous; "
                        "use a decimal point",
                    }
                )
            continue
        points = [i for i, v in cells if _DECIMAL_POINT.match(v)]
        if points:
            errors.append(
                {
                    "row": table.row_numbers[points[0]],
                    "column": column,
                    "reason": "the column mixes decimal commas (row "
                    f"{table.row_numbers[commas[0]]}) and points; a point may be a thousands "
                    "separator: use one decimal mark",
                }
            )
            continue
        for i in commas:
            table.records[i][column] = table.records[i][column].replace(",", ".")
        converted.append(column)
    if converted:
        table.notes.append(f"decimal commas read in {converted}")
    return errors
