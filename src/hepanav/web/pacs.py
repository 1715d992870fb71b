"""The PACS worklist: studies listed from the configured PACS, fetched as cases.

PACS settings are the DICOM package's (``HEPANAV_PACS_*``: DICOMweb or DIMSE, AE titles,
credentials, TLS); nothing about the PACS is typed into a page. Lists show study UID,
date, modalities and description: no patient attributes.
"""

from __future__ import annotations

import hashlib
from typing import Any


def pacs_configured() -> bool:
    """True when a PACS is configured (a DICOMweb URL or a DIMSE host)."""
    from hepanav.dicom.settings import PacsSettings

    settings = PacsSettings()
    return bool(settings.url or settings.host)


def list_studies() -> tuple[list[Any], str | None]:
    """The PACS's studies, or an empty list and the one-line reason."""
    from hepanav.core.errors import HepaNavError

    try:
        if not pacs_configured():
            return [], "no PACS is configured (HEPANAV_PACS_URL or HEPANAV_PACS_HOST)"
        from hepanav.dicom.pacs import open_pacs

        return open_pacs().find_studies(), None
    except HepaNavError as exc:
        return [], " ".join(str(exc).split())


def case_id_for(study_uid: str) -> str:
    """A pseudonymous, stable case id for a study (hash of its Study Instance UID)."""
    return "pacs-" + hashlib.sha256(study_uid.encode()).hexdigest()[:12]


def fetch_steps(study_uid: str) -> list[tuple[str, list[str]]]:
    """Job steps that retrieve every series of a study into ``{work}/series``."""
    return [
        ("Retrieving the study from PACS", ["pacs", "get", study_uid, "--out", "{work}/series"])
    ]
