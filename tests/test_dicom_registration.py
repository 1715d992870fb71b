"""Spatial Registration and Deformable Spatial Registration objects: valid, and the
stored matrix / vectors reproduce the known transform."""

from __future__ import annotations

import numpy as np
import pydicom
import SimpleITK as sitk

from dicomout_helpers import dciodvfy, write_study_ct
from hepanav.dicom.export import export_result
from hepanav.imaging.dicomout import read_source_series
from hepanav.margin.segments import REGISTRATION_FILE
from test_dicom_objects import ACCEPTED_WARNINGS, margin_export  # noqa: F401 - fixture


def _known_transform() -> sitk.Transform:
    """post -> pre: a rotation about x and a shift, then a smooth displacement field."""
    rigid = sitk.Euler3DTransform((0.0, 0.0, 0.0), 0.08, -0.05, 0.02, (4.0, -2.0, 1.5))
    field = sitk.Image([12, 12, 10], sitk.sitkVectorFloat64, 3)
    field.SetOrigin((-110.0, -130.0, -60.0))
    field.SetSpacing((10.0, 10.0, 10.0))
    arr = np.zeros((10, 12, 12, 3))
    z, y, x = np.mgrid[0:10, 0:12, 0:12]
    arr[..., 0] = 1.5 * np.sin(x / 3.0)
    arr[..., 2] = 0.8 * np.cos(y / 4.0)
    field = sitk.GetImageFromArray(arr, isVector=True)
    field.SetOrigin((-110.0, -130.0, -60.0))
    field.SetSpacing((10.0, 10.0, 10.0))
    return sitk.CompositeTransform([rigid, sitk.DisplacementFieldTransform(field)])


def test_registration_objects_reproduce_the_transform(margin_export, tmp_path):
    folder, ct_dir, _, _ = margin_export
    pre_dir = tmp_path / "pre"
    write_study_ct(
        pre_dir,
        np.zeros((6, 16, 16), np.int16),
        series_uid="1.2.826.0.1.3680043.8.498.3001",
        frame_of_reference_uid="1.2.826.0.1.3680043.8.498.3002",
    )
    transform = _known_transform()
    sitk.WriteTransform(transform, str(folder / "result" / "segments" / REGISTRATION_FILE))
    try:
        files = export_result(folder / "result", tmp_path / "dicom", ct_dir, pre_dir)
    finally:
        (folder / "result" / "segments" / REGISTRATION_FILE).unlink()
    reg, dreg = (pydicom.dcmread(f) for f in files[-2:])
    for path in files[-2:]:
        errors, warnings = dciodvfy(path)
        assert errors == []
        assert all(any(a in w for a in ACCEPTED_WARNINGS) for w in warnings), warnings
    post = read_source_series(ct_dir)
    assert reg.FrameOfReferenceUID == dreg.FrameOfReferenceUID == post.frame_of_reference_uid
    # Rigid: the matrix of the pre frame maps pre points onto post points.
    item = next(
        i
        for i in reg.RegistrationSequence
        if i.FrameOfReferenceUID == "1.2.826.0.1.3680043.8.498.3002"
    )
    m = np.asarray(
        item.MatrixRegistrationSequence[0].MatrixSequence[0].FrameOfReferenceTransformationMatrix,
        float,
    ).reshape(4, 4)
    rigid = sitk.CompositeTransform(transform).GetNthTransform(0)
    for p in ([0.0, 0.0, 0.0], [25.0, -10.0, 8.0]):
        pre_point = np.asarray(rigid.TransformPoint(p))
        assert np.allclose((m @ np.r_[pre_point, 1.0])[:3], p, atol=1e-6)
    # Deformable: the vector at each grid point p is T(p) - p.
    d = dreg.DeformableRegistrationSequence[0]
    assert d.SourceFrameOfReferenceUID == "1.2.826.0.1.3680043.8.498.3002"
    g = d.DeformableRegistrationGridSequence[0]
    nx, ny, nz = (int(v) for v in g.GridDimensions)
    vectors = np.frombuffer(g.VectorGridData, dtype=np.float32).reshape(nz, ny, nx, 3)
    origin = np.asarray(g.ImagePositionPatient, float)
    step = np.asarray(g.GridResolution, float)
    for k, j, i in ((0, 0, 0), (nz - 1, ny // 2, nx // 3), (nz // 2, ny - 1, 1)):
        p = origin + step * np.array([i, j, k])  # axial grid: orientation identity
        expected = np.asarray(transform.TransformPoint(p.tolist())) - p
        assert np.allclose(vectors[k, j, i], expected, atol=1e-4)
