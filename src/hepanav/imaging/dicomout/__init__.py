"""DICOM objects HepaNav writes: SEG, TID 1500 SR, Secondary Capture, (Deformable) Spatial
Registration. Shared by the margin and planning exports (``hepanav.dicom``).

Every builder copies patient/study attributes from the source series, references the
source instances by UID and codes every concept (SCT/DCM, or private 99HEPANAV
codes documented in docs/dicom.md).
"""

from hepanav.imaging.dicomout.codes import UNITS, code, private_codes, standard_codes
from hepanav.imaging.dicomout.sc import build_secondary_capture
from hepanav.imaging.dicomout.seg import Segment, build_seg
from hepanav.imaging.dicomout.source import SourceSeries, read_source_series
from hepanav.imaging.dicomout.sr import (
    build_measurement_report,
    measurement,
    segment_reference,
    tracking,
)
from hepanav.imaging.dicomout.write import write_dataset

__all__ = [
    "UNITS",
    "Segment",
    "SourceSeries",
    "build_measurement_report",
    "build_secondary_capture",
    "build_seg",
    "code",
    "measurement",
    "private_codes",
    "read_source_series",
    "segment_reference",
    "standard_codes",
    "tracking",
    "write_dataset",
]
