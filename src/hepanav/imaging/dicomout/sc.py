"""Secondary Capture images of report figures (highdicom.sc), so any PACS viewer shows them."""

from __future__ import annotations

import io
from pathlib import Path

import highdicom as hd
import numpy as np
from PIL import Image
from pydicom.dataset import Dataset

from hepanav.imaging.dicomout.seg import MANUFACTURER


def build_secondary_capture(
    png: Path | bytes,
    reference: Dataset,
    series_uid: str,
    instance_number: int,
    series_description: str,
    series_number: int = 903,
) -> hd.sc.SCImage:
    """An RGB Secondary Capture of the figure ``png`` (file or PNG bytes) in ``reference``'s study.

    Patient and study attributes are copied from ``reference`` (a source slice).
    The figure is not in patient coordinates; Patient Orientation is left empty.

    Raises
    ------
    FileNotFoundError
        Missing figure (a programming error: the report writes it).
    """
    with Image.open(io.BytesIO(png) if isinstance(png, bytes) else png) as im:
        rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
    sc = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=reference,
        pixel_array=rgb,
        photometric_interpretation=hd.PhotometricInterpretationValues.RGB,
        bits_allocated=8,
        coordinate_system=hd.CoordinateSystemNames.PATIENT,
        series_instance_uid=series_uid,
        series_number=series_number,
        sop_instance_uid=hd.UID(),
        instance_number=instance_number,
        manufacturer=MANUFACTURER,
        patient_orientation=("L", "P"),
    )
    # A report figure (several panels, plots) has no single patient orientation;
    # highdicom insists on a value, PS3.3 C.7.6.1 allows Patient Orientation empty
    # (Type 2C), which says "unknown" truthfully.
    sc.PatientOrientation = None
    # General Series Laterality is Type 2C (paired body parts); the abdomen is not
    # paired, so present and empty, as dciodvfy's reading of the condition requires.
    sc.Laterality = None
    sc.SeriesDescription = series_description
    sc.ImageComments = f"HepaNav report figure: {series_description}"
    sc.BurnedInAnnotation = "YES"  # the figure has text (titles, numbers) burned in
    return sc
