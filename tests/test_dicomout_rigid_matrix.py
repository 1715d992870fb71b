"""The rigid part written to a DICOM REG for every transform shape a registration returns
(tester6 #16 made the same-image case an identity; its REG export then crashed)."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from hepanav.imaging.dicomout.registration import rigid_pre_to_post


def test_translation_post_to_pre_gives_the_inverse_shift():
    # post -> pre adds (1, 2, 3) mm, so pre -> post subtracts it
    m = rigid_pre_to_post(sitk.TranslationTransform(3, (1.0, 2.0, 3.0)))
    np.testing.assert_allclose(m @ [10.0, 20.0, 30.0, 1.0], [9.0, 18.0, 27.0, 1.0])


def test_identity_composite_and_euler_give_the_identity_matrix():
    for t in (
        sitk.CompositeTransform([sitk.Euler3DTransform()]),
        sitk.Euler3DTransform(),
        sitk.Transform(3, sitk.sitkIdentity),
    ):
        np.testing.assert_allclose(rigid_pre_to_post(t), np.eye(4), atol=1e-12)


def test_rotation_about_a_centre_round_trips():
    euler = sitk.Euler3DTransform((5.0, -3.0, 2.0), 0.1, -0.05, 0.2, (1.0, 0.5, -2.0))
    m = rigid_pre_to_post(sitk.CompositeTransform([euler]))
    post = np.array([12.0, -7.0, 40.0])
    pre = np.asarray(euler.TransformPoint(post.tolist()))
    np.testing.assert_allclose(m @ np.r_[pre, 1.0], np.r_[post, 1.0], atol=1e-9)


def test_a_non_affine_first_part_is_refused():
    bspline = sitk.BSplineTransform(3)
    bspline.SetTransformDomainOrigin((-50.0, -50.0, -50.0))
    bspline.SetTransformDomainPhysicalDimensions((100.0, 100.0, 100.0))
    bspline.SetTransformDomainMeshSize((2, 2, 2))
    params = np.zeros(len(bspline.GetParameters()))
    params[7] = 4.0  # one control point moved: a local bump, not affine
    bspline.SetParameters(params.tolist())
    import pytest

    with pytest.raises(ValueError, match="not rigid/affine"):
        rigid_pre_to_post(sitk.CompositeTransform([bspline]))
