"""Typed descriptions of image geometry."""

from __future__ import annotations

import SimpleITK as sitk
from pydantic import BaseModel, ConfigDict, Field


class Geometry(BaseModel):
    """The grid of a 3D image in physical space (ITK conventions, LPS, millimetres).

    ``size`` and ``spacing`` are in (x, y, z) order, ``direction`` is the 3x3
    matrix of the axes' unit vectors as columns, flattened row-major (as
    ``SimpleITK.Image.GetDirection``).
    """

    model_config = ConfigDict(frozen=True)

    size: tuple[int, int, int] = Field(description="voxels along x, y, z")
    spacing: tuple[float, float, float] = Field(description="voxel size along x, y, z in mm")
    origin: tuple[float, float, float] = Field(description="centre of voxel (0,0,0), LPS mm")
    direction: tuple[float, ...] = Field(description="3x3 direction cosines, row-major")

    @classmethod
    def of(cls, image: sitk.Image) -> Geometry:
        """Geometry of a 3D SimpleITK image."""
        return cls(
            size=tuple(image.GetSize()),
            spacing=tuple(image.GetSpacing()),
            origin=tuple(image.GetOrigin()),
            direction=tuple(image.GetDirection()),
        )
