"""``segmentation.json``: the record written beside each mask (Pydantic; also the JSON schema).

Units: LPS millimetres for points, HU for attenuation, ml for volumes.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from hepanav import DISCLAIMER, __version__

Vec3 = tuple[float, float, float]


class SeedRecord(BaseModel):
    """One click as given and where it fell."""

    model_config = ConfigDict(extra="forbid")
    given_as: str = Field(description="the option and value the user gave")
    lps_mm: Vec3 = Field(description="seed in LPS mm")
    voxel: tuple[int, int, int] = Field(description="nearest voxel (i, j, k) of the CT")


class IncludeRecord(BaseModel):
    """What one ``--include`` point of a tumour or zone did (a refused one is an error)."""

    model_config = ConfigDict(extra="forbid")
    given_as: str = Field(description="the option and value the user gave")
    lps_mm: Vec3 = Field(description="the point in LPS mm")
    outcome: Literal["inside", "edge", "joined"] = Field(
        description="inside: in the mask as grown from the seeds; edge: just outside it, its "
        "nearest voxel in the lesion's HU range inside (nothing added); joined: a region "
        "grown from it over the lesion's HU range, connected to the lesion, was added"
    )
    joined_mm3: float = Field(0.0, description="volume added from it, mm^3 (0 when inside)")


class SegmentationResult(BaseModel):
    """Result of ``hepanav segment``."""

    model_config = ConfigDict(extra="forbid")
    disclaimer: str = DISCLAIMER
    version: str = __version__
    structure: Literal["tumor", "ablation", "liver"]
    ct: str = Field(
        description="CT the mask was made on: relative to the working folder, or its name "
        "and SHA-256 prefix (never an absolute path)"
    )
    mask: str = Field(description="file name of the mask (same grid as the CT, 0/1), beside")
    report: str | None = Field(None, description="file name of the HTML report, beside")
    method: str = Field(description="algorithm and its parameters")
    appearance: Literal["hypo", "hyper"] | None = Field(
        None, description="lesion darker or brighter than the parenchyma (lesions only)"
    )
    seeds: list[SeedRecord]
    include: list[SeedRecord] = Field(default_factory=list)
    exclude: list[SeedRecord] = Field(default_factory=list)
    include_outcomes: list[IncludeRecord] = Field(
        default_factory=list, description="tumour/zone: what each include point did"
    )
    lesion_hu: float | None = Field(None, description="median HU at the seed (lesions)")
    parenchyma_hu: float | None = Field(None, description="HU of the surrounding/liver parenchyma")
    window_hu: tuple[float, float] | None = Field(None, description="HU range grown")
    max_radius_mm: float | None = Field(None, description="leak limit from the nearest seed")
    volume_ml: float = Field(description="mask volume, ml (voxel counting)")
    equivalent_diameter_mm: float = Field(description="diameter of the sphere of that volume, mm")
    seconds: float = Field(description="segmentation time, s")
    notes: list[str] = Field(default_factory=list, description="things the user should know")
