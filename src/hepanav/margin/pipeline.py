"""``hepanav margin`` end to end: read, (register), measure, write margin.json, map, report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from hepanav.core.atomic import write_json
from hepanav.core.errors import InputError
from hepanav.imaging import lps_to_voxel, read_image, read_mask, require_overlap, write_image
from hepanav.margin.landmarks import paired_landmarks, read_landmarks
from hepanav.margin.measure import Measurement, measure_margin
from hepanav.margin.registration import (
    RegistrationResult,
    RegistrationSettings,
    register_pre_to_post,
    target_registration_error,
)
from hepanav.margin.schema import MarginResult, Registration

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

    @property
    def registered(self) -> bool:
        """True in the pre/post mode (images to register)."""
        return any(p is not None for p in (self.pre, self.post, self.liver_pre, self.liver_post))

    def check(self) -> None:
        """Raise ``InputError`` for an incomplete or contradictory set of options."""
        if self.registered:
            names = {
                "--pre": self.pre,
                "--post": self.post,
                "--liver-pre": self.liver_pre,
                "--liver-post": self.liver_post,
            }
            missing = [k for k, v in names.items() if v is None]
            if missing:
                raise InputError(
                    "the pre/post mode needs --pre, --post, --liver-pre and --liver-post; "
                    f"missing {', '.join(missing)}",
                    missing[0],
                )
            if self.liver is not None:
                raise InputError("use --liver-post (not --liver) with --pre/--post", "--liver")
        if (self.landmarks_pre is None) != (self.landmarks_post is None):
            raise InputError("give both --landmarks-pre and --landmarks-post", "--landmarks-pre")
        if self.landmarks_pre is not None and not self.registered:
            raise InputError("landmarks need the pre/post mode (--pre/--post)", "--landmarks-pre")
        if self.subcapsular_mm is not None and not 0 <= self.subcapsular_mm <= MAX_SUBCAPSULAR_MM:
            # Also refuses NaN. Beyond 20 mm the band would exclude surface far deeper
            # than any margin shell measured (5/6 mm) and the analysis grid grows with it.
            raise InputError(
                f"must be a finite distance in [0, {MAX_SUBCAPSULAR_MM:g}] mm", "--subcapsular-mm"
            )
        if self.subcapsular_mm and self.liver is None and self.liver_post is None:
            raise InputError(
                "subcapsular exclusion needs a liver mask (--liver)", "--subcapsular-mm"
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
    """Run the margin pipeline; write ``margin.json``, ``margin_map.nii.gz``, ``report.html``.

    Parameters
    ----------
    inputs : MarginInputs
        File paths (masks in one space, or a pre/post pair to register).
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
    images = read_inputs(inputs)
    registration = None
    transform = None
    tre = None
    step("register")
    if inputs.registered:
        registration = register_pre_to_post(
            images["pre"],
            images["post"],
            images["liver_pre"],
            images["liver_post"],
            post_exclude=images["ablation"],
            pre_exclude=images["tumor"],
            settings=settings,
        )
        transform = registration.transform
        if inputs.landmarks_pre is not None:
            pre_pts, post_pts = paired_landmarks(
                read_landmarks(inputs.landmarks_pre),
                read_landmarks(inputs.landmarks_post),
                inputs.landmarks_post,
            )
            tre = target_registration_error(transform, pre_pts, post_pts)
    step("measure")
    liver = images.get("liver_post", images.get("liver"))
    measurement = measure_margin(
        images["tumor"], images["ablation"], liver, transform, inputs.subcapsular_mm
    )
    result = MarginResult(
        **measurement.figures(),
        registration=Registration(
            method=registration.method if registration else "none (masks given in one space)",
            liver_dice=registration.liver_dice if registration else None,
            tre_mm=tre,
            seconds=registration.seconds if registration else 0.0,
        ),
    )
    step("write")
    out = Path(out)
    paths = {
        "json": write_json(out / "margin.json", result),
        "map": write_image(margin_map(measurement), out / "margin_map.nii.gz"),
    }
    run = MarginRun(result, measurement, registration, images, paths)
    if report:
        from hepanav.margin.report import write_report

        paths["report"] = write_report(run, out / "report.html")
    return run


def read_inputs(inputs: MarginInputs) -> dict[str, sitk.Image]:
    """Read and check every image and mask; masks are binarised (uint8 0/1)."""
    images: dict[str, sitk.Image] = {}
    if inputs.registered:
        images["pre"] = read_image(inputs.pre)
        images["post"] = read_image(inputs.post)
        images["tumor"] = read_mask(inputs.tumor, reference=images["pre"])
        images["liver_pre"] = read_mask(inputs.liver_pre, reference=images["pre"])
        images["ablation"] = read_mask(inputs.ablation, reference=images["post"])
        images["liver_post"] = read_mask(inputs.liver_post, reference=images["post"])
    else:
        images["ablation"] = read_mask(inputs.ablation)
        images["tumor"] = read_mask(inputs.tumor)
        require_overlap(images["tumor"], images["ablation"], inputs.tumor)
        if inputs.liver is not None:
            images["liver"] = read_mask(inputs.liver, reference=images["ablation"])
    return images


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
