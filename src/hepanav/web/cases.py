"""The worklist from a watched folder: one sub-folder per case, images inside.

A case folder is named by a pseudonymous case id (never a patient name). Its
images (NIfTI/NRRD/MHA files, DICOM series folders) are the case's series; the
``series.yaml`` that ``hepanav phantom`` or a PACS fetch may leave beside them gives
each a description. The web application only lists what is there; reading and
validation happen in the same readers the CLI uses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from hepanav.core.errors import InputError

IMAGE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".mha", ".mhd")
CASE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass
class Series:
    """One image of a case: a file or a DICOM folder, relative to the case folder."""

    name: str
    kind: str  # "ct", "mask", "labels", "dicom"
    size_mb: float


@dataclass
class Case:
    case_id: str
    path: Path
    series: list[Series] = field(default_factory=list)

    @property
    def cts(self) -> list[Series]:
        return [s for s in self.series if s.kind in ("ct", "dicom")]

    @property
    def masks(self) -> list[Series]:
        return [s for s in self.series if s.kind in ("mask", "labels")]

    @property
    def single_masks(self) -> list[Series]:
        """Masks of one structure (tumour, zone, liver): label maps left out, since the
        pages have no field to choose a label in them."""
        return [s for s in self.series if s.kind == "mask"]

    def is_dicom(self, name: str) -> bool:
        """True when series ``name`` of this case is a DICOM series folder."""
        return any(s.name == name and s.kind == "dicom" for s in self.series)


def _kind(name: str) -> str:
    lower = name.lower()
    if "label" in lower:
        return "labels"
    if any(word in lower for word in ("tumor", "tumour", "ablation", "zone", "liver", "mask")):
        return "mask"
    return "ct"


def _series(folder: Path) -> list[Series]:
    found: list[Series] = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file() and entry.name.lower().endswith(IMAGE_SUFFIXES):
            found.append(Series(entry.name, _kind(entry.name), entry.stat().st_size / 2**20))
        elif entry.is_dir() and any(p.suffix.lower() in ("", ".dcm") for p in entry.iterdir()):
            size = sum(p.stat().st_size for p in entry.iterdir() if p.is_file())
            found.append(Series(entry.name, "dicom", size / 2**20))
    return found


def list_cases(cases_dir: Path) -> list[Case]:
    """Every case folder under ``cases_dir`` (sorted by id)."""
    if not cases_dir.is_dir():
        return []
    return [
        Case(p.name, p, _series(p))
        for p in sorted(cases_dir.iterdir())
        if p.is_dir() and CASE_ID.match(p.name)
    ]


def get_case(cases_dir: Path, case_id: str) -> Case:
    """One case by id.

    Raises
    ------
    InputError
        When the id is malformed or no such case folder exists.
    """
    if not CASE_ID.match(case_id):
        raise InputError("is not a valid case id", "case")
    path = cases_dir / case_id
    if not path.is_dir():
        raise InputError(f"no case {case_id!r} in the worklist", "case")
    return Case(case_id, path, _series(path))


def mask_path(case: Case, name: str, field: str) -> Path:
    """The path of a one-structure mask of ``case`` for the page field ``field``; refuses
    a label map (several structures: the pages do not choose labels)."""
    path = series_path(case, name)
    if any(s.name == name and s.kind == "labels" for s in case.series):
        raise InputError(
            f"{name} is a label map (several structures); choose a mask of one structure",
            field,
        )
    return path


def series_path(case: Case, name: str) -> Path:
    """The path of a series of ``case``; refuses names that are not one of its series."""
    if name not in {s.name for s in case.series}:
        raise InputError(f"case {case.case_id} has no series {name!r}", "series")
    return case.path / name
