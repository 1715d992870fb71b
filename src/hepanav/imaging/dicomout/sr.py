"""Comprehensive 3D SR following TID 1500 (Measurement Report), built with highdicom.sr.

Helpers turn (code, value, unit) triples into TID 300 measurements and attach the
99HEPANAV coding scheme declaration every SR with private codes needs.
"""

from __future__ import annotations

from collections.abc import Sequence

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from hepanav import __version__
from hepanav.imaging.dicomout.codes import UNITS, coding_scheme_identification
from hepanav.imaging.dicomout.seg import MANUFACTURER, MODEL

# PS3.16 TID 1500 row 12: the container of qualitative evaluations about the whole report
# (rows 13/14: CODE or TEXT items). UMLS C0034375 as the template gives it (pydicom's code
# dictionary does not list it).
QUALITATIVE_EVALUATIONS = Code("C0034375", "UMLS", "Qualitative Evaluations")


def algorithm() -> hd.sr.AlgorithmIdentification:
    """TID 4019 Algorithm Identification naming HepaNav and its version."""
    return hd.sr.AlgorithmIdentification(name="HepaNav", version=__version__)


def measurement(
    name: Code,
    value: float,
    unit: str,
    point_lps: Sequence[float] | None = None,
    frame_of_reference_uid: str | None = None,
) -> hd.sr.Measurement:
    """A TID 300 measurement with a UCUM unit (``UNITS`` key), optionally located at a point.

    ``point_lps`` (mm, LPS in ``frame_of_reference_uid``) becomes an INFERRED FROM
    SCOORD3D POINT, e.g. the location of the minimal ablative margin.
    """
    coordinates = None
    if point_lps is not None:
        coordinates = [
            hd.sr.CoordinatesForMeasurement3D(
                graphic_type=hd.sr.GraphicTypeValues3D.POINT,
                graphic_data=np.asarray([point_lps], dtype=float),
                frame_of_reference_uid=frame_of_reference_uid,
            )
        ]
    return hd.sr.Measurement(
        name=name,
        value=float(value),
        unit=UNITS[unit],
        algorithm_id=algorithm(),
        referenced_coordinates=coordinates,
    )


def segment_reference(seg: hd.seg.Segmentation, number: int) -> hd.sr.ReferencedSegment:
    """Reference to segment ``number`` of ``seg`` (all its frames) for a TID 1411 group."""
    # highdicom's from_segmentation() reads per-frame segment ids, which a one-segment
    # SEG keeps in the shared functional groups; referencing the whole segment with its
    # source series is equivalent and works for both.
    return hd.sr.ReferencedSegment(
        sop_class_uid=seg.SOPClassUID,
        sop_instance_uid=seg.SOPInstanceUID,
        segment_number=number,
        source_series=hd.sr.SourceSeriesForSegmentation(
            seg.ReferencedSeriesSequence[0].SeriesInstanceUID
        ),
    )


def tracking(uid_text: str) -> hd.sr.TrackingIdentifier:
    """TID 4108 tracking identifier with a fresh UID."""
    return hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=uid_text)


def build_measurement_report(
    evidence: list[Dataset],
    groups: list,
    series_description: str,
    series_number: int = 902,
    procedure: Code = codes.SCT.ComputedTomography,
    texts: Sequence[tuple[Code, str]] = (),
) -> hd.sr.Comprehensive3DSR:
    """A Comprehensive 3D SR whose content is one TID 1500 Measurement Report.

    Parameters
    ----------
    evidence : list of pydicom.Dataset
        Every object the measurements refer to (source CT slices, SEG); patient and
        study attributes are copied from them by highdicom.
    groups : list
        TID 1501 / 1410 / 1411 measurement groups.
    series_description : str
        Series Description of the new SR series.
    texts : sequence of (Code, str)
        Free-text qualitative evaluations of the whole report (e.g. a plan's warnings):
        one TEXT content item each (concept name, text), in a TID 1500 *Qualitative
        Evaluations* container (rows 12 and 14). Empty: no container.

    Notes
    -----
    The 99HEPANAV private scheme is declared in the Coding Scheme Identification
    Sequence (PS3.3 C.12.1.1.3) next to the schemes highdicom declares.
    """
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=hd.UID(),
            name="HepaNav",
            manufacturer_name=MANUFACTURER,
            model_name=MODEL,
        ),
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=procedure,
        imaging_measurements=groups,
    )
    if texts:
        contains = hd.sr.RelationshipTypeValues.CONTAINS
        container = hd.sr.ContainerContentItem(
            name=QUALITATIVE_EVALUATIONS, relationship_type=contains
        )
        container.ContentSequence = hd.sr.ContentSequence(
            [hd.sr.TextContentItem(name=n, value=t, relationship_type=contains) for n, t in texts]
        )
        report[0].ContentSequence.append(container)
    sr = hd.sr.Comprehensive3DSR(
        evidence=evidence,
        content=report,
        series_instance_uid=hd.UID(),
        series_number=series_number,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        series_description=series_description,
        is_complete=True,
        is_final=False,
        is_verified=False,
    )
    if not all(t.isascii() for _, t in texts):
        # a user's label or group name in a warning: UTF-8 (PS3.3 C.12.1.1.2), not "?"
        sr.SpecificCharacterSet = "ISO_IR 192"
    declared = list(getattr(sr, "CodingSchemeIdentificationSequence", []))
    declared.append(coding_scheme_identification())
    sr.CodingSchemeIdentificationSequence = declared
    return sr
