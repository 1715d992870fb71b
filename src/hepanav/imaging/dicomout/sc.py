"""Secondary Capture images of report figures (highdicom.sc), so any PACS viewer shows them."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import highdicom as hd
import numpy as np
from PIL import Image
from pydicom.dataset import Dataset

from hepanav.imaging.dicomout.seg import MANUFACTURER

LT_MAX = 10240  # characters of an LT value (PS3.5 6.2), e.g. Image Comments


def build_secondary_capture(
    png: Path | bytes,
    reference: Dataset,
    series_uid: str,
    instance_number: int,
    series_description: str,
    series_number: int = 903,
    warnings: Sequence[str] = (),
) -> hd.sc.SCImage:
    """An RGB Secondary Capture of the figure ``png`` (file or PNG bytes) in ``reference``'s study.

    Patient and study attributes are copied from ``reference`` (a source slice).
    The figure is not in patient coordinates; Patient Orientation is left empty.
    ``warnings`` (texts, e.g. a plan's) follow the figure's description in Image Comments
    as ``WARNING: ...``; beyond the 10240 characters of an LT value the comment is cut
    and says so (the SR of the same export holds every warning whole). A comment that is
    not ASCII sets Specific Character Set ``ISO_IR 192`` (UTF-8).

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
    comments = f"HepaNav report figure: {series_description}"
    if warnings:
        comments += ". " + " ".join(f"WARNING: {w}" for w in warnings)
    if len(comments) > LT_MAX:
        cut = " ... (cut: every warning is in the SR of this export)"
        comments = comments[: LT_MAX - len(cut)] + cut
    sc.ImageComments = comments
    if not comments.isascii():
        # a "±" of a margin verdict, a user's structure name in a plan warning: UTF-8
        # (PS3.3 C.12.1.1.2), not Latin-1 bytes under the default repertoire nor "?"
        sc.SpecificCharacterSet = "ISO_IR 192"
    sc.BurnedInAnnotation = "YES"  # the figure has text (titles, numbers) burned in
    return sc
