"""Spatial Registration (PS3.3 A.39) and Deformable Spatial Registration (A.40) objects.

highdicom has no builder for these, so they are assembled with pydicom module by
module. Conventions (also in docs/dicom.md):

- The object's Frame of Reference is the *registered* RCS: the post-procedure CT.
- Spatial Registration: one item for the post frame (identity) and one for the pre
  frame whose 4x4 matrix maps pre-CT points to post-CT points (LPS mm), as PS3.3
  C.20.2.1.1 defines ``registered = M . source``.
- Deformable Spatial Registration: the Source Frame of Reference is the pre CT; the
  grid lies in the post frame; the vector at grid point ``p`` is ``d`` with
  ``p + d`` the corresponding pre-CT point (the resampling convention of ITK), with
  identity pre- and post-deformation matrices, so the vectors carry the whole
  (rigid + deformable) mapping.
"""

from __future__ import annotations

import datetime

import highdicom as hd
import numpy as np
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

from hepanav import __version__
from hepanav.imaging.dicomout.seg import MANUFACTURER, MODEL
from hepanav.imaging.dicomout.source import SourceSeries

SPATIAL_REGISTRATION = "1.2.840.10008.5.1.4.1.1.66.1"
DEFORMABLE_REGISTRATION = "1.2.840.10008.5.1.4.1.1.66.3"
_PATIENT_STUDY = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
    "StudyDescription",
)


def _base(sop_class: str, registered: SourceSeries, description: str, series_number: int):
    ref = registered.first
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = hd.UID()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.SpecificCharacterSet = ref.get("SpecificCharacterSet", "ISO_IR 192")
    for keyword in _PATIENT_STUDY:  # Patient and General Study modules from the source
        setattr(ds, keyword, ref.get(keyword, ""))
    now = datetime.datetime.now()
    ds.Modality = "REG"
    ds.SeriesInstanceUID = hd.UID()
    ds.SeriesNumber = series_number
    ds.SeriesDescription = description
    ds.Laterality = None  # Type 2C; the abdomen is unpaired (dciodvfy wants it present)
    ds.FrameOfReferenceUID = registered.frame_of_reference_uid
    ds.PositionReferenceIndicator = ref.get("PositionReferenceIndicator", "")
    ds.Manufacturer = MANUFACTURER
    ds.ManufacturerModelName = MODEL
    ds.DeviceSerialNumber = "0"
    ds.SoftwareVersions = __version__
    ds.InstanceNumber = 1
    ds.ContentDate = now.strftime("%Y%m%d")
    ds.ContentTime = now.strftime("%H%M%S")
    ds.ContentLabel = "HEPANAV_REG"
    ds.ContentDescription = description
    ds.ContentCreatorName = ""
    return ds


def _image_references(series: SourceSeries) -> Sequence:
    items = []
    for d in series.datasets:
        item = Dataset()
        item.ReferencedSOPClassUID = d.SOPClassUID
        item.ReferencedSOPInstanceUID = d.SOPInstanceUID
        items.append(item)
    return Sequence(items)


def _common_instance_reference(ds: Dataset, series_list: list[SourceSeries]) -> None:
    """Common Instance Reference module: every referenced series, by study."""
    same, other = [], {}
    for series in series_list:
        item = Dataset()
        item.SeriesInstanceUID = series.series_uid
        item.ReferencedInstanceSequence = _image_references(series)
        if series.study_uid == ds.StudyInstanceUID:
            same.append(item)
        else:
            other.setdefault(series.study_uid, []).append(item)
    if same:
        ds.ReferencedSeriesSequence = Sequence(same)
    if other:
        studies = []
        for uid, items in other.items():
            study = Dataset()
            study.StudyInstanceUID = uid
            study.ReferencedSeriesSequence = Sequence(items)
            studies.append(study)
        ds.StudiesContainingOtherReferencedInstancesSequence = Sequence(studies)


def _matrix_item(matrix: np.ndarray, kind: str = "RIGID") -> Dataset:
    item = Dataset()
    item.FrameOfReferenceTransformationMatrixType = kind
    item.FrameOfReferenceTransformationMatrix = [f"{v:.10g}" for v in np.ravel(matrix)]
    return item


def _registration_type() -> Sequence:
    # PS3.16 CID 7100 "RCS Registration Method Type": both parts of HepaNav's
    # registration are optimised on image content (liver intensities and masks).
    code = Dataset()
    code.CodeValue = "125024"
    code.CodingSchemeDesignator = "DCM"
    code.CodeMeaning = "Image Content-based Alignment"
    return Sequence([code])


def build_spatial_registration(
    pre: SourceSeries,
    post: SourceSeries,
    pre_to_post: np.ndarray,
    description: str = "HepaNav rigid registration pre -> post",
) -> Dataset:
    """Spatial Registration object: ``pre_to_post`` (4x4, LPS mm) maps pre-CT points to
    post-CT points; the object lies in the post CT's frame and study."""
    ds = _base(SPATIAL_REGISTRATION, post, description, 904)
    items = []
    for series, matrix in ((post, np.eye(4)), (pre, np.asarray(pre_to_post, float))):
        item = Dataset()
        item.FrameOfReferenceUID = series.frame_of_reference_uid
        item.ReferencedImageSequence = _image_references(series)
        reg = Dataset()
        reg.MatrixSequence = Sequence([_matrix_item(matrix)])
        reg.RegistrationTypeCodeSequence = _registration_type()
        item.MatrixRegistrationSequence = Sequence([reg])
        items.append(item)
    ds.RegistrationSequence = Sequence(items)
    _common_instance_reference(ds, [post, pre])
    return ds


def build_deformable_registration(
    pre: SourceSeries,
    post: SourceSeries,
    post_to_pre: sitk.Transform,
    grid_spacing_mm: float = 5.0,
    description: str = "HepaNav deformable registration pre -> post",
) -> Dataset:
    """Deformable Spatial Registration: ``post_to_pre`` (ITK convention: maps post-CT
    points to pre-CT points) sampled on a grid over the post CT, ``grid_spacing_mm``
    apart, as displacement vectors (mm, LPS)."""
    ds = _base(DEFORMABLE_REGISTRATION, post, description, 905)
    ref = post.first
    iop = np.asarray(ref.ImageOrientationPatient, float)
    direction = np.column_stack([iop[:3], iop[3:], np.cross(iop[:3], iop[3:])])
    first = np.asarray(ref.ImagePositionPatient, float)
    last = np.asarray(post.datasets[-1].ImagePositionPatient, float)
    extent = np.array(
        [
            float(ref.Columns) * float(ref.PixelSpacing[1]),
            float(ref.Rows) * float(ref.PixelSpacing[0]),
            float(np.dot(last - first, direction[:, 2])),
        ]
    )
    size = [max(2, int(np.ceil(e / grid_spacing_mm)) + 1) for e in extent]
    field = sitk.TransformToDisplacementField(
        post_to_pre,
        sitk.sitkVectorFloat64,
        size,
        first.tolist(),
        [grid_spacing_mm] * 3,
        direction.ravel().tolist(),
    )
    vectors = sitk.GetArrayFromImage(field).astype(np.float32)  # (z, y, x, 3), x fastest
    item = Dataset()
    item.SourceFrameOfReferenceUID = pre.frame_of_reference_uid
    item.ReferencedImageSequence = _image_references(pre)
    item.RegistrationTypeCodeSequence = _registration_type()
    grid = Dataset()
    grid.ImagePositionPatient = [f"{v:.6g}" for v in first]
    grid.ImageOrientationPatient = [f"{v:.8g}" for v in iop]
    grid.GridDimensions = [int(s) for s in size]
    grid.GridResolution = [grid_spacing_mm] * 3
    grid.VectorGridData = vectors.tobytes()
    item.DeformableRegistrationGridSequence = Sequence([grid])
    item.PreDeformationMatrixRegistrationSequence = Sequence([_matrix_item(np.eye(4))])
    item.PostDeformationMatrixRegistrationSequence = Sequence([_matrix_item(np.eye(4))])
    ds.DeformableRegistrationSequence = Sequence([item])
    _common_instance_reference(ds, [post, pre])
    return ds


# SimpleITK transform names of affine-like transforms ("Transform": a generic identity).
_AFFINE_NAMES = frozenset(
    {
        "Euler3DTransform",
        "VersorRigid3DTransform",
        "Similarity3DTransform",
        "ScaleVersor3DTransform",
        "AffineTransform",
        "TranslationTransform",
        "ScaleTransform",
        "IdentityTransform",
        "Transform",
    }
)


def rigid_pre_to_post(post_to_pre: sitk.Transform) -> np.ndarray:
    """4x4 matrix (LPS mm) mapping pre to post: the inverse of the rigid (first) part of a
    post -> pre registration (a composite of a rigid and a deformable transform).

    The first part may be any affine-like transform (Euler 3D, translation, identity,
    affine): its matrix is read from the images of the origin and the unit vectors, so
    every shape a registration returns is handled alike.
    """
    t = post_to_pre
    if isinstance(t, sitk.CompositeTransform) or t.GetName() == "CompositeTransform":
        t = sitk.CompositeTransform(t).GetNthTransform(0)
    if t.GetName() not in _AFFINE_NAMES:
        raise ValueError(f"the registration's first part ({t.GetName()}) is not rigid/affine")
    origin = np.asarray(t.TransformPoint((0.0, 0.0, 0.0)))
    m = np.eye(4)
    for axis in range(3):
        unit = [0.0, 0.0, 0.0]
        unit[axis] = 1.0
        m[:3, axis] = np.asarray(t.TransformPoint(unit)) - origin
    m[:3, 3] = origin
    probe = np.array([137.0, -211.0, 305.0])  # off-axis point: is the first part affine?
    if not np.allclose(m[:3, :3] @ probe + origin, t.TransformPoint(probe.tolist()), atol=1e-6):
        raise ValueError(f"the registration's first part ({t.GetName()}) is not rigid/affine")
    return np.linalg.inv(m)
