"""Binary DICOM Segmentation (SEG) objects on a source CT series (highdicom)."""

from __future__ import annotations

from dataclasses import dataclass

import highdicom as hd
import numpy as np
import SimpleITK as sitk
from pydicom.sr.coding import Code

from hepanav import __version__
from hepanav.imaging.dicomout.source import SourceSeries

MANUFACTURER = "HepaNav project"
MODEL = "HepaNav"


@dataclass
class Segment:
    """One segment of a SEG.

    Attributes
    ----------
    label : str
        Segment Label (shown by viewers).
    mask : SimpleITK.Image
        uint8 0/1 on the source series' voxel grid.
    category : Code
        Segmented Property Category (PS3.16 CID 7150).
    type : Code
        Segmented Property Type (CID 7151 or a private 99HEPANAV code).
    """

    label: str
    mask: sitk.Image
    category: Code
    type: Code


def algorithm() -> hd.AlgorithmIdentificationSequence:
    """HepaNav as the segmentation algorithm.

    Family: CID 7162 "Morphological operations" (thresholded, resampled and
    distance-selected masks; no machine learning).
    """
    from pydicom.sr.codedict import codes

    return hd.AlgorithmIdentificationSequence(
        name="HepaNav", version=__version__, family=codes.cid7162.MorphologicalOperations
    )


def build_seg(
    source: SourceSeries,
    segments: list[Segment],
    series_description: str,
    series_number: int = 901,
) -> tuple[hd.seg.Segmentation, list[str]]:
    """A binary SEG on ``source``'s frame of reference, one segment per non-empty mask.

    Patient and study attributes are copied from the source datasets by highdicom;
    the source slices are referenced by their SOP Instance UIDs.

    Parameters
    ----------
    source : SourceSeries
        The CT series the masks lie on (same grid; checked).
    segments : list of Segment
        Masks in segment-number order (1, 2, ...).
    series_description : str
        Series Description of the new SEG series.

    Returns
    -------
    (highdicom.seg.Segmentation, list of str)
        The SEG and the labels of segments left out because their mask is empty
        (a SEG segment needs at least one frame).

    Raises
    ------
    InputError
        A mask that is not on the source series' grid.
    ValueError
        No non-empty segment at all.
    """
    kept, empty = [], []
    for seg in segments:
        source.check_grid(seg.mask, seg.label)
        (kept if np.any(sitk.GetArrayViewFromImage(seg.mask)) else empty).append(seg)
    if not kept:
        raise ValueError("every segment is empty; nothing to write")
    stack = np.stack(
        [sitk.GetArrayFromImage(s.mask).astype(bool) for s in kept], axis=-1
    )  # (frames=z, rows=y, cols=x, segments)
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=i + 1,
            segment_label=s.label,
            segmented_property_category=s.category,
            segmented_property_type=s.type,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm(),
        )
        for i, s in enumerate(kept)
    ]
    seg = hd.seg.Segmentation(
        source_images=source.datasets,
        pixel_array=stack.astype(np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=series_number,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=MODEL,
        software_versions=__version__,
        device_serial_number="0",
        series_description=series_description,
    )
    return seg, [s.label for s in empty]
