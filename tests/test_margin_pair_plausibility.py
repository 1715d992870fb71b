"""Pre/post pairs that are not what they claim (tester6 defects 5 and 16).

Known by construction: a procedural ablation case on a 2 mm grid WITHOUT deformation
(``max_displacement_mm`` 0), so the pre and post scans share one grid and the true
post -> pre map is the identity. The ablation zone is painted hypodense on the post
scan only.

* 5: the zone's region is darker than its surroundings on the post scan, not on the pre
  scan; with the scans swapped the check must warn, the right way round it must not.
* 16: the same image as pre and post is not registered (identity, mode ``same_image``)
  and gives exactly the masks-in-one-space figures; the result says so.
"""

from __future__ import annotations

import pytest
import SimpleITK as sitk

from hepanav.margin.pipeline import run_margin_pipeline
from hepanav.margin.plausibility import swap_warning
from hepanav.margin.registration import (
    SAME_IMAGE_METHOD,
    RegistrationSettings,
    register_pre_to_post,
    same_image,
)

FAST = RegistrationSettings(
    spacing_mm=4.0, rigid_iterations=10, bspline_iterations=5, local_stage=False
)


@pytest.fixture(scope="module")
def case():
    from hepanav.phantoms.ablation_case import build_case, case_parameters

    params = case_parameters(spacing_mm=(2.0, 2.0, 2.0), deformation={"max_displacement_mm": 0.0})
    case = build_case(0, params)
    assert case.pre_ct.GetSize() == case.post_ct.GetSize()
    return case


def test_swapped_scans_warn_and_the_right_way_round_does_not(case):
    identity = sitk.Transform()
    zone = case.post_ablation
    assert swap_warning(case.pre_ct, case.post_ct, zone, identity) is None
    warning = swap_warning(case.post_ct, case.pre_ct, zone, identity)
    assert warning is not None and "SWAPPED" in warning


def test_swapped_pair_end_to_end_warns_in_the_result(case, tmp_path):
    run = run_margin_pipeline(
        case.pre_tumor,
        case.post_ablation,
        tmp_path,
        pre=case.post_ct,
        post=case.pre_ct,
        settings=FAST,
        report=False,
    )
    assert any("SWAPPED" in p for p in run.result.plausibility)


def test_same_image_is_not_registered(case, tmp_path):
    assert same_image(case.pre_ct, case.pre_ct)
    assert not same_image(case.pre_ct, case.post_ct)
    assert not same_image(case.pre_ct, sitk.Cast(case.pre_ct, sitk.sitkFloat32))
    tumour, zone = case.pre_tumor, case.post_ablation
    masks = run_margin_pipeline(tumour, zone, tmp_path / "masks", report=False).result
    pair = run_margin_pipeline(
        tumour, zone, tmp_path / "pair", pre=case.pre_ct, post=case.pre_ct, report=False
    ).result
    assert pair.registration.mode == "same_image"
    assert pair.registration.method == SAME_IMAGE_METHOD
    assert pair.min_margin_mm == masks.min_margin_mm
    assert pair.uncertainty.half_width_mm == masks.uncertainty.half_width_mm
    assert len(pair.short_regions) == len(masks.short_regions)
    assert any("same image" in w for w in pair.warnings)
    assert "same image" in pair.uncertainty.source
    assert not pair.plausibility  # no swap check without a registration
    reg = register_pre_to_post(
        case.pre_ct, case.pre_ct, post_exclude=zone, pre_exclude=tumour, settings=FAST
    )
    assert reg.mode == "same_image"
    assert reg.transform.TransformPoint((1.0, 2.0, 3.0)) == (1.0, 2.0, 3.0)
