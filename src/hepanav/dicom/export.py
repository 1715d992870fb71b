"""Turn a finished margin or plan result folder into DICOM objects (SEG, SR, SC).

Reads the numbers from ``margin.json`` / ``plan.json`` (their Pydantic schemas) and
the masks the pipelines wrote; nothing is recomputed. The objects are built by
:mod:`hepanav.imaging.dicomout` on the source CT series, whose patient and study
attributes they copy.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

from hepanav.core.errors import InputError


def export_result(result_dir: Path, out: Path, source: Path | None = None) -> list[Path]:
    """Write the DICOM objects of a margin or plan result; return the written files.

    Parameters
    ----------
    result_dir : Path
        Folder holding ``margin.json`` (hepanav margin) or ``plan.json`` (hepanav plan).
    out : Path
        Output folder for the ``.dcm`` files.
    source : Path, optional
        Folder with the CT series the result lies on (the post CT for margins, the
        planning CT for plans). Default: ``source_series.txt`` in the result folder,
        written by ``--dicom-out``/``--send`` runs.

    Raises
    ------
    InputError
        Not a result folder, no source series, masks not on the source series.
    """
    result_dir = Path(result_dir)
    if not result_dir.is_dir():
        raise InputError("result folder does not exist", result_dir)
    source = _source_folder(result_dir, source)
    if (result_dir / "margin.json").is_file():
        from hepanav.dicom.margin_objects import export_margin

        return export_margin(result_dir, out, source)
    if (result_dir / "plan.json").is_file():
        from hepanav.dicom.plan_objects import export_plan

        return export_plan(result_dir, out, source)
    raise InputError("holds neither margin.json nor plan.json", result_dir)


SOURCE_NOTE = "source_series.txt"


def _source_folder(result_dir: Path, source: Path | None) -> Path:
    if source is not None:
        return Path(source)
    note = result_dir / SOURCE_NOTE
    if note.is_file():
        path = Path(note.read_text().strip())
        if path.is_dir():
            return path
    raise InputError(
        "give the CT series the result was computed on with --source (a DICOM folder)",
        result_dir,
    )


def report_figures(report: Path) -> list[tuple[str, bytes]]:
    """The PNG figures embedded in an HTML report, as (name, PNG bytes), in page order."""
    if not report.is_file():
        return []
    html = report.read_text(encoding="utf-8")
    found = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    return [(f"figure{i + 1}", base64.b64decode(data)) for i, data in enumerate(found)]
