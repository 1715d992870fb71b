"""Screen column names and cell values for direct identifiers, without echoing them.

Research registries keep pseudonymous ids only (GDPR Art. 4(5); HIPAA Safe
Harbor, 45 CFR 164.514(b)(2), lists the identifiers screened here: names,
dates related to a person such as birth dates, telephone numbers, e-mail
addresses, medical record and other account or identification numbers).
Findings name the column and row and the KIND of identifier, never the value,
so that refusing a file does not copy the identifier into a terminal, a log or
an error file.

Use from any package::

    from hepanav.core.privacy import screen_records, refuse_identifiers

    findings = screen_records(rows, row_numbers=[2, 3], code_sets={"sex": ("F", "M")},
                              id_columns=("patient_id",), free_text_columns=("note",))
    refuse_identifiers(findings, "cases.csv")   # InputError naming column and row

The patterns are heuristics that err towards refusing: a pseudonym that looks
like a record number (six or more digits) or like a name (capitalised words,
no digit) is refused too; the message says what to change.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hepanav.core.errors import InputError

# Column names that suggest a direct identifier.
_IDENTIFIER_COLUMN = re.compile(
    r"(^|_)(name|names|surname|forename|firstname|lastname|initials|mrn|nhs|ssn|"
    r"dob|birthdate|birthday|address|street|postcode|zip|zipcode|phone|telephone|"
    r"email|mail|insurance|passport)(_|$)"
    r"|record_?n(umbe)?r|hospital_?n(umbe)?r|patient_?n(umbe)?r|date_?of_?birth|"
    r"birth_?date|social_?security|postal_?code"
)
# REDCap's own system columns: ``redcap_event_name`` is an event (e.g.
# ``baseline_arm_1``), not a person's name; ``record_id`` is REDCap's key.
REDCAP_SYSTEM_COLUMNS = frozenset(
    {
        "record_id",
        "redcap_event_name",
        "redcap_repeat_instrument",
        "redcap_repeat_instance",
        "redcap_data_access_group",
        "redcap_survey_identifier",
    }
)

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
# A telephone number: optional +/00 country code, 8-15 digits with the usual separators.
_PHONE = re.compile(r"(?<![\w.])(?:\+|00)?\(?\d[\d\s()/.\-]{6,}\d(?![\w.])")
# A date (of birth): d.m.y, d/m/y, y-m-d and spelled months ("3 March 1950").
_DATE = re.compile(
    r"(?<!\d)(?:\d{1,2}[./\-]\d{1,2}[./\-](?:19|20)?\d{2}|(?:19|20)\d{2}[./\-]\d{1,2}[./\-]\d{1,2})(?!\d)"
    r"|\b\d{1,2}\.?\s+(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+(?:19|20)\d{2}\b",
    re.IGNORECASE,
)
# Record numbers and national ids: six or more digits (separators allowed), SSN
# (123-45-6789), NHS (943 476 5919), or up to three letters then 7+ digits (A123456789).
_RECORD_NUMBER = re.compile(
    r"(?<![\w.,])(?:\d[\s\-/]?){5,}\d(?![\w.,])|(?<![\w])[A-Za-z]{1,3}[\-\s]?\d{7,}(?![\w])"
)
NUMBER_KIND = "a telephone, record or national-id number"
_BIRTH_WORDS = re.compile(r"\b(?:born|dob|geb(?:oren)?|n[ée]e?\s+le|birth)\b", re.IGNORECASE)
_HONORIFIC = re.compile(
    r"\b(?i:mr|mrs|ms|miss|dr|prof|herr|frau|sig(?:nor|nora)?|mme|mlle|sr|sra)\.?\s+[A-Z][a-z]",
)
_SURNAME_COMMA = re.compile(r"^[A-Z][a-z'\-]+,\s*[A-Z][a-z'\-]+$")
_CAPITALISED_WORDS = re.compile(r"^[A-Z][a-z'\-]+(?:[\s_.\-]+[A-Z][a-z'\-]+)*$")
_WORD = re.compile(r"[A-Za-zÀ-ÖØ-öø-ÿ]+")

# Frequent given names (Europe, North America), lower case: a name in free text is
# caught when one of its words is one of these. A heuristic, not a census.
GIVEN_NAMES = frozenset(
    """
    aaron adam adrian agnes alain alberto alessandro alex alexander alexandra alice ali
    alicia amelia ana andrea andreas andrew angela anna anne annika anton antonio arthur
    barbara ben benjamin bernard bettina brian carl carla carlos carmen caroline catherine
    charles charlotte chris christian christina christine claire claudia daniel david
    denise diana diego dieter dominik edward elena elisabeth elizabeth ella emily emma eric
    erik eva fabian felix fernando francesca francesco francois frank franz freya gabriel
    george georg gerhard giovanni giulia giuseppe hana hannah hans harry heinz helen helena
    henrik henry ingrid isabel isabella jack jacob james jan jana jane jean jennifer jens
    joan johann johanna john jonas jorge jose joseph josef juan julia julian jurgen karin
    karl katharina kate katrin klaus laura lea lena leon linda lisa luca lucas lucia luis
    lukas manuel marco margaret maria marie mario mark marta martin mary matteo matthias
    max michael michel michelle mohammed muhammad nadia natalie nicola nicolas nina noah
    olga oliver olivia pablo paolo patricia patrick paul peter petra philipp pierre pietro
    rachel ralf rebecca richard robert roberto ruth sandra sara sarah sebastian sergio
    simon sofia sophie stefan stefanie stephan susan susanne sven thomas tim tobias tom
    ursula valentina victor walter william wolfgang yusuf zoe
    """.split()
)


@dataclass(frozen=True)
class Finding:
    """An identifier found in a cell: column, spreadsheet row and kind; never the value."""

    column: str
    row: int | None
    kind: str

    def describe(self) -> str:
        where = f"row {self.row} {self.column}" if self.row is not None else self.column
        return f"{where}: looks like {self.kind} (value not shown)"


def identifier_column(name: str) -> bool:
    """Whether a normalised column name suggests a direct identifier (REDCap's own
    system columns such as ``redcap_event_name`` are not)."""
    return name not in REDCAP_SYSTEM_COLUMNS and bool(_IDENTIFIER_COLUMN.search(name))


def _digits(text: str) -> int:
    return sum(ch.isdigit() for ch in text)


def _has_given_name(text: str) -> bool:
    return any(w.lower() in GIVEN_NAMES for w in _WORD.findall(text) if w[0].isupper())


def screen_value(
    value: Any,
    role: str = "free_text",
    codes: Collection[str] | None = None,
) -> str | None:
    """The kind of identifier ``value`` looks like, or None.

    Parameters
    ----------
    value : any
        A cell; non-strings (numbers already parsed) are not screened.
    role : {"free_text", "code", "id", "date", "number"}
        What the column holds. ``code``: a value outside ``codes`` that looks
        like a person's name is a name. ``id``: a pseudonym must not look like a
        name or a record number. ``date``: dates are expected (not screened as
        birth dates). ``number``: only e-mail/phone/name patterns.
    codes : collection of str, optional
        The column's code set (matched case-insensitively) for ``role="code"``.
    """
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text:
        return None
    if codes is not None and text.lower().replace(" ", "_") in {str(c).lower() for c in codes}:
        return None
    if _EMAIL.search(text):
        return "an e-mail address"
    if role == "date":  # dates are expected here; the date parser checks their form
        return "a person's name" if _has_given_name(text) else None
    if role != "date" and _DATE.search(text):
        return "a date (of birth?)"
    if _BIRTH_WORDS.search(text):
        return "a date of birth"
    if role == "number":
        # A number column: digits are expected; only a phone-like string with
        # separators and a long run of digits is an identifier.
        plain_number = re.fullmatch(r"[+-]?[\d.,eE+-]+", text)
        if _PHONE.fullmatch(text) and _digits(text) >= 8 and not plain_number:
            return NUMBER_KIND
        return "a person's name" if _has_given_name(text) else None
    if (
        _PHONE.search(text)
        and _digits(_PHONE.search(text).group()) >= 8
        and re.search(r"[\s()/\-]|^\+|^00", _PHONE.search(text).group())
    ):
        return NUMBER_KIND
    if _RECORD_NUMBER.search(text):
        return NUMBER_KIND
    if _HONORIFIC.search(text) or _SURNAME_COMMA.match(text) or _has_given_name(text):
        return "a person's name"
    if (
        role in ("code", "id")
        and _CAPITALISED_WORDS.match(text)
        and not any(ch.isdigit() for ch in text)
    ):
        return "a person's name" if role == "id" or codes is not None else None
    return None


def screen_records(
    records: Iterable[Mapping[str, Any]],
    row_numbers: Sequence[int] | None = None,
    code_sets: Mapping[str, Collection[str]] | None = None,
    id_columns: Collection[str] = (),
    date_columns: Collection[str] = (),
    number_columns: Collection[str] = (),
    skip_columns: Collection[str] = (),
) -> list[Finding]:
    """Screen every cell of a table; return the findings (column, row, kind).

    Parameters
    ----------
    records : iterable of mapping
        One mapping per data row, column -> cell.
    row_numbers : sequence of int, optional
        Spreadsheet row of each record (default: index + 2, header on row 1).
    code_sets, id_columns, date_columns, number_columns
        The role of each column (see :func:`screen_value`); other columns are
        free text.
    skip_columns : collection of str
        Columns not screened (e.g. REDCap system columns).
    """
    code_sets = code_sets or {}
    findings = []
    seen: dict[tuple[str, str], str | None] = {}  # registry columns repeat their values
    for i, record in enumerate(records):
        row = row_numbers[i] if row_numbers is not None else i + 2
        for column, value in record.items():
            if column in skip_columns or value is None:
                continue
            if column in code_sets:
                role, codes = "code", code_sets[column]
            elif column in id_columns:
                role, codes = "id", None
            elif column in date_columns:
                role, codes = "date", None
            elif column in number_columns:
                role, codes = "number", None
            else:
                role, codes = "free_text", None
            memo = (str(column), value) if isinstance(value, str) else None
            if memo is not None and memo in seen:
                kind = seen[memo]
            else:
                kind = screen_value(value, role, codes)
                if memo is not None:
                    seen[memo] = kind
            if kind:
                findings.append(Finding(column=str(column), row=row, kind=kind))
    return findings


def refuse_identifiers(
    findings: Sequence[Finding], source: str | Path | None, limit: int = 20
) -> None:
    """Raise :class:`InputError` listing the findings (column, row, kind) if any.

    The message never contains a cell value.
    """
    if not findings:
        return
    shown = "; ".join(f.describe() for f in findings[:limit])
    more = f"; ... and {len(findings) - limit} more" if len(findings) > limit else ""
    raise InputError(
        f"nothing imported: {len(findings)} cell(s) look like direct identifiers "
        f"({shown}{more}); the registry keeps pseudonymous ids and year of birth only: "
        "remove them",
        source,
    )
