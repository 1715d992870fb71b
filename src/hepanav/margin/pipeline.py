"""``hepanav margin`` end to end: read, (register), measure, write margin.json, map, report."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from hepanav.core.atomic import write_json
from hepanav.core.errors import InputError
from hepanav.core.report import format_margin
from hepanav.imaging import (
    InputRecord,
    load_ct,
    load_mask,
    load_mask_occupancy,
    lps_to_voxel,
    parse_labels,
    require_overlap,
    write_image,
)
from hepanav.imaging.masks import check_mask_threshold
from hepanav.imaging.orient import lps_order
from hepanav.imaging.schema import display_name
from hepanav.margin.landmarks import landmark_warning, paired_landmarks, read_landmarks
from hepanav.margin.measure import Measurement, measure_margin
from hepanav.margin.plausibility import (
    ZONE_IS_TUMOUR_RULE,
    plausibility_warnings,
    swap_warning,
    tumour_zone_overlap,
    zone_is_tumour_warning,
)
from hepanav.margin.registration import (
    RegistrationResult,
    RegistrationSettings,
    register_pre_to_post,
    target_registration_error,
)
from hepanav.margin.schema import SAFE_MARGIN_MM, MarginResult, Registration, Uncertainty
from hepanav.margin.segments import write_segments
from hepanav.margin.uncertainty import (
    LOCAL_FLOOR_MM,
    LOCAL_RADIUS_MM,
    geometric_half_width_mm,
    grid_text,
    local_consistency,
    mixed_grid_half_width_mm,
    same_lattice,
)

#: The largest error of a MAM from masks segmented automatically from seeds seen on the
#: evaluation phantoms, mm (biased low: -1.7 mm on average, down to -5 mm;
#: docs/segmentation.md). A MAM more than ``u`` + this below 0 mm stays negative within
#: it: residual tumour is decisive even from automatic masks.
SEGMENTATION_ERROR_MM = 5.0

STEPS = ("read", "register", "measure", "write")
# Value of margin-map voxels the tumour surface does not pass through. NaN would be
# the natural choice, but ITK's NIfTI I/O turns NaN into 0, a valid margin.
NO_SURFACE_MM = -1000.0
#: Largest subcapsular exclusion accepted, mm: four times the QAM default of 5 mm
#: (Sandu/Paolucci 2021), far beyond the 5/6 mm shells the margin figures use.
MAX_SUBCAPSULAR_MM = 20.0


@dataclass
class MarginInputs:
    """Paths given to ``hepanav margin`` (see docs/margin.md for the two modes)."""

    tumor: Path
    ablation: Path
    liver: Path | None = None
    pre: Path | None = None
    post: Path | None = None
    liver_pre: Path | None = None
    liver_post: Path | None = None
    landmarks_pre: Path | None = None
    landmarks_post: Path | None = None
    subcapsular_mm: float | None = None
    tumor_label: str | None = None
    ablation_label: str | None = None
    liver_label: str | None = None
    mask_threshold: float | None = None
    pre_series: str | None = None
    post_series: str | None = None
    ct: Path | None = None  # CT behind the figures in the one-space mode (--ct), from main
    # Masks segmented from seeds by `hepanav margin --tumor-seed/--ablation-seed`: role
    # ("tumor", "ablation") -> where the mask ends up (OUT/segmentation/...), recorded in
    # the result instead of the temporary folder it was read from.
    from_seeds: dict[str, Path] | None = None

    @property
    def registered(self) -> bool:
        """True in the pre/post mode (images to register)."""
        return any(p is not None for p in (self.pre, self.post, self.liver_pre, self.liver_post))

    def check(self) -> None:
        """Raise ``InputError`` for an incomplete or contradictory set of options."""
        if self.registered:
            names = {"--pre": self.pre, "--post": self.post}
            missing = [k for k, v in names.items() if v is None]
            if missing:
                raise InputError(
                    "the pre/post mode needs --pre and --post (and optionally both "
                    f"--liver-pre and --liver-post); missing {', '.join(missing)}",
                    missing[0],
                )
            if (self.liver_pre is None) != (self.liver_post is None):
                missing_liver = "--liver-pre" if self.liver_pre is None else "--liver-post"
                raise InputError(
                    "give both --liver-pre and --liver-post, or neither (then a region "
                    "around the ablation zone drives the registration)",
                    missing_liver,
                )
            if self.liver is not None:
                raise InputError("use --liver-post (not --liver) with --pre/--post", "--liver")
            if self.ct is not None:
                raise InputError(
                    "--ct is for masks in one space; with --pre/--post the figures use --post",
                    "--ct",
                )
        if (self.landmarks_pre is None) != (self.landmarks_post is None):
            raise InputError("give both --landmarks-pre and --landmarks-post", "--landmarks-pre")
        if self.landmarks_pre is not None and not self.registered:
            raise InputError("landmarks need the pre/post mode (--pre/--post)", "--landmarks-pre")
        if self.subcapsular_mm is not None and not 0 <= self.subcapsular_mm <= MAX_SUBCAPSULAR_MM:
            # Also refuses NaN. Beyond 20 mm the band would exclude surface far deeper
            # than any margin shell measured (5/6 mm) and the analysis grid grows with it.
            raise InputError(
                f"must be a finite distance >= 0 and <= {MAX_SUBCAPSULAR_MM:g} mm",
                "--subcapsular-mm",
            )
        for option, text in (
            ("--tumor-label", self.tumor_label),
            ("--ablation-label", self.ablation_label),
            ("--liver-label", self.liver_label),
        ):
            parse_labels(text, option)
        check_mask_threshold(self.mask_threshold)
        if not self.registered and (self.pre_series or self.post_series):
            raise InputError("applies to the pre/post mode (--pre/--post)", "--pre-series")
        if self.subcapsular_mm and self.liver is None and self.liver_post is None:
            # Named after --subcapsular, the option the user gave (--subcapsular-mm only
            # has a default here).
            raise InputError(
                "needs a liver mask: --liver for masks in one space, or --liver-pre and "
                "--liver-post with --pre/--post",
                "--subcapsular",
            )


@dataclass
class MarginRun:
    """Everything one run produced (result, intermediate data for the report, paths)."""

    result: MarginResult
    measurement: Measurement
    registration: RegistrationResult | None
    images: dict[str, sitk.Image]
    paths: dict[str, Path]


def run_margin(
    inputs: MarginInputs,
    out: Path,
    settings: RegistrationSettings | None = None,
    step: Callable[[str], None] | None = None,
    report: bool = True,
) -> MarginRun:
    """Run the margin pipeline from files; write ``margin.json``, the margin map and the report.

    Parameters
    ----------
    inputs : MarginInputs
        File paths (masks in one space, or a pre/post pair to register, with or
        without liver masks).
    out : Path
        Output folder (created).
    settings : RegistrationSettings, optional
        Registration knobs (pre/post mode).
    step : callable, optional
        Called with the name of each step as it starts (progress display).
    report : bool
        Write the HTML report (the benchmark times the figures without it).

    Raises
    ------
    InputError
        Any bad input (missing/unreadable file, bad DICOM series, 2D image, empty
        mask, mask not overlapping its image, inconsistent options).
    """
    step = step or (lambda name: None)
    inputs.check()
    step("read")
    records: list[InputRecord] = []
    occupancies: dict[str, sitk.Image] = {}
    images = read_inputs(inputs, records, occupancies)
    seeded = dict(inputs.from_seeds or {})
    for role in ("tumor", "ablation"):
        if role not in seeded and automatic_segmentation(getattr(inputs, role)):
            seeded[role] = getattr(inputs, role)
    roles = {"tumor": "tumor", "ablation zone": "ablation"}
    for record in records:
        if roles.get(record.role) in seeded:
            record.file = display_name(seeded[roles[record.role]])
            role = roles[record.role]
            record.notes.append(seeded_note(getattr(inputs, role)))
            record.notes.append(
                edge_fractions(getattr(inputs, role), images[role], role, occupancies)
            )
    landmarks = None
    if inputs.landmarks_pre is not None:
        # Read before registering: a bad file must not cost a minute of registration.
        landmarks = paired_landmarks(
            read_landmarks(inputs.landmarks_pre),
            read_landmarks(inputs.landmarks_post),
            inputs.landmarks_post,
        )
    return run_margin_pipeline(
        images["tumor"],
        images["ablation"],
        out,
        pre=images.get("pre"),
        post=images.get("post"),
        liver_pre=images.get("liver_pre"),
        liver_post=images.get("liver_post"),
        liver=images.get("liver"),
        ct=images.get("ct"),
        landmarks=landmarks,
        subcapsular_mm=inputs.subcapsular_mm,
        settings=settings,
        step=step,
        report=report,
        input_records=records,
        occupancies=occupancies,
        segmented_from_seeds=tuple(seeded),
    )


def seeded_note(path: Path) -> str:
    """The input note of a mask ``hepanav segment`` wrote: how many lesions it holds and
    from which seeds (read from its JSON beside it, when there)."""
    from hepanav.segmentation.pipeline import lesions_written

    lesions = lesions_written(path)
    if not lesions:
        return "segmented automatically from a seed (hepanav segment)"
    return (
        f"segmented automatically (hepanav segment), {len(lesions)} "
        f"lesion{'s' if len(lesions) > 1 else ''} (one per seed outside the earlier ones; "
        "all measured together against the whole zone): "
        + "; ".join(
            f"lesion {n} from {', '.join(x['seeds'])} ({x['volume_ml']:.2f} ml)"
            for n, x in enumerate(lesions, 1)
        )
    )


def edge_fractions(
    path: Path, mask: sitk.Image, role: str, occupancies: dict[str, sitk.Image]
) -> str:
    """Use the edge fractions ``hepanav segment`` wrote beside an automatic mask.

    The fraction file (:func:`hepanav.segmentation.pipeline.fraction_path`) is put in
    ``occupancies[role]`` when the mask was read voxel for voxel (no fraction of the
    reader's own), the file lies on a box of the mask's grid and still agrees with the
    mask (``fraction >= 0.5`` exactly where the mask is 1 in that box): a mask edited
    after the segmentation no longer agrees and is measured as a binary mask. Returns
    the note for the mask's input record (which of the two happened).
    """
    from hepanav.margin.surface import occupancy_offset
    from hepanav.segmentation.pipeline import fraction_path

    where = fraction_path(path)
    if role in occupancies:
        return "surface placed from the reader's partial-volume fractions"
    if not where.is_file():
        return "no edge fractions beside the mask: surface placed from the binary voxels"
    try:
        fraction = sitk.ReadImage(str(where), sitk.sitkFloat32)
        start = occupancy_offset(fraction, mask)
    except (RuntimeError, ValueError):
        return f"{where.name} is not on the mask's grid: surface placed from the binary voxels"
    size = np.asarray(fraction.GetSize())
    if np.any(start < 0) or np.any(start + size > np.asarray(mask.GetSize())):
        return f"{where.name} is not on the mask's grid: surface placed from the binary voxels"
    box = sitk.GetArrayViewFromImage(mask)[
        start[2] : start[2] + size[2], start[1] : start[1] + size[1], start[0] : start[0] + size[0]
    ]
    values = sitk.GetArrayViewFromImage(fraction)
    inside_box = int(np.count_nonzero(box))
    if not np.array_equal(values >= 0.5, box != 0) or inside_box != int(
        np.count_nonzero(sitk.GetArrayViewFromImage(mask))
    ):
        return (
            f"the mask no longer agrees with {where.name} (edited?): surface placed from "
            "the binary voxels"
        )
    occupancies[role] = fraction
    return f"surface placed from the segmentation's edge fractions ({where.name})"


def automatic_segmentation(mask: Path | None) -> bool:
    """True when ``mask`` was written by ``hepanav segment`` from a seed: its record
    ``<stem>.json`` lies beside it (docs/segmentation.md) and names the structure and the
    seeds. Such a mask carries an error the margin's uncertainty does not hold (see
    :func:`margin_uncertainty`). A mask edited and saved under the same name keeps the
    record and stays "automatic": the safe side."""
    if mask is None or not Path(mask).is_file():
        return False
    name = Path(mask).name
    stem = name[: -len(".nii.gz")] if name.lower().endswith(".nii.gz") else Path(name).stem
    record = Path(mask).with_name(f"{stem}.json")
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "structure" in data and bool(data.get("seeds"))


def run_margin_pipeline(
    tumor: sitk.Image,
    ablation: sitk.Image,
    out: Path,
    *,
    pre: sitk.Image | None = None,
    post: sitk.Image | None = None,
    liver_pre: sitk.Image | None = None,
    liver_post: sitk.Image | None = None,
    liver: sitk.Image | None = None,
    ct: sitk.Image | None = None,
    landmarks: tuple[np.ndarray, np.ndarray] | None = None,
    subcapsular_mm: float | None = None,
    settings: RegistrationSettings | None = None,
    step: Callable[[str], None] | None = None,
    report: bool = True,
    input_records: list[InputRecord] | None = None,
    occupancies: dict[str, sitk.Image] | None = None,
    segmented_from_seeds: tuple[str, ...] = (),
) -> MarginRun:
    """The margin pipeline from images in memory (the API for callers that made the masks).

    Parameters
    ----------
    tumor : SimpleITK.Image
        Tumour mask (non-zero inside); on the pre CT's grid when ``pre`` is given.
    ablation : SimpleITK.Image
        Ablation-zone mask; on the post CT's grid when ``post`` is given. Its space is
        the space of the result.
    out : Path
        Output folder (``margin.json``, ``margin_map.nii.gz``, ``report.html``).
    pre, post : SimpleITK.Image, optional
        Pre and post CT in HU (both or neither). Given: the pre -> post registration
        runs; omitted: the masks are taken to be in one space.
    liver_pre, liver_post : SimpleITK.Image, optional
        Liver masks of the pre and post CT (both or neither). Given: liver-driven
        registration; omitted: lesion-region registration (soft tissue around the
        ablation zone). ``result.registration.mode`` says which ran.
    liver : SimpleITK.Image, optional
        Liver mask in the masks' space (one-space mode, subcapsular exclusion).
    ct : SimpleITK.Image, optional
        CT in the masks' space (one-space mode), drawn behind the report's figures.
    landmarks : (pre_points, post_points), optional
        Paired landmarks, arrays of shape (N, 3) in LPS mm, for the TRE.
    subcapsular_mm : float, optional
        Leave out tumour surface within this distance of the liver capsule (mm).
    settings, step, report
        As in :func:`run_margin`.
    input_records : list of InputRecord, optional
        How each input was read (``result.inputs``); empty when the images were made
        in memory.
    occupancies : dict, optional
        Partial-volume fractions of the ``"tumor"`` and/or ``"ablation"`` masks on
        their grids (see :func:`hepanav.imaging.load_mask_occupancy`): the surfaces
        are placed from them.
    segmented_from_seeds : tuple of str
        Which masks (``"tumor"``, ``"ablation"``) were segmented automatically from a
        seed: their segmentation error is not part of the uncertainty ``u``, so the
        MAM is reported as not decisive (see :func:`margin_uncertainty`).

    Returns
    -------
    MarginRun

    Raises
    ------
    InputError
        Inconsistent inputs (one CT or one liver mask only, empty masks, ...).
    """
    step = step or (lambda name: None)
    if (pre is None) != (post is None):
        raise InputError("give both the pre and the post CT, or neither", "--pre/--post")
    if (liver_pre is None) != (liver_post is None):
        raise InputError("give both liver masks, or neither", "--liver-pre/--liver-post")
    if pre is None and liver_pre is not None:
        raise InputError("liver masks of a pre/post pair need --pre and --post", "--liver-pre")
    _refuse_identical_masks(tumor, ablation)
    images: dict[str, sitk.Image] = {"tumor": tumor, "ablation": ablation}
    for name, image in (
        ("pre", pre),
        ("post", post),
        ("liver_pre", liver_pre),
        ("liver_post", liver_post),
        ("liver", liver),
        ("ct", ct),
    ):
        if image is not None:
            images[name] = image
    registration = None
    transform = None
    tre = None
    tre_warning = None
    step("register")
    # The registration and the local consistency check see every image in one storage
    # order (axes permuted/flipped to LPS, no resampling): their working grids and
    # sampling lattices then follow physical space only, not how a file orders its
    # voxels (the same pre scan stored with flipped axes moved the demo's MAM 0.32 mm).
    canonical = {
        name: lps_order(image) if pre is not None else image
        for name, image in (
            ("pre", pre),
            ("post", post),
            ("liver_pre", liver_pre),
            ("liver_post", liver_post),
            ("tumor", tumor),
            ("ablation", ablation),
        )
    }
    if pre is not None:
        registration = register_pre_to_post(
            canonical["pre"],
            canonical["post"],
            canonical["liver_pre"],
            canonical["liver_post"],
            post_exclude=canonical["ablation"],
            pre_exclude=canonical["tumor"],
            settings=settings,
        )
        transform = registration.transform
        if landmarks is not None:
            tre = target_registration_error(transform, *landmarks)
            tre_warning = landmark_warning(transform, *landmarks)
        if registration.mode == "same_image":
            # Nothing was registered: the masks are in one space (the image's), and the
            # figures and u are those of that mode, not of a registration.
            transform = None
    step("measure")
    measurement = measure_margin(
        tumor,
        ablation,
        liver_post if liver_post is not None else liver,
        transform,
        subcapsular_mm,
        occupancies=occupancies,
        liver_option="--liver-post" if liver_post is not None else "--liver",
    )
    same_pre_post = registration is not None and registration.mode == "same_image"
    overlap = tumour_zone_overlap(measurement.tumor_field, measurement.zone_field)
    zone_is_tumour = (
        zone_is_tumour_warning(overlap, same_pre_post) if overlap.zone_is_tumour else None
    )
    result = MarginResult(
        **measurement.figures(),
        uncertainty=margin_uncertainty(
            measurement,
            canonical["tumor"],
            canonical["ablation"],
            canonical["pre"],
            canonical["post"],
            transform,
            segmented_from_seeds,
            zone_is_tumour=overlap.zone_is_tumour,
        ),
        tumor_zone_dice=overlap.dice,
        zone_is_tumor=overlap.zone_is_tumour,
        registration=Registration(
            mode=registration.mode if registration else "none",
            method=registration.method if registration else "none (masks given in one space)",
            liver_dice=registration.liver_dice if registration else None,
            tre_mm=tre,
            seconds=registration.seconds if registration else 0.0,
        ),
        inputs=input_records or [],
    )
    if tre_warning:
        result.warnings.append(tre_warning)
    if pre is None and not same_lattice(tumor, ablation):
        result.warnings.append(
            f"the tumour mask is on a {grid_text(tumor)} grid, the ablation zone on "
            f"{grid_text(ablation)} (not one voxel lattice): each surface was computed on "
            "its own mask's grid and resampled trilinearly onto the zone's local analysis "
            "grid in physical space; a mask resampled before input is no more precise than "
            "the grid it was drawn on, so u's voxel term is half the coarsest voxel's "
            f"diagonal ({mixed_grid_half_width_mm(tumor, ablation):.2f} mm)"
        )
    if same_pre_post:
        result.uncertainty.source = (
            "voxel geometry only (pre and post are the same image: no registration)"
        )
        result.warnings.append(
            "--pre and --post are the same image (same voxels and geometry): no "
            "registration was run (identity transform); if the ablation zone was not "
            "drawn on this very scan, check that --post is the post-ablation CT"
        )
    result.plausibility = plausibility_warnings(
        result.tumor_volume_ml,
        result.ablation_volume_ml,
        result.border.tumor_surface_fraction_not_assessable,
        zone_is_tumour,
    )
    if transform is not None:  # registered pre/post pair (not the same image twice)
        swapped = swap_warning(pre, post, ablation, transform)
        if swapped:
            result.plausibility.append(swapped)
    step("write")
    out = Path(out)
    paths = {
        "json": write_json(out / "margin.json", result),
        "map": write_image(margin_map(measurement), out / "margin_map.nii.gz"),
    }
    run = MarginRun(result, measurement, registration, images, paths)

    paths.update(write_segments(run, out))  # masks for the DICOM SEG export
    from hepanav.margin.mesh import write_surface_meshes

    paths.update(write_surface_meshes(measurement, out))  # 3D view of the web application
    if report:
        from hepanav.margin.report import write_report

        paths["report"] = write_report(run, out / "report.html")
    return run


def margin_uncertainty(
    measurement: Measurement,
    tumor: sitk.Image,
    ablation: sitk.Image,
    pre: sitk.Image | None,
    post: sitk.Image | None,
    transform: sitk.Transform | None,
    segmented_from_seeds: tuple[str, ...] = (),
    zone_is_tumour: bool = False,
) -> Uncertainty:
    """The MAM interval and the decisiveness rule (see :mod:`hepanav.margin.uncertainty`).

    ``u`` covers the registration and the voxel geometry. Masks segmented from seeds
    (``segmented_from_seeds``) add an error ``u`` does not hold: on the evaluation
    phantoms the MAM from automatic masks was biased low, -1.7 mm on average and down
    to -5 mm (docs/segmentation.md, ``bench.eval_segmentation``), too case-dependent to
    add as a number; such a MAM is therefore not decisive until the masks are reviewed,
    unless it lies more than ``u`` + :data:`SEGMENTATION_ERROR_MM` below 0 mm (a lesion
    missed by the zone, e.g. MAM -37 mm): no error seen on the phantoms turns it
    positive, and "incomplete" is then decisive.

    ``zone_is_tumour`` (the zone is (nearly) the tumour itself,
    :mod:`hepanav.margin.plausibility`): no measured ablation, never decisive; the rule
    says so.
    """
    mam = measurement.min_margin_mm
    correction = None
    if transform is not None:
        local = local_consistency(pre, post, ablation, transform, tumor)
        u = local.half_width_mm
        correction = tuple(float(v) for v in local.correction_lps_mm)
        source = (
            "local registration consistency within "
            f"{LOCAL_RADIUS_MM:g} mm of the zone (translation still wanted "
            f"{np.linalg.norm(local.correction_lps_mm):.1f} mm) + {LOCAL_FLOOR_MM:g} mm floor "
            "+ voxel geometry"
        )
    elif not same_lattice(tumor, ablation):
        u = LOCAL_FLOOR_MM + mixed_grid_half_width_mm(tumor, ablation)
        source = (
            f"voxel geometry only (masks given in one space, no registration; on different "
            f"grids, tumour {grid_text(tumor)}, zone {grid_text(ablation)}: half the coarsest "
            "voxel's diagonal, a mask resampled before input being no more precise than the "
            "grid it was drawn on)"
        )
    else:
        u = LOCAL_FLOOR_MM + geometric_half_width_mm(tumor, ablation)
        source = "voxel geometry only (masks given in one space, no registration)"
    low, high = mam_range(measurement, u)
    decisive = not any(
        (low is None or low <= t) and (high is None or t <= high) for t in (0.0, SAFE_MARGIN_MM)
    )
    rule = f"a margin within its uncertainty (±{u:.1f} mm) of 0 mm or of {SAFE_MARGIN_MM:g} mm "
    rule += "is not decisive"
    bound = getattr(measurement, "min_margin_bound", None)
    if bound is not None:
        rule += (
            f"; this MAM is {BOUND_WORDS[bound]} (image border): decisive only if all it "
            "leaves possible is clear of both"
        )
    if segmented_from_seeds:
        names = " and ".join({"tumor": "tumour", "ablation": "ablation zone"}.get(r, r)
                             for r in segmented_from_seeds)  # fmt: skip
        source += f"; NOT included: the automatic segmentation of the {names} from a seed"
        rule += (
            f"; a MAM from masks segmented automatically from seeds ({names}) is not "
            "decisive either: review the masks (their error is not in u; phantoms: MAM "
            f"biased low, -1.7 mm on average, down to -{SEGMENTATION_ERROR_MM:g} mm), unless "
            f"it is more than u + {SEGMENTATION_ERROR_MM:g} mm below 0 mm (residual tumour "
            "beyond any such error)"
        )
        decisive = bool(decisive and mam < -(u + SEGMENTATION_ERROR_MM))
    if zone_is_tumour:
        rule += f"; {ZONE_IS_TUMOUR_RULE}"
        decisive = False
    # The segmentation error of automatic masks is not in u (phantoms: MAM biased low by
    # up to 5 mm), so [MAM - u, MAM + u] would claim a bound it does not have: withheld.
    withheld = None
    if segmented_from_seeds:
        withheld = (
            f"the {names} {'was' if len(segmented_from_seeds) == 1 else 'were'} segmented "
            f"automatically from a seed: u (±{u:.1f} mm) covers the registration and the "
            "voxel geometry only, not the segmentation error (phantoms: MAM biased low, "
            "-1.7 mm on average, down to -5 mm); review the masks and rerun with --tumor / "
            "--ablation for an interval"
        )
    elif low is None or high is None:
        withheld = {
            "lower": "the MAM is a LOWER BOUND (reached where the zone is cut by the image "
            "border) and no margin measured against real zone surface gives its upper end",
            "upper": "the MAM is an UPPER BOUND (part of the tumour is outside the image): "
            f"the lesion's MAM is at most {format_margin(mam + u)} mm, with no lower end",
            "unknown": "the tumour and, at the MAM point, the zone are cut by the image "
            "border: the MAM bounds the lesion's MAM in neither direction",
        }[bound]
    return Uncertainty(
        half_width_mm=float(u),
        min_margin_interval_mm=None if withheld else (float(low), float(high)),
        interval_withheld_reason=withheld,
        source=source,
        local_correction_lps_mm=correction,
        decisive=bool(decisive),
        rule=rule,
    )


#: ``MarginResult.min_margin_bound`` in the words of the decision rule.
BOUND_WORDS = {
    "lower": "a LOWER BOUND",
    "upper": "an UPPER BOUND",
    "unknown": "no bound either way",
}


def mam_range(measurement: Measurement, u: float) -> tuple[float | None, float | None]:
    """The range the true MAM may take: ``[MAM - u, MAM + u]``, widened where the MAM is a
    bound because of the image border (``measurement.min_margin_bound``): a lower bound
    reaches up to the smallest margin measured against real zone surface (+ u; None when
    there is none), an upper bound has no lower end (None), "unknown" neither end."""
    mam = measurement.min_margin_mm
    bound = getattr(measurement, "min_margin_bound", None)
    low, high = mam - u, mam + u
    if bound in ("upper", "unknown"):
        low = None
    if bound == "unknown":
        high = None
    if bound == "lower":
        above = measurement.min_margin_exact_above_mm
        high = None if above is None else max(above, mam) + u
    return low, high


def read_inputs(
    inputs: MarginInputs,
    records: list[InputRecord] | None = None,
    occupancies: dict[str, sitk.Image] | None = None,
) -> dict[str, sitk.Image]:
    """Read and check every image and mask; masks are binarised (uint8 0/1).

    Label options select labels of label maps and segments of SEG/RTSTRUCT/.seg.nrrd
    files; each input's :class:`InputRecord` (with the reader's notes) is appended
    to ``records`` when given. The partial-volume fractions of the tumour and
    ablation masks that had to be resampled (see
    :func:`hepanav.imaging.load_mask_occupancy`) are put in ``occupancies`` under
    ``"tumor"`` and ``"ablation"`` when given.
    """
    records = records if records is not None else []
    occupancies = occupancies if occupancies is not None else {}
    images: dict[str, sitk.Image] = {}
    masks = {"threshold": inputs.mask_threshold}
    tumor = {"labels": inputs.tumor_label, "option": "--tumor-label", **masks}
    zone = {"labels": inputs.ablation_label, "option": "--ablation-label", **masks}
    liver = {"labels": inputs.liver_label, "option": "--liver-label", **masks}

    def add(key: str, loaded) -> None:
        images[key] = loaded[0]
        records.append(loaded[1])
        if len(loaded) > 2 and loaded[2] is not None:
            occupancies[key] = loaded[2]

    if inputs.registered:
        # load_ct: NaN, a mask or values that are not HU would reach the registration
        add("pre", load_ct(inputs.pre, "pre CT", series=inputs.pre_series))
        add("post", load_ct(inputs.post, "post CT", series=inputs.post_series))
        pre_ref = {"reference": images["pre"], "reference_record": records[0]}
        post_ref = {"reference": images["post"], "reference_record": records[1]}
        add("tumor", load_mask_occupancy(inputs.tumor, "tumor", **pre_ref, **tumor))
        add("ablation", load_mask_occupancy(inputs.ablation, "ablation zone", **post_ref, **zone))
        if inputs.liver_pre is not None:  # optional: lesion-region registration without
            add("liver_pre", load_mask(inputs.liver_pre, "liver (pre)", **pre_ref, **liver))
            add("liver_post", load_mask(inputs.liver_post, "liver (post)", **post_ref, **liver))
    else:
        add("ablation", load_mask_occupancy(inputs.ablation, "ablation zone", **zone))
        add(
            "tumor",
            load_mask_occupancy(inputs.tumor, "tumor", grid=images["ablation"], **tumor),
        )
        _same_frame(records[0], records[1], inputs.tumor)
        require_overlap(images["tumor"], images["ablation"], inputs.tumor)
        if inputs.liver is not None:
            add("liver", load_mask(inputs.liver, "liver", reference=images["ablation"], **liver))
        if inputs.ct is not None:
            # only drawn behind the outlines; resampled onto each view in physical space
            add("ct", load_ct(inputs.ct, "CT (figures)"))
            require_overlap(images["ct"], images["ablation"], inputs.ct)
    return images


def _refuse_identical_masks(tumor: sitk.Image, ablation: sitk.Image) -> None:
    """Refuse a tumour mask identical, voxel for voxel, to the ablation-zone mask.

    An ablation zone that coincides with the tumour on the same grid is not a result of
    any ablation; it is the same file (or label) given twice, and its MAM (0 mm,
    "incomplete") would look like a measurement.

    Raises
    ------
    InputError
        Same size, spacing, origin and direction and the same non-zero voxels.
    """
    same_grid = (
        tumor.GetSize() == ablation.GetSize()
        and np.allclose(tumor.GetSpacing(), ablation.GetSpacing())
        and np.allclose(tumor.GetOrigin(), ablation.GetOrigin())
        and np.allclose(tumor.GetDirection(), ablation.GetDirection())
    )
    if same_grid and np.array_equal(
        sitk.GetArrayFromImage(tumor) != 0, sitk.GetArrayFromImage(ablation) != 0
    ):
        raise InputError(
            "the tumour and ablation-zone masks are identical voxel for voxel (the same "
            "mask given twice?); give the zone segmented on the post-ablation CT",
            "--ablation",
        )


def _same_frame(zone: InputRecord, tumor: InputRecord, source: Path) -> None:
    """Masks "in one space" from DICOM must share the frame of reference."""
    a, b = zone.frame_of_reference_uid, tumor.frame_of_reference_uid
    if a and b and a != b:
        raise InputError(
            f"tumour mask is in frame of reference {b}, the ablation zone in {a}; masks in one "
            "space must share it (use the pre/post mode for two scans)",
            source,
        )


def margin_map(measurement: Measurement) -> sitk.Image:
    """Signed margin (mm) painted on the local-grid voxels the tumour surface passes through.

    Each voxel holding tumour-surface vertices gets the smallest margin among them
    (positive inside the zone); all other voxels are ``NO_SURFACE_MM`` (-1000). The
    image is the local analysis grid (a subdivided crop of the ablation-zone image)
    with its LPS geometry, so viewers overlay it on the post CT in physical space.
    """
    grid = measurement.grid
    size_xyz = np.asarray(grid.GetSize())
    index = np.rint(lps_to_voxel(grid, measurement.tumor_mesh.vertices)).astype(int)
    index = np.clip(index, 0, size_xyz - 1)
    flat = np.ravel_multi_index((index[:, 2], index[:, 1], index[:, 0]), tuple(size_xyz[::-1]))
    values = np.full(int(np.prod(size_xyz)), np.inf, dtype=np.float64)
    np.minimum.at(values, flat, measurement.margin_mm)
    values[~np.isfinite(values)] = NO_SURFACE_MM
    image = sitk.GetImageFromArray(values.reshape(tuple(size_xyz[::-1])).astype(np.float32))
    image.CopyInformation(grid)
    return image
