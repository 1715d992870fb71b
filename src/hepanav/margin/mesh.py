"""The margin-coloured tumour surface as GIfTI meshes for a browser viewer (NiiVue).

Written next to ``margin.json`` in ``surface/``:

- ``tumour.surf.gii``: the tumour surface (the mesh the margins are measured on),
  vertices in RAS millimetres (``NIFTI_XFORM_SCANNER_ANAT``, the GIfTI convention;
  RAS = LPS with x and y negated), triangles;
- ``tumour_margin.func.gii``: one value per vertex of that mesh, the signed margin in mm
  (negative: residual tumour); vertices left out of the analysis (subcapsular, image
  border) carry the top of the report's scale, 15 mm, as in the report's 3D view;
- ``ablation_zone.surf.gii``: the ablation-zone surface (RAS mm), drawn translucent.

The layers are the report's (:func:`hepanav.margin.views.surface_layers`), so the page
and the report show the same surface and the same values.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hepanav.core.atomic import atomic_path

if TYPE_CHECKING:
    from hepanav.margin.measure import Measurement

SURFACE_FOLDER = "surface"
TUMOUR_MESH = "tumour.surf.gii"
MARGIN_LAYER = "tumour_margin.func.gii"
ZONE_MESH = "ablation_zone.surf.gii"


def lps_to_ras(points_lps: np.ndarray) -> np.ndarray:
    """(N, 3) LPS mm -> (N, 3) RAS mm (x and y negated; a rotation, so winding is kept)."""
    return np.asarray(points_lps, dtype=float) * np.array([-1.0, -1.0, 1.0])


def _surface_image(vertices_lps: np.ndarray, faces: np.ndarray, name: str):
    import nibabel as nib
    from nibabel.gifti import GiftiDataArray, GiftiImage, GiftiMetaData

    meta = GiftiMetaData({"AnatomicalStructurePrimary": "Liver", "Name": name})
    image = GiftiImage(meta=meta)
    points = GiftiDataArray(
        lps_to_ras(vertices_lps).astype(np.float32),
        intent="NIFTI_INTENT_POINTSET",
        datatype="NIFTI_TYPE_FLOAT32",
        encoding="GIFTI_ENCODING_B64GZ",
    )
    points.coordsys = nib.gifti.GiftiCoordSystem(
        dataspace="NIFTI_XFORM_SCANNER_ANAT", xformspace="NIFTI_XFORM_SCANNER_ANAT"
    )
    image.add_gifti_data_array(points)
    image.add_gifti_data_array(
        GiftiDataArray(
            np.asarray(faces, dtype=np.int32),
            intent="NIFTI_INTENT_TRIANGLE",
            datatype="NIFTI_TYPE_INT32",
            encoding="GIFTI_ENCODING_B64GZ",
        )
    )
    return image


def _scalar_image(values: np.ndarray, name: str):
    from nibabel.gifti import GiftiDataArray, GiftiImage, GiftiMetaData

    image = GiftiImage(meta=GiftiMetaData({"Name": name, "Unit": "mm"}))
    image.add_gifti_data_array(
        GiftiDataArray(
            np.asarray(values, dtype=np.float32),
            intent="NIFTI_INTENT_SHAPE",
            datatype="NIFTI_TYPE_FLOAT32",
            encoding="GIFTI_ENCODING_B64GZ",
        )
    )
    return image


def write_surface_meshes(m: Measurement, out: Path) -> dict[str, Path]:
    """Write the tumour surface, its per-vertex margin (mm) and the zone surface (GIfTI).

    Parameters
    ----------
    m : Measurement
        The margin measurement (tumour mesh in LPS mm, ``margin_mm`` per vertex).
    out : Path
        The margin output folder; files go to ``out/surface/``.

    Returns
    -------
    dict
        ``surface_tumour``, ``surface_margin``, ``surface_zone`` -> written paths.
    """
    import nibabel as nib

    from hepanav.margin.views import surface_layers

    tumour, zone = surface_layers(m)
    folder = Path(out) / SURFACE_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for key, file, image in (
        ("surface_tumour", TUMOUR_MESH, _surface_image(tumour.vertices, tumour.faces, "tumour")),
        ("surface_margin", MARGIN_LAYER, _scalar_image(tumour.scalar, "margin_mm")),
        ("surface_zone", ZONE_MESH, _surface_image(zone.vertices, zone.faces, "ablation zone")),
    ):
        target = folder / file
        with atomic_path(target) as tmp:
            nib.save(image, str(tmp))
        written[key] = target
    return written
