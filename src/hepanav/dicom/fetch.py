"""Fetch a study from the PACS into a folder, one sub-folder per series."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from hepanav.core.errors import InputError
from hepanav.dicom.pacs import Pacs, SeriesInfo, open_pacs


@dataclass
class FetchedSeries:
    """One retrieved series: what the PACS said about it, where its files are."""

    info: SeriesInfo
    folder: Path
    files: list[Path]


def fetch_study(
    key: str,
    out: Path,
    series: list[str] | None = None,
    pacs: Pacs | None = None,
    option: str = "pacs get KEY",
) -> list[FetchedSeries]:
    """Retrieve a study (Study Instance UID or Accession Number) into ``out``.

    Each series goes to ``out/<Modality>_<SeriesInstanceUID>/``. ``series`` limits
    the retrieval to those Series Instance UIDs. ``option`` names where the user gave
    ``key`` in the errors (default: the argument of ``hepanav pacs get``).

    Raises
    ------
    InputError
        PACS unreachable/refusing/timing out, no such study, an unknown series UID.
    """
    pacs = pacs or open_pacs()
    study_uid = pacs.resolve_study(key, option)
    listed = pacs.find_series(study_uid)
    if series:
        known = {s.series_uid for s in listed}
        unknown = [uid for uid in series if uid not in known]
        if unknown:
            raise InputError(f"series {unknown[0]} is not in study {study_uid}", "--series")
        listed = [s for s in listed if s.series_uid in series]
    fetched = []
    for info in listed:
        folder = Path(out) / f"{info.modality or 'OT'}_{info.series_uid}"
        files = pacs.get_series(study_uid, info.series_uid, folder)
        if not files:
            raise InputError(
                f"the PACS returned no instance of series {info.series_uid}",
                f"PACS {pacs.settings.where()}",
            )
        fetched.append(FetchedSeries(info, folder, files))
    return fetched


def dicom_files(paths: Iterable[Path]) -> list[Path]:
    """Files given and files under given folders (recursive), sorted; missing paths refused.

    The manifest of a HepaNav output set (:data:`hepanav.core.atomic.MANIFEST`) is skipped.
    """
    from hepanav.core.atomic import MANIFEST

    files: list[Path] = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            # not the manifest of a HepaNav output set (e.g. a pseudonymised folder)
            files += sorted(p for p in path.rglob("*") if p.is_file() and p.name != MANIFEST)
        elif path.is_file():
            files.append(path)
        else:
            raise InputError("file or folder does not exist", path)
    if not files:
        raise InputError("no files to send", ", ".join(str(p) for p in paths))
    return files
