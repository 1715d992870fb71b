"""``make demo`` part of hepanav.planning: plan on a phantom, simulate placement, verify."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk


def _phantom_case():
    from hepanav.phantoms.planning import make_planning_case

    try:  # the procedural abdomen when the phantoms package provides it
        return make_planning_case("procedural", 30.0, seed=0)
    except (ImportError, AttributeError, TypeError):
        return make_planning_case("torso", 30.0, seed=0)


def control_ct(ct: sitk.Image, needles: list[tuple[np.ndarray, np.ndarray]]) -> sitk.Image:
    """A 1 mm control CT around the needles (same frame as ``ct``) with the needles drawn."""
    from hepanav.imaging import resample_isotropic
    from hepanav.phantoms.needles import draw_needles

    ends = np.array([p for pair in needles for p in pair])
    idx = np.array([ct.TransformPhysicalPointToIndex(p.tolist()) for p in ends])
    lo = np.maximum(idx.min(axis=0) - 15, 0)
    hi = np.minimum(idx.max(axis=0) + 15, np.asarray(ct.GetSize()) - 1)
    box = sitk.RegionOfInterest(ct, (hi - lo + 1).tolist(), lo.tolist())
    return draw_needles(resample_isotropic(box, 1.0, default_value=-1000), needles)


def run(out: Path) -> list[Path]:
    """Plan a 3 cm tumour (+5 mm) on a phantom, place needles with a 2 mm lateral error, verify.

    Returns the two HTML reports (plan, placement).
    """
    from hepanav.planning.pipeline import run_plan, run_verification
    from hepanav.planning.trajectories import perpendicular_basis

    out = Path(out)
    case = _phantom_case()
    inputs = out / "inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    for name, image in (("ct", case.ct), ("tumor", case.tumor), ("labels", case.labels)):
        sitk.WriteImage(image, str(inputs / f"{name}.nii.gz"))
    plan_out, _ = run_plan(
        inputs / "ct.nii.gz",
        inputs / "tumor.nii.gz",
        inputs / "labels.nii.gz",
        None,
        5.0,
        "neuwave-pr-65w-10min",
        out / "plan",
    )
    reports = [out / "plan" / "report.html"]
    if not plan_out.result.needles:
        return reports
    rng = np.random.default_rng(0)
    placed = []
    for needle in plan_out.result.needles:
        u, v = perpendicular_basis(np.asarray(needle.direction))
        miss = rng.normal(0.0, 2.0, 2)  # lateral placement error, SD 2 mm per axis
        shift = miss[0] * u + miss[1] * v
        placed.append(
            (np.asarray(needle.entry_lps_mm) + shift, np.asarray(needle.tip_lps_mm) + shift)
        )
    sitk.WriteImage(control_ct(case.ct, placed), str(inputs / "control_ct.nrrd"))
    run_verification(out / "plan" / "plan.json", inputs / "control_ct.nrrd", out / "placement")
    reports.append(out / "placement" / "report.html")
    return reports
