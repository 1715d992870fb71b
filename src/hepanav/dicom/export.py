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
    result_dir: Path,
    out: Path,
    source: Path | None = None,
    pre_source: Path | None = None,
    notes: list[str] | None = None,
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
    notes : list of str, optional
        Receives what the series reader said about the source series (slices dropped
        and why, identifiers recovered), to print beside the objects written.

    Raises
    ------
    InputError
        Not a result folder, no source series, masks not on the source series.
    """
    result_dir = Path(result_dir)
    if not result_dir.is_dir():
        raise InputError("result folder does not exist", result_dir)
    wanted = [k for k, given in (("source", source), ("pre", pre_source)) if given is None]
    recorded = read_sources(result_dir, wanted)
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

        return export_margin(result_dir, out, source, pre_source, notes)
    if (result_dir / "plan.json").is_file():
        from hepanav.dicom.plan_objects import export_plan

        return export_plan(result_dir, out, source, notes)
    raise InputError("holds neither margin.json nor plan.json", result_dir)


SOURCES_FILE = "dicom_sources.json"


def series_fingerprint(folder: Path) -> dict:
    """Identify the DICOM series in ``folder`` without naming it: the SHA-256 (first 16
    hex) of its SeriesInstanceUID(s) and its number of DICOM files, and that count.

    Headers only (``stop_before_pixels``); files that are not DICOM are not counted.
    """
    import hashlib

    import pydicom

    uids: set[str] = set()
    count = 0
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SeriesInstanceUID"])
        except (pydicom.errors.InvalidDicomError, OSError, ValueError):
            continue
        uid = ds.get("SeriesInstanceUID")
        if uid is None:
            continue
        uids.add(str(uid))
        count += 1
    text = "\n".join(sorted(uids)) + f"\n{count}"
    return {"series_sha256": hashlib.sha256(text.encode()).hexdigest()[:16], "files": count}


def write_sources(
    result_dir: Path, source: Path | None, pre: Path | None, pacs: dict | None = None
) -> None:
    """Record the DICOM folders a result lies on (for a later ``hepanav dicom export``)
    or, for ``--from-pacs`` runs, the UIDs of the study and series fetched.

    A folder is recorded by its path relative to the result folder (never an absolute
    path: it may name a patient) and a fingerprint of its series
    (:func:`series_fingerprint`), so that ``dicom export`` refuses a folder that has
    gone or changed instead of writing objects on another series.
    """
    import os

    from hepanav.core.atomic import write_text

    base = Path(result_dir).resolve()
    data: dict = {}
    for key, folder in (("source", source), ("pre", pre)):
        if folder is not None and Path(folder).is_dir():
            rel = os.path.relpath(Path(folder).resolve(), base)
            data[key] = {"path": Path(rel).as_posix(), **series_fingerprint(Path(folder))}
    if pacs:
        data["pacs"] = pacs
    write_text(Path(result_dir) / SOURCES_FILE, json.dumps(data, indent=1) + "\n")


def read_sources(result_dir: Path, keys=("source", "pre")) -> dict[str, Path]:
    """The source folders recorded in ``RESULT/dicom_sources.json`` (keys ``source``,
    ``pre``; only those in ``keys``: a folder given on the command line is not looked
    up), resolved against the result folder and checked against their fingerprint.

    Raises
    ------
    InputError
        Naming the file: not a JSON object, a recorded folder no longer there, or a
        series that changed (other SeriesInstanceUID or number of files).
    """
    path = Path(result_dir) / SOURCES_FILE
    if not path.is_file():
        return {}
    data = read_user_json(path, "DICOM sources file")  # bounded: size, nesting, numbers
    if not isinstance(data, dict):
        raise InputError("not a JSON object of source folders", path)
    found: dict[str, Path] = {}
    for key in keys:
        entry = data.get(key)
        if not isinstance(entry, dict):
            continue
        rel = entry.get("path")
        if not isinstance(rel, str) or Path(rel).is_absolute():
            raise InputError(f"{key}: path must be relative to the result folder", path)
        folder = Path(result_dir) / rel
        option = "--source" if key == "source" else "--pre"
        if not folder.is_dir():
            raise InputError(
                f"{key} series {rel} (relative to the result) is no longer there; give {option}",
                path,
            )
        now = series_fingerprint(folder)
        if now["series_sha256"] != entry.get("series_sha256") or now["files"] != entry.get("files"):
            raise InputError(
                f"{key} series {rel} has changed since the result (series UID or number of "
                f"files: {now['files']} now, {entry.get('files')} recorded); give {option}",
                path,
            )
        found[key] = folder
    return found


# InputRecord roles (hepanav.margin.pipeline, hepanav.planning.pipeline) of the image a
# result lies on ("source": the post CT of a pair, the CT of masks in one space, the
# planning CT) and of the pre-procedure CT of a pre/post margin ("pre").
_IMAGE_ROLES = {"source": ("post CT", "CT (figures)", "planning CT"), "pre": ("pre CT",)}
# Masks drawn on the pre CT of a pre/post margin; every other mask lies on the source.
_PRE_MASK_ROLES = ("tumor", "liver (pre)")


def recorded_series(result_dir: Path, records, result_name: str) -> dict[str, dict[str, str]]:
    """The Series Instance UIDs a result records for the image it lies on (key
    ``source``) and for the pre-procedure CT of a pre/post margin (key ``pre``), each
    UID -> where it is recorded (for the error line).

    ``records`` are the result's input records (``margin.json`` ``inputs``, ``plan.json``
    ``input_records``; :class:`hepanav.imaging.schema.InputRecord`), ``result_name`` the
    file they come from. Recorded are: the CT series fetched by ``--from-pacs`` /
    ``--from-pacs-post`` (``dicom_sources.json``), the series UID of a CT read from a
    DICOM folder (post CT, one-space ``--ct``, planning CT; pre CT for ``pre``), and,
    only when no CT series is recorded, the series a DICOM SEG/RTSTRUCT mask was drawn on
    (``referenced_series_uid``). Empty for a result computed from NIfTI files only.
    """
    found: dict[str, dict[str, str]] = {"source": {}, "pre": {}}
    drawn_on: dict[str, dict[str, str]] = {"source": {}, "pre": {}}
    path = Path(result_dir) / SOURCES_FILE
    pacs = read_user_json(path, "DICOM sources file") if path.is_file() else None
    pacs = pacs.get("pacs") if isinstance(pacs, dict) else None
    if isinstance(pacs, dict):
        pre = pacs.get("pre")
        for key, entry in (("source", pacs), ("pre", pre if isinstance(pre, dict) else {})):
            uid = entry.get("ct_series_instance_uid")
            if isinstance(uid, str) and uid:
                found[key].setdefault(uid, f"the CT fetched from the PACS ({SOURCES_FILE})")
    pair = any(r.role == "post CT" for r in records)
    for r in records:
        image = next((k for k, roles in _IMAGE_ROLES.items() if r.role in roles), None)
        if image is not None and r.series_instance_uid:
            found[image].setdefault(r.series_instance_uid, f"the {r.role} in {result_name}")
        elif image is None and r.referenced_series_uid:
            key = "pre" if pair and r.role in _PRE_MASK_ROLES else "source"
            drawn_on[key].setdefault(
                r.referenced_series_uid, f"the series the {r.role} mask was drawn on"
            )
    return {key: found[key] or drawn_on[key] for key in found}


def check_recorded_series(
    result_dir: Path, records, result_name: str, series, key: str, notes: list[str] | None
) -> None:
    """Refuse a source series other than the one the result records (:func:`recorded_series`).

    ``series`` is the :class:`hepanav.imaging.dicomout.SourceSeries` given (``key``
    'source': ``--source``; 'pre': ``--pre``). When the result records no series (NIfTI
    inputs, an anonymised series without Series Instance UID), a note saying that the
    series could not be verified is added to ``notes``; the callers' overlap check is all.

    Raises
    ------
    InputError
        Naming the option, the series UID given and the one(s) recorded: the objects would
        go into another study or frame of reference than the result's.
    """
    recorded = recorded_series(result_dir, records, result_name)[key]
    option = "--source" if key == "source" else "--pre"
    if not recorded:
        if notes is not None:
            what = "image the result lies on" if key == "source" else "pre-procedure CT"
            notes.append(
                f"{option} series {series.series_uid} could not be verified against the "
                f"result: it records no DICOM series for the {what} (NIfTI inputs, or a "
                "series without Series Instance UID)"
                + (
                    "; only its overlap with the result's masks was checked"
                    if key == "source"
                    else ""
                )
            )
        return
    if series.series_uid in recorded:
        return
    listed = " or ".join(f"{uid} ({where})" for uid, where in recorded.items())
    what = (
        "the series the result was measured on"
        if key == "source"
        else "the result's pre-procedure CT series"
    )
    wrong = (
        "the objects would go into another study or frame of reference"
        if key == "source"
        else "the registration objects would map from another image"
    )
    raise InputError(
        f"series {series.series_uid} ({series.folder}) is not {what}: {listed}; {wrong}. "
        "Give the folder of that series; nothing was written",
        option,
    )


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


def write_report_captures(
    report: Path, source, out: Path, description: str, prefix: str, warnings=()
):
    """One Secondary Capture per figure of ``report`` (a new series on ``source``'s
    patient and study), written as ``out/<prefix>_figure<N>.dcm``; returns the paths.
    ``warnings`` (texts) go into each one's Image Comments."""
    import highdicom as hd

    from hepanav.imaging.dicomout import build_secondary_capture, write_dataset

    series_uid = hd.UID()
    written = []
    for i, (_, png) in enumerate(report_figures(report)):
        sc = build_secondary_capture(
            png, source.first, series_uid, i + 1, description, warnings=warnings
        )
        written.append(write_dataset(sc, out, f"{prefix}_figure{i + 1}"))
    return written
