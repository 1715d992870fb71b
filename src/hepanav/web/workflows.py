"""What the pages run: job steps for the imaging workflows, and the registry/therapy calls.

The imaging workflows become lists of ``hepanav`` command lines (see
``hepanav.core.jobs``), the same commands a person types, so the web application
and the CLI give the same result for the same input.
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from typing import Any

from hepanav.core.errors import InputError
from hepanav.web.cases import Case, mask_path, series_path

Point = tuple[float, float, float]


def parse_point(text: str, field: str) -> Point:
    """``"x,y,z"`` in LPS mm (what the viewer's click fills in) as three finite floats.

    Raises
    ------
    InputError
        Naming ``field`` when the text is not three finite numbers.
    """
    parts = [p.strip() for p in text.replace(";", ",").split(",")]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 3 or not all(math.isfinite(v) and abs(v) < 1e5 for v in values):
        raise InputError("expected three numbers x,y,z in LPS mm", field)
    return values  # type: ignore[return-value]


def parse_points(text: str, field: str) -> list[Point]:
    """Several points ``"x,y,z; x,y,z"`` (LPS mm); empty text gives an empty list."""
    return [parse_point(part, field) for part in text.split(";") if part.strip()]


def _seed(point: Point) -> str:
    return ",".join(f"{v:.2f}" for v in point)


def _segment_step(
    structure: str, ct: Path, seed: Point, include: list[Point], exclude: list[Point], out: str
) -> tuple[str, list[str]]:
    label = {"tumor": "the tumour (pre CT)", "ablation": "the ablation zone (post CT)"}
    argv = ["segment", structure, "--ct", str(ct), "--seed", _seed(seed), "--out", out]
    for point in include:
        argv += ["--include", _seed(point)]
    for point in exclude:
        argv += ["--exclude", _seed(point)]
    return (f"Segmenting {label[structure]}", argv)


def segment_steps(
    case: Case,
    *,
    pre: str,
    post: str,
    tumor_seed: Point,
    ablation_seed: Point,
    edits: dict[str, list[Point]] | None = None,
) -> list[tuple[str, list[str]]]:
    """Job steps that segment tumour and zone from their seeds, for inspection.

    ``edits`` holds ``tumor_include``, ``tumor_exclude``, ``zone_include``,
    ``zone_exclude`` point lists (LPS mm) that correct the growing.
    """
    edits = edits or {}
    return [
        _segment_step(
            "tumor",
            series_path(case, pre),
            tumor_seed,
            edits.get("tumor_include", []),
            edits.get("tumor_exclude", []),
            "{work}/tumor.nii.gz",
        ),
        _segment_step(
            "ablation",
            series_path(case, post),
            ablation_seed,
            edits.get("zone_include", []),
            edits.get("zone_exclude", []),
            "{work}/zone.nii.gz",
        ),
    ]


def margin_steps(
    case: Case,
    *,
    pre: str,
    post: str,
    tumor_seed: Point | None,
    ablation_seed: Point | None,
    tumor_mask: str | None,
    ablation_mask: str | None,
    liver_pre: str | None,
    liver_post: str | None,
    tumor_path: Path | None = None,
    zone_path: Path | None = None,
) -> list[tuple[str, list[str]]]:
    """Job steps for the ablation-margin workflow of one case.

    Each of tumour and zone comes from a seed click (``hepanav segment``) or from a mask
    already in the case folder. Liver masks are optional (without them the registration is
    driven by the region around the zone).

    Raises
    ------
    InputError
        When a series is not in the case, or neither a seed nor a mask is given.
    """
    pre_path, post_path = series_path(case, pre), series_path(case, post)
    steps: list[tuple[str, list[str]]] = []
    if tumor_seed is not None:
        steps.append(
            (
                "Segmenting the tumour (pre CT)",
                [
                    "segment",
                    "tumor",
                    "--ct",
                    str(pre_path),
                    "--seed",
                    _seed(tumor_seed),
                    "--out",
                    "{work}/tumor.nii.gz",
                ],
            )
        )
        tumor = "{work}/tumor.nii.gz"
    elif tumor_path is not None:
        tumor = str(tumor_path)
    elif tumor_mask:
        tumor = str(mask_path(case, tumor_mask, "Tumour mask (pre)"))
    else:
        raise InputError("click the tumour (or choose a tumour mask)", "tumour")
    if ablation_seed is not None:
        steps.append(
            (
                "Segmenting the ablation zone (post CT)",
                [
                    "segment",
                    "ablation",
                    "--ct",
                    str(post_path),
                    "--seed",
                    _seed(ablation_seed),
                    "--out",
                    "{work}/zone.nii.gz",
                ],
            )
        )
        zone = "{work}/zone.nii.gz"
    elif zone_path is not None:
        zone = str(zone_path)
    elif ablation_mask:
        zone = str(mask_path(case, ablation_mask, "Zone mask (post)"))
    else:
        raise InputError("click the ablation zone (or choose a zone mask)", "ablation zone")
    margin = [
        "margin",
        "--pre",
        str(pre_path),
        "--post",
        str(post_path),
        "--tumor",
        tumor,
        "--ablation",
        zone,
        "--out",
        "{work}/margin",
    ]
    if liver_pre and liver_post:
        margin += [
            "--liver-pre",
            str(mask_path(case, liver_pre, "Liver mask (pre)")),
            "--liver-post",
            str(mask_path(case, liver_post, "Liver mask (post)")),
        ]
    steps.append(("Registering and measuring the margin", margin))
    return steps


#: The /fluoro form's "Bit depth" choices (``hepanav fluoro analyze --bit-depth``).
BIT_DEPTHS = ("auto", "8", "12", "16")


def parse_bit_depth(text: str) -> int | None:
    """The /fluoro form's bit depth: ``None`` for ``auto`` (from the pixel type), else 8,
    12 or 16.

    Raises
    ------
    InputError
        Naming the field "Bit depth" for anything else (checked before a job starts).
    """
    choice = text.strip().lower()
    if choice not in BIT_DEPTHS:
        raise InputError(
            f"choose automatic, 8, 12 or 16 bit (not {text.strip()[:20]!r})", "Bit depth"
        )
    return None if choice == "auto" else int(choice)


def check_recording(nir: Path, bit_depth: int | None, data_dir: Path, filename: str | None) -> None:
    """Open an uploaded NIR recording and decide its bit depth as the job will
    (:func:`hepanav.fluorescence.sources.frame_pairs`, first frame only), so that a
    recording the analysis would refuse (not a video, an 8-bit codec with 16 bit
    chosen) is refused before a job starts.

    Raises
    ------
    InputError
        In the page's words: the file by the name it was uploaded with, the form's
        field labels (``--bit-depth`` is "the bit depth").
    """
    from hepanav.fluorescence.sources import frame_pairs
    from hepanav.web.messages import for_the_page, upload_name

    try:
        _, pairs = frame_pairs(nir, bit_depth=bit_depth)
    except InputError as exc:
        uploads = {nir: upload_name(filename)}
        raise InputError(
            for_the_page(str(exc), data_dir, ["fluoro", "analyze"], uploads=uploads)
        ) from None
    pairs.close()


def fluoro_steps(nir: Path, bit_depth: int | None) -> list[tuple[str, list[str]]]:
    """Job steps that analyse an uploaded NIR recording (``hepanav fluoro analyze``)."""
    argv = ["fluoro", "analyze", "--nir", str(nir)]
    if bit_depth is not None:
        argv += ["--bit-depth", str(bit_depth)]
    return [("Analysing fluorescence", [*argv, "--out", "{work}/fluoro"])]


def run_therapy(case_text: str, scratch: Path) -> dict[str, Any]:
    """Evaluate a therapy case given as YAML text; returns the report as a dict.

    Raises
    ------
    InputError
        When the text is not a valid case.
    """
    from hepanav.core.validation import parse_yaml
    from hepanav.therapy.cases import case_from_data
    from hepanav.therapy.engine import evaluate_case
    from hepanav.therapy.rules import load_rules

    # The parser of case files: bounded, finite numbers, no key given twice.
    data = parse_yaml(case_text, "case")
    case = case_from_data(data, "case")
    return evaluate_case(case, load_rules()).model_dump(mode="json")


def therapy_example() -> str:
    """A synthetic example case (YAML) to start the therapy form from."""
    from importlib.resources import files

    examples = sorted(
        p
        for p in files("hepanav.therapy").joinpath("data", "examples").iterdir()
        if p.name.endswith(".yaml")
    )
    return examples[0].read_text(encoding="utf-8") if examples else ""


def registry_summary(url: str | None) -> dict[str, Any]:
    """Row counts of the registry's tables for the dashboard (no patient-level rows)."""
    from hepanav.registry.dataset import table_counts
    from hepanav.registry.db import open_registry
    from hepanav.registry.settings import resolve_database_url

    try:
        engine = open_registry(resolve_database_url(url))
    except InputError as exc:
        return {"error": " ".join(str(exc).split())}
    try:
        return {"counts": table_counts(engine)}
    except InputError as exc:
        return {"error": " ".join(str(exc).split())}
    finally:
        engine.dispose()


def registry_import_file(
    path: Path, url: str | None, *, data_dir: Path, filename: str | None = None
) -> list[str]:
    """Import an uploaded template; returns what was wrong in the page's words (empty on
    success).

    Parameters
    ----------
    path : Path
        The saved upload (a random name in the data folder's ``uploads/``).
    url : str, optional
        The registry database.
    data_dir : Path
        The server's data folder (paths in it never reach the page).
    filename : str, optional
        The name the file was uploaded with; messages name the file so
        (:func:`hepanav.web.messages.upload_name`), never by its server path.

    Returns
    -------
    list of str
        One line per bad row (``row 2, procedure_date: is not a valid calendar date
        ...``), or one line for a file that cannot be imported at all
        (``junk.xlsx: cannot read the workbook (not a valid .xlsx file)``).
    """
    from hepanav.registry.db import open_registry
    from hepanav.registry.importer import ImportRejected, import_file
    from hepanav.registry.settings import resolve_database_url
    from hepanav.web.messages import for_the_page, upload_name

    def words(text: str) -> str:
        return for_the_page(text, data_dir, uploads={path: upload_name(filename)})

    engine = open_registry(resolve_database_url(url))
    try:
        import_file(engine, path, "outcomes")
    except ImportRejected as exc:
        if exc.errors:
            return [words(f"row {e.row}, {e.column}: {e.reason}") for e in exc.errors]
        return [words(_not_imported(exc))]
    except InputError as exc:
        return [words(_not_imported(exc))]
    finally:
        engine.dispose()
    return []


def _not_imported(exc: InputError) -> str:
    """``source: reason`` without the importer's "nothing imported: " (the page says it)."""
    reason = exc.reason.removeprefix("nothing imported: ")
    return f"{exc.source}: {reason}" if exc.source else reason


def plan_steps(
    case: Case, *, ct: str, tumor: str, labels: str | None, margin_mm: float, device: str
) -> list[tuple[str, list[str]]]:
    """Job steps for multi-probe planning on one case (``hepanav plan``).

    Raises
    ------
    InputError
        When a series is not in the case, the margin is not a finite number in 0-20 mm,
        or the device is not a built-in one.
    """
    from hepanav.planning.devices import builtin_devices

    if not (math.isfinite(margin_mm) and 0 <= margin_mm <= 20):
        raise InputError("must be between 0 and 20 mm", "margin")
    if device not in builtin_devices():
        raise InputError(f"unknown device {device!r}", "device")
    argv = [
        "plan",
        "--ct",
        str(series_path(case, ct)),
        "--tumor",
        str(mask_path(case, tumor, "Tumour mask")),
        "--margin",
        f"{margin_mm:g}",
        "--device",
        device,
        "--out",
        "{work}/plan",
    ]
    if labels:
        argv += ["--labels", str(series_path(case, labels))]
    return [("Planning needle trajectories", argv)]


def placement_steps(case: Case, *, plan_json: Path, control_ct: str) -> list[tuple[str, list[str]]]:
    """Job steps for the placement check of a finished plan on a control CT."""
    return [
        (
            "Finding the needles on the control CT",
            [
                "verify-placement",
                "--plan",
                str(plan_json),
                "--control-ct",
                str(series_path(case, control_ct)),
                "--out",
                "{work}/placement",
            ],
        )
    ]


def needles_connectome(plan: dict[str, Any]) -> dict[str, Any]:
    """The plan's needles as a NiiVue connectome (nodes = entry and tip, edges = needles).

    NiiVue draws in RAS world millimetres: x and y of the LPS points are negated. An
    infeasible plan gives no needles (they are not a placement plan).
    """
    names, xs, ys, zs, colours, sizes = [], [], [], [], [], []
    for needle in plan.get("needles", []) if plan.get("feasible", False) else []:
        for end, key in (("entry", "entry_lps_mm"), ("tip", "tip_lps_mm")):
            x, y, z = needle[key]
            names.append(f"N{needle['needle']} {end}")
            xs.append(-x)
            ys.append(-y)
            zs.append(z)
            colours.append(1 if end == "entry" else 2)
            sizes.append(2 if end == "entry" else 3)
    n = len(names)
    edges = [[0.0] * n for _ in range(n)]
    for i in range(0, n, 2):
        edges[i][i + 1] = edges[i + 1][i] = 1.0
    return {
        "name": "needles",
        "nodeColormap": "warm",
        "nodeColormapNegative": "winter",
        "nodeMinColor": 1,
        "nodeMaxColor": 2,
        "nodeScale": 2,
        "edgeColormap": "warm",
        "edgeMin": 0,
        "edgeMax": 1,
        "edgeScale": 3,
        "nodes": {"names": names, "X": xs, "Y": ys, "Z": zs, "Color": colours, "Size": sizes},
        "edges": [v for row in edges for v in row],
    }


def pacs_blocker(case: Case | None, kind: str, params: dict[str, Any]) -> str | None:
    """Why the DICOM objects of a finished result cannot go to PACS, or ``None``.

    The SEG / SR / secondary captures reference the CT series the result was computed on
    (the post CT of a margin, the planning CT of a plan): that CT must be a DICOM series
    of the case, and a PACS must be configured. Checked before a sign-off starts, so a
    sign-off that cannot store to PACS is refused before anything is written.
    """
    from hepanav.web.pacs import pacs_configured

    name = params.get("post") if kind == "margin" else params.get("ct")
    if case is None or not name or not case.is_dicom(name):
        what = "post CT" if kind == "margin" else "planning CT"
        return (
            f"the CTs of this case are not DICOM ({what} {name or '?'}): "
            "the DICOM objects would have nothing to reference"
        )
    if not pacs_configured():
        return "no PACS is configured on this server (ask its administrator)"
    return None


def signoff_steps(
    result_dir: Path,
    *,
    kind: str,
    source: Path | None,
    send_to_pacs: bool,
    registry: dict[str, str] | None,
    registry_db: str | None,
    signed_by: str | None = None,
    job_id: int | None = None,
) -> list[tuple[str, list[str]]]:
    """Job steps that store a finished result: DICOM objects to PACS, figures to the registry.

    A sign-off is the clinician's decision on a result they reviewed (its report shows
    whether the MAM is decisive): it replaces a margin already stored for the lesion and
    stores a NOT decisive one, each change in the registry's history with the signing
    user and the job (``--upsert --accept-not-decisive --user --reason``).

    Atomic where it can be: what is known beforehand (the CT is a DICOM series, a PACS is
    configured; :func:`pacs_blocker`) is checked by the page before this job exists, so
    such a sign-off is refused with nothing written. Then the DICOM objects are written
    locally first (a failure stores nothing), then sent (``hepanav pacs send`` names what
    was stored if it fails part-way), and only then do the margin figures go to the
    registry, in one transaction: a failed PACS part leaves the registry unchanged. The
    sign-off is recorded only when every step succeeded.

    Parameters
    ----------
    result_dir : Path
        The finished job's ``result`` folder.
    kind : str
        ``"margin"`` or ``"plan"``.
    source : Path, optional
        The CT series folder (DICOM) the result was computed on, for the UIDs.
    registry : dict, optional
        ``patient_id``, ``procedure_id``, ``lesion_id`` (pseudonymous) for a margin.
    """
    sub = result_dir / ("margin" if kind == "margin" else "plan")
    steps: list[tuple[str, list[str]]] = []
    if send_to_pacs:
        export = ["dicom", "export", str(sub), "--out", "{work}/dicom"]
        if source is not None:
            export += ["--source", str(source)]
        steps.append(("Writing DICOM SEG / SR / SC", export))
        steps.append(("Storing to PACS", ["pacs", "send", "{work}/dicom"]))
    if registry and kind == "margin":
        argv = [
            "registry",
            "import-margin",
            str(sub / "margin.json"),
            "--patient-id",
            registry["patient_id"],
            "--procedure-id",
            registry["procedure_id"],
            "--lesion-id",
            registry["lesion_id"],
        ]
        argv += [
            "--upsert",
            "--accept-not-decisive",
            "--reason",
            f"web sign-off of job {job_id}" if job_id else "web sign-off",
        ]
        if signed_by:
            argv += ["--user", signed_by]
        if registry_db:
            argv += ["--db", registry_db]
        steps.append(("Storing the margin in the registry", argv))
    if not steps:
        raise InputError("choose PACS and/or the registry to store the result in", "sign-off")
    return steps


def registry_dashboard(
    url: str | None,
    *,
    date_from: str | None = None,
    date_to: str | None = None,
    procedure_type: str | None = None,
    centre: str | None = None,
) -> dict[str, Any]:
    """The registry's audit figures for a period, procedure type and centre.

    Computed by :func:`hepanav.registry.audit.dashboard` (the audit's own functions:
    STROBE-style flow, complication rates with denominators, reverse Kaplan-Meier
    follow-up, R0 and technical success with Wilson intervals, LTP by margin category
    with death competing), never pooled across procedure types. Aggregates only.

    Raises
    ------
    InputError
        For dates that are not YYYY-MM-DD.
    """
    import datetime as dt

    from hepanav.registry.audit import dashboard
    from hepanav.registry.db import open_registry
    from hepanav.registry.settings import resolve_database_url

    def day(text: str | None, field: str):
        if not text:
            return None
        try:
            return dt.date.fromisoformat(text)
        except ValueError:
            raise InputError("use YYYY-MM-DD", field) from None

    start, end = day(date_from, "from"), day(date_to, "to")
    engine = open_registry(resolve_database_url(url))
    key = (url, start, end, procedure_type or None, centre or None)
    try:
        stamp = _registry_stamp(engine)
        with _DASHBOARD_LOCK:
            cached = _DASHBOARD_CACHE.get(key)
        if cached is not None and cached[0] == stamp and time.monotonic() - cached[1] < CACHE_S:
            return cached[2]
        report = dashboard(
            engine,
            date_from=start,
            date_to=end,
            procedure_type=procedure_type or None,
            centre=centre or None,
        )
    finally:
        engine.dispose()
    data = report.model_dump(mode="json")
    rows = []
    for step in report.flow:
        if step.step.startswith("first treated by "):
            kind = step.step.removeprefix("first treated by ")
            row: dict[str, Any] = {
                "procedure_type": kind,
                "patients": step.patients,
                "lesions": step.lesions,
            }
            if kind == "resection" and report.outcomes.resection is not None:
                row["r0"] = report.outcomes.resection.r0_per_lesion.model_dump()
            if kind == "ablation" and report.outcomes.ablation is not None:
                row["technical_success"] = report.outcomes.ablation.technical_success.model_dump()
                if report.mam_mm_quantiles:
                    row["mam_median_mm"] = report.mam_mm_quantiles["p50"]
                if report.mam_decisiveness is not None:
                    row["mam_decisiveness"] = report.mam_decisiveness.model_dump()
            rows.append(row)
    board = {
        "rows": rows,
        "report": data,
        "options": {"procedure_types": report.procedure_types, "centres": report.centres},
        "computed_at": dt.datetime.now(dt.UTC).strftime("%H:%M:%S UTC"),
    }
    with _DASHBOARD_LOCK:
        if len(_DASHBOARD_CACHE) > 64:
            _DASHBOARD_CACHE.clear()
        _DASHBOARD_CACHE[key] = (stamp, time.monotonic(), board)
    return board


# The dashboard's figures per selection, reused while the registry is unchanged: the
# stamp is the row count of every table plus the edit history's (every import, record
# change and deletion through HepaNav changes it), and at most CACHE_S old (changes made
# outside HepaNav show within that time).
CACHE_S = 60.0
_DASHBOARD_CACHE: dict[tuple, tuple] = {}
_DASHBOARD_LOCK = threading.Lock()


def _registry_stamp(engine) -> tuple:
    from sqlalchemy import func, select

    from hepanav.registry.dataset import table_counts
    from hepanav.registry.models import ImportBatch, RecordChange

    with engine.connect() as conn:
        changes = conn.execute(select(func.count(), func.max(RecordChange.id))).one()
        last_import = conn.execute(select(func.max(ImportBatch.id))).scalar()
    return (tuple(sorted(table_counts(engine).items())), tuple(changes), last_import)


DOSE_FIELDS = {
    "--drug": "drug",
    "--regimen": "regimen",
    "--dose": "dose",
    "--unit": "unit",
    "--per": "per",
    "--route": "route",
    "--height-cm": "height (cm)",
    "--weight-kg": "weight (kg)",
}


def dose_options() -> dict[str, Any]:
    """Choices of the dose-check form: sourced regimens and the historical table's drugs."""
    from hepanav.therapy.dose import load_dose_table
    from hepanav.therapy.regimens import load_regimens

    regimens = load_regimens().regimens
    table = load_dose_table()
    return {
        "regimens": [
            (key, f"{key}: {r.drug}, {r.unit} per {'session' if r.per_session else 'day / cycle'}")
            for key, r in regimens.items()
        ],
        "drugs": sorted(table.drugs),
        "routes": sorted(table.routes),
    }


def run_dose_check(form: dict[str, str]) -> dict[str, Any]:
    """The dose check of ``hepanav therapy dose`` from the page's form (text fields).

    ``form`` holds ``drug``/``regimen`` (one of them), ``dose``, ``unit``, ``per``,
    ``route``, ``height_cm``, ``weight_kg`` and ``historical`` ("true" or empty).
    Returns the result as a dict with ``kind`` ``"regimen"`` (a sourced protocol) or
    ``"historical"`` (the historical intra-arterial table).

    Raises
    ------
    InputError
        Naming the form field (not the CLI option) when a number is not a number or the
        check refuses the input.
    """
    from hepanav.therapy.regimens import dose_check
    from hepanav.therapy.schema import RegimenDoseResult

    def number(name: str, label: str, required: bool = False) -> float | None:
        text = (form.get(name) or "").strip()
        if not text:
            if required:
                raise InputError("is required", label)
            return None
        try:
            value = float(text)
        except ValueError:
            raise InputError(f"not a number: {text[:40]!r}", label) from None
        if not math.isfinite(value):
            raise InputError("must be a finite number", label)
        return value

    try:
        result = dose_check(
            drug=(form.get("drug") or "").strip() or None,
            regimen=(form.get("regimen") or "").strip() or None,
            dose=number("dose", "dose", required=True),
            unit=(form.get("unit") or "mg").strip(),
            per=(form.get("per") or "session").strip(),
            route=(form.get("route") or "intra-arterial").strip(),
            height_cm=number("height_cm", "height (cm)"),
            weight_kg=number("weight_kg", "weight (kg)"),
            historical=form.get("historical") == "true",
        )
    except InputError as exc:
        source = DOSE_FIELDS.get(exc.source or "", exc.source)
        reason = exc.reason
        for option, label in DOSE_FIELDS.items():
            reason = reason.replace(f"give {option}", f"give {label}").replace(option, label)
        raise InputError(reason, source) from None
    kind = "regimen" if isinstance(result, RegimenDoseResult) else "historical"
    return {"kind": kind, **result.model_dump(mode="json")}
