"""Turn a finished margin or plan result folder into DICOM objects (SEG, SR, SC).

Reads the numbers from ``margin.json`` / ``plan.json`` (their Pydantic schemas) and
the masks the pipelines wrote; nothing is recomputed. The objects are built by
:mod:`hepanav.imaging.dicomout` on the source CT series, whose patient and study
attributes they copy.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

from hepanav.core.errors import InputError
from hepanav.core.validation import read_user_json


def export_result(
    result_dir: Path, out: Path, source: Path | None = None, pre_source: Path | None = None
) -> list[Path]:
    """Write the DICOM objects of a margin or plan result; return the written files.

    Parameters
    ----------
    result_dir : Path
        Folder holding ``margin.json`` (hepanav margin) or ``plan.json`` (hepanav plan).
    out : Path
        Output folder for the ``.dcm`` files.
    source : Path, optional
        Folder with the CT series the result lies on (the post CT for margins, the
        planning CT for plans). Default: the one named in ``dicom_sources.json`` in
        the result folder, written by ``--dicom-out``/``--send`` runs.
    pre_source : Path, optional
        Folder with the pre-procedure CT series (margin pre/post mode): with it, the
        registration is also written as Spatial Registration and Deformable Spatial
        Registration objects. Default: from ``dicom_sources.json``.

    Raises
    ------
    InputError
        Not a result folder, no source series, masks not on the source series.
    """
    result_dir = Path(result_dir)
    if not result_dir.is_dir():
        raise InputError("result folder does not exist", result_dir)
    recorded = read_sources(result_dir)
    if source is None and "source" not in recorded and (result_dir / "plan.json").is_file():
        plan = read_user_json(result_dir / "plan.json", "plan.json")
        inputs = plan.get("inputs") if isinstance(plan, dict) else None
        ct = inputs.get("ct") if isinstance(inputs, dict) else None
        if isinstance(ct, str) and Path(ct).is_dir():
            recorded["source"] = Path(ct)  # hepanav plan records its --ct
    source = _source_folder(result_dir, source or recorded.get("source"))
    pre_source = pre_source or recorded.get("pre")
    if (result_dir / "margin.json").is_file():
        from hepanav.dicom.margin_objects import export_margin

        return export_margin(result_dir, out, source, pre_source)
    if (result_dir / "plan.json").is_file():
        from hepanav.dicom.plan_objects import export_plan

        return export_plan(result_dir, out, source)
    raise InputError("holds neither margin.json nor plan.json", result_dir)


SOURCES_FILE = "dicom_sources.json"


def write_sources(
    result_dir: Path, source: Path | None, pre: Path | None, pacs: dict | None = None
) -> None:
    """Record the DICOM folders a result lies on (for a later ``hepanav dicom export``)
    or, for ``--from-pacs`` runs, the UIDs of the study and series fetched."""
    from hepanav.core.atomic import write_text

    data: dict = {}
    if source is not None:
        data["source"] = str(Path(source).resolve())
    if pre is not None and Path(pre).is_dir():
        data["pre"] = str(Path(pre).resolve())
    if pacs:
        data["pacs"] = pacs
    write_text(Path(result_dir) / SOURCES_FILE, json.dumps(data, indent=1) + "\n")


def read_sources(result_dir: Path) -> dict[str, Path]:
    path = Path(result_dir) / SOURCES_FILE
    if not path.is_file():
        return {}
    data = read_user_json(path, "DICOM sources file")  # bounded: size, nesting, numbers
    if not isinstance(data, dict):
        raise InputError("not a JSON object of source folders", path)
    return {
        k: Path(v) for k, v in data.items() if isinstance(v, str) and Path(v).is_dir()
    }


def _source_folder(result_dir: Path, source: Path | None) -> Path:
    if source is not None:
        return Path(source)
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


def write_report_captures(report: Path, source, out: Path, description: str, prefix: str):
    """One Secondary Capture per figure of ``report`` (a new series on ``source``'s
    patient and study), written as ``out/<prefix>_figure<N>.dcm``; returns the paths."""
    import highdicom as hd

    from hepanav.imaging.dicomout import build_secondary_capture, write_dataset

    series_uid = hd.UID()
    written = []
    for i, (_, png) in enumerate(report_figures(report)):
        sc = build_secondary_capture(png, source.first, series_uid, i + 1, description)
        written.append(write_dataset(sc, out, f"{prefix}_figure{i + 1}"))
    return written
