"""Coded concepts HepaNav writes (SCT/DCM where they exist, private ``99HEPANAV`` otherwise).

The table lives in ``data/codes.yaml`` with its sources; docs/dicom.md lists it.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import yaml
from pydicom.dataset import Dataset
from pydicom.sr.coding import Code

PRIVATE_SCHEME = "99HEPANAV"

# UCUM units (PS3.16 CID 7181 and UCUM, https://ucum.org): code value = UCUM symbol.
UNITS = {
    "mm": Code("mm", "UCUM", "millimeter"),
    "mm2": Code("mm2", "UCUM", "square millimeter"),
    "ml": Code("ml", "UCUM", "milliliter"),
    "ratio": Code("1", "UCUM", "no units"),
    "deg": Code("deg", "UCUM", "degree"),
    "s": Code("s", "UCUM", "second"),
}


@cache
def _table() -> dict:
    text = resources.files("hepanav.imaging.dicomout").joinpath("data/codes.yaml").read_text()
    return yaml.safe_load(text)


def code(name: str) -> Code:
    """The coded concept called ``name`` in ``data/codes.yaml`` (standard or private).

    Raises
    ------
    KeyError
        When ``name`` is not in the table (a programming error, not a user one).
    """
    table = _table()
    if name in table["standard"]:
        entry = table["standard"][name]
        return Code(entry["value"], entry["scheme"], entry["meaning"])
    entry = table["private"][name]
    return Code(entry["value"], PRIVATE_SCHEME, entry["meaning"])


def private_codes() -> dict[str, dict]:
    """Every private code: name -> {value, meaning, definition} (for docs and tests)."""
    return dict(_table()["private"])


def standard_codes() -> dict[str, dict]:
    """Every standard code used: name -> {scheme, value, meaning}."""
    return dict(_table()["standard"])


def coding_scheme_identification() -> Dataset:
    """One item of the Coding Scheme Identification Sequence declaring ``99HEPANAV``."""
    scheme = _table()["scheme"]
    item = Dataset()
    item.CodingSchemeDesignator = scheme["designator"]
    item.CodingSchemeName = scheme["name"]
    item.CodingSchemeVersion = scheme["version"]
    item.CodingSchemeResponsibleOrganization = scheme["responsible_organization"]
    return item
