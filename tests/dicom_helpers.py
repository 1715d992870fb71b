"""Write small synthetic CT DICOM series for tests (with SimpleITK's GDCM writer)."""

from __future__ import annotations

import locale
from pathlib import Path

import numpy as np
import SimpleITK as sitk


def write_ct_series(
    folder: Path,
    volume_zyx: np.ndarray,
    spacing_xyz: tuple[float, float, float] = (0.8, 0.8, 2.0),
    origin_xyz: tuple[float, float, float] = (-100.0, -120.0, -50.0),
    series_uid: str = "1.2.826.0.1.3680043.8.498.1001",
    slice_positions_mm: list[float] | None = None,
    prefix: str = "slice",
    extra_tags: dict[str, str] | None = None,
) -> list[Path]:
    """Write ``volume_zyx`` (HU, int16) as one DICOM file per slice; return the file paths.

    ``slice_positions_mm`` overrides the z position of each slice (to make uneven
    spacing); by default slices are ``spacing_xyz[2]`` apart starting at ``origin_xyz[2]``.
    ``extra_tags`` ("gggg|eeee" -> value) are added to (or override) every slice's
    header, e.g. a Frame of Reference UID or synthetic patient attributes.
    """
    # GDCM's writer switches the process locale to "C" and leaves it there, which
    # would make later text I/O with the default encoding ASCII; restore it.
    saved = locale.setlocale(locale.LC_ALL)
    try:
        return _write(
            folder,
            volume_zyx,
            spacing_xyz,
            origin_xyz,
            series_uid,
            slice_positions_mm,
            prefix,
            extra_tags or {},
        )
    finally:
        locale.setlocale(locale.LC_ALL, saved)


def _write(
    folder, volume_zyx, spacing_xyz, origin_xyz, series_uid, slice_positions_mm, prefix, extra_tags
):
    folder.mkdir(parents=True, exist_ok=True)
    nz = volume_zyx.shape[0]
    zs = slice_positions_mm or [origin_xyz[2] + k * spacing_xyz[2] for k in range(nz)]
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    paths = []
    for k in range(nz):
        image = sitk.GetImageFromArray(volume_zyx[k : k + 1].astype(np.int16))
        image.SetSpacing(spacing_xyz)
        tags = {
            "0008|0060": "CT",
            "0008|0016": "1.2.840.10008.5.1.4.1.1.2",
            "0008|0018": f"{series_uid}.{k + 1}",
            "0020|000d": "1.2.826.0.1.3680043.8.498.1",
            "0020|000e": series_uid,
            "0020|0013": str(k + 1),
            "0020|0032": "\\".join(f"{v:.4f}" for v in (origin_xyz[0], origin_xyz[1], zs[k])),
            "0020|0037": "1\\0\\0\\0\\1\\0",
            "0028|0030": f"{spacing_xyz[1]:.4f}\\{spacing_xyz[0]:.4f}",
            "0018|0050": f"{spacing_xyz[2]:.4f}",
            "0028|1052": "0",
            "0028|1053": "1",
        }
        tags.update(extra_tags)
        for tag, value in tags.items():
            image.SetMetaData(tag, value)
        path = folder / f"{prefix}{k:03d}.dcm"
        writer.SetFileName(str(path))
        writer.Execute(image)
        paths.append(path)
    return paths


# --- pydicom writers with full control of every header (tilt, scouts, slopes...) ---

STUDY_UID = "1.2.826.0.1.3680043.8.498.1"
FOR_UID = "1.2.826.0.1.3680043.8.498.7"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT = "1.2.840.10008.5.1.4.1.1.2.1"


def _file_meta(sop_class: str, sop_uid: str):
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return meta


def _common(ds, series_uid: str, description: str, modality: str = "CT") -> None:
    ds.PatientName = "Phantom^Test"
    ds.PatientID = "PHANTOM1"
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.StudyInstanceUID = STUDY_UID
    ds.StudyDate = "20260101"
    ds.StudyTime = "120000"
    ds.StudyID = "1"
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = 1
    ds.SeriesDescription = description
    ds.Modality = modality
    ds.FrameOfReferenceUID = FOR_UID
    ds.Manufacturer = "HepaNav tests"


def ct_slice_dataset(
    pixels: np.ndarray,
    position: tuple[float, float, float],
    *,
    orientation=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
    pixel_spacing=(0.8, 0.8),
    series_uid: str = "1.2.826.0.1.3680043.8.498.2001",
    sop_uid: str = "1.2.826.0.1.3680043.8.498.2001.1",
    instance: int = 1,
    slope: float = 1.0,
    intercept: float = -1024.0,
    image_type=("ORIGINAL", "PRIMARY", "AXIAL"),
    description: str = "CT test series",
):
    """A single-frame CT Image Storage dataset; ``pixels`` are stored values (uint16 or int16)."""
    from pydicom.dataset import FileDataset

    ds = FileDataset(None, {}, file_meta=_file_meta(CT_IMAGE, sop_uid), preamble=b"\0" * 128)
    _common(ds, series_uid, description)
    ds.SOPClassUID = CT_IMAGE
    ds.SOPInstanceUID = sop_uid
    ds.InstanceNumber = instance
    ds.ImageType = list(image_type)
    ds.AcquisitionDate = "20260101"
    ds.ImagePositionPatient = [f"{v:.6f}" for v in position]
    ds.ImageOrientationPatient = [f"{v:.8f}" for v in orientation]
    ds.PixelSpacing = [f"{v:.6f}" for v in pixel_spacing]
    ds.SliceThickness = "1"
    ds.RescaleSlope = f"{slope:.10g}"
    ds.RescaleIntercept = f"{intercept:.10g}"
    ds.RescaleType = "HU"
    ds.KVP = "120"
    _pixel_module(ds, pixels)
    return ds


def _pixel_module(ds, pixels: np.ndarray) -> None:
    pixels = np.asarray(pixels)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape[-2:]
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if pixels.dtype.kind == "i" else 0
    ds.PixelData = np.ascontiguousarray(
        pixels.astype(np.int16 if pixels.dtype.kind == "i" else np.uint16)
    ).tobytes()


def write_slices(folder: Path, datasets, prefix: str = "ct") -> list[Path]:
    """Write datasets as ``prefix###.dcm`` files in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, ds in enumerate(datasets):
        path = folder / f"{prefix}{i:03d}.dcm"
        ds.save_as(str(path), enforce_file_format=True)
        paths.append(path)
    return paths


def volume_slices(
    hu_zyx: np.ndarray,
    positions: list[tuple[float, float, float]],
    *,
    orientation=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
    pixel_spacing=(0.8, 0.8),
    series_uid: str = "1.2.826.0.1.3680043.8.498.2001",
    slopes: list[float] | None = None,
    intercept: float = -1024.0,
    description: str = "CT test series",
):
    """One CT dataset per slice of ``hu_zyx`` (HU) at the given LPS positions.

    Stored values are ``(hu - intercept) / slope`` (exact when ``hu`` is chosen so).
    """
    out = []
    for k, pos in enumerate(positions):
        slope = 1.0 if slopes is None else slopes[k]
        stored = np.rint((hu_zyx[k] - intercept) / slope).astype(np.uint16)
        out.append(
            ct_slice_dataset(
                stored,
                pos,
                orientation=orientation,
                pixel_spacing=pixel_spacing,
                series_uid=series_uid,
                sop_uid=f"{series_uid}.{k + 1}",
                instance=k + 1,
                slope=slope,
                intercept=intercept,
                description=description,
            )
        )
    return out


def enhanced_ct_dataset(
    hu_zyx: np.ndarray,
    positions: list[tuple[float, float, float]],
    *,
    orientation=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
    pixel_spacing=(0.8, 0.8),
    series_uid: str = "1.2.826.0.1.3680043.8.498.3001",
    intercept: float = -1024.0,
):
    """An Enhanced CT (multi-frame) dataset with per-frame Plane Position functional groups."""
    from pydicom.dataset import Dataset, FileDataset
    from pydicom.sequence import Sequence

    sop_uid = series_uid + ".1"
    ds = FileDataset(None, {}, file_meta=_file_meta(ENHANCED_CT, sop_uid), preamble=b"\0" * 128)
    _common(ds, series_uid, "Enhanced CT test")
    ds.SOPClassUID = ENHANCED_CT
    ds.SOPInstanceUID = sop_uid
    ds.InstanceNumber = 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL", "NONE"]
    ds.NumberOfFrames = len(positions)
    shared = Dataset()
    measures = Dataset()
    measures.PixelSpacing = [f"{v:.6f}" for v in pixel_spacing]
    measures.SliceThickness = "1"
    shared.PixelMeasuresSequence = Sequence([measures])
    orient = Dataset()
    orient.ImageOrientationPatient = [f"{v:.8f}" for v in orientation]
    shared.PlaneOrientationSequence = Sequence([orient])
    transform = Dataset()
    transform.RescaleSlope = "1"
    transform.RescaleIntercept = f"{intercept:g}"
    transform.RescaleType = "HU"
    shared.PixelValueTransformationSequence = Sequence([transform])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per_frame = []
    for pos in positions:
        item = Dataset()
        plane = Dataset()
        plane.ImagePositionPatient = [f"{v:.6f}" for v in pos]
        item.PlanePositionSequence = Sequence([plane])
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    _pixel_module(ds, np.rint(hu_zyx - intercept).astype(np.uint16))
    return ds


def write_seg(
    path: Path, ct_datasets, segments: dict[str, np.ndarray], fractional: bool = False
) -> Path:
    """A DICOM SEG (highdicom) on the grid of ``ct_datasets`` with one segment per entry.

    Each mask is ``(n_slices, rows, cols)`` in the order of ``ct_datasets``; empty
    frames are omitted (sparse SEG).
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    descriptions = []
    for number, name in enumerate(segments, start=1):
        descriptions.append(
            hd.seg.SegmentDescription(
                segment_number=number,
                segment_label=name,
                segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
                segmented_property_type=codes.SCT.Neoplasm,
                algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
            )
        )
    stacked = np.stack([np.asarray(m) for m in segments.values()], axis=-1)
    pixel_array = stacked.astype(np.float32 if fractional else np.uint8)
    seg = hd.seg.Segmentation(
        source_images=list(ct_datasets),
        pixel_array=pixel_array,
        segmentation_type=(
            hd.seg.SegmentationTypeValues.FRACTIONAL
            if fractional
            else hd.seg.SegmentationTypeValues.BINARY
        ),
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=10,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="HepaNav tests",
        manufacturer_model_name="tests",
        software_versions="0",
        device_serial_number="0",
    )
    seg.save_as(str(path))
    return path


def write_rtstruct(
    path: Path,
    ct_datasets,
    rois: dict[str, list[np.ndarray]],
    *,
    geometric_type: str = "CLOSED_PLANAR",
    frame_of_reference_uid: str | None = None,
    referenced_series_uid: str | None = None,
) -> Path:
    """An RT Structure Set whose ROIs are lists of contours, each (N, 3) LPS mm points."""
    from pydicom.dataset import Dataset, FileDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import generate_uid

    rt_class = "1.2.840.10008.5.1.4.1.1.481.3"
    sop_uid = generate_uid()
    first = ct_datasets[0]
    for_uid = frame_of_reference_uid or str(first.FrameOfReferenceUID)
    ds = FileDataset(None, {}, file_meta=_file_meta(rt_class, sop_uid), preamble=b"\0" * 128)
    _common(ds, generate_uid(), "RTSTRUCT test", modality="RTSTRUCT")
    del ds.FrameOfReferenceUID
    ds.SOPClassUID = rt_class
    ds.SOPInstanceUID = sop_uid
    ds.StructureSetLabel = "contours"
    ds.StructureSetDate = "20260101"
    ds.StructureSetTime = "120000"
    ds.OperatorsName = ""
    ds.InstanceNumber = 1
    ref_series = Dataset()
    ref_series.SeriesInstanceUID = referenced_series_uid or str(first.SeriesInstanceUID)
    contour_images = []
    for ct in ct_datasets:
        item = Dataset()
        item.ReferencedSOPClassUID = ct.SOPClassUID
        item.ReferencedSOPInstanceUID = ct.SOPInstanceUID
        contour_images.append(item)
    ref_series.ContourImageSequence = Sequence(contour_images)
    ref_study = Dataset()
    ref_study.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    ref_study.ReferencedSOPInstanceUID = first.StudyInstanceUID
    ref_study.RTReferencedSeriesSequence = Sequence([ref_series])
    ref_for = Dataset()
    ref_for.FrameOfReferenceUID = for_uid
    ref_for.RTReferencedStudySequence = Sequence([ref_study])
    ds.ReferencedFrameOfReferenceSequence = Sequence([ref_for])
    roi_items, contour_items, observations = [], [], []
    for number, (name, contours) in enumerate(rois.items(), start=1):
        roi = Dataset()
        roi.ROINumber = number
        roi.ReferencedFrameOfReferenceUID = for_uid
        roi.ROIName = name
        roi.ROIGenerationAlgorithm = "MANUAL"
        roi_items.append(roi)
        rc = Dataset()
        rc.ReferencedROINumber = number
        rc.ROIDisplayColor = [230, 159, 0]
        seq = []
        for points in contours:
            c = Dataset()
            c.ContourGeometricType = geometric_type
            c.NumberOfContourPoints = len(points)
            c.ContourData = [f"{v:.4f}" for v in np.asarray(points, dtype=float).ravel()]
            seq.append(c)
        rc.ContourSequence = Sequence(seq)
        contour_items.append(rc)
        obs = Dataset()
        obs.ObservationNumber = number
        obs.ReferencedROINumber = number
        obs.RTROIInterpretedType = "ORGAN"
        obs.ROIInterpreter = ""
        observations.append(obs)
    ds.StructureSetROISequence = Sequence(roi_items)
    ds.ROIContourSequence = Sequence(contour_items)
    ds.RTROIObservationsSequence = Sequence(observations)
    ds.save_as(str(path), enforce_file_format=True)
    return path


def circle_contour(center_lps, radius_mm: float, n: int = 64) -> np.ndarray:
    """A closed planar circle (n points) in the axial plane through ``center_lps``."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    c = np.asarray(center_lps, dtype=float)
    return np.stack(
        [c[0] + radius_mm * np.cos(t), c[1] + radius_mm * np.sin(t), np.full(n, c[2])], axis=1
    )


def write_slicer_seg(
    path: Path,
    layers_xyz: list[np.ndarray],
    segments: list[tuple[str, int, int]],
    *,
    spacing=(1.0, 1.0, 1.0),
    origin_lps=(0.0, 0.0, 0.0),
    space: str = "left-posterior-superior",
) -> Path:
    """A 3D Slicer ``.seg.nrrd``: layers (x, y, z) and segments (name, layer, label value)."""
    import nrrd

    directions = np.diag(spacing).astype(float)
    origin = np.asarray(origin_lps, dtype=float)
    if space == "right-anterior-superior":
        directions = np.diag([-1.0, -1.0, 1.0]) @ directions
        origin = np.diag([-1.0, -1.0, 1.0]) @ origin
    header = {"space": space, "space origin": origin}
    if len(layers_xyz) > 1:
        data = np.stack(layers_xyz, axis=0).astype(np.uint8)
        header["kinds"] = ["list", "domain", "domain", "domain"]
        header["space directions"] = np.vstack([np.full(3, np.nan), directions])
    else:
        data = layers_xyz[0].astype(np.uint8)
        header["kinds"] = ["domain", "domain", "domain"]
        header["space directions"] = directions
    for i, (name, layer, value) in enumerate(segments):
        header[f"Segment{i}_ID"] = f"Segment_{i + 1}"
        header[f"Segment{i}_Name"] = name
        header[f"Segment{i}_Layer"] = str(layer)
        header[f"Segment{i}_LabelValue"] = str(value)
    nrrd.write(str(path), data, header)
    return path
