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


class LesionRecord(BaseModel):
    """One lesion of a tumour or zone mask: the clicks it was grown from and its size."""

    model_config = ConfigDict(extra="forbid")
    seeds: list[str] = Field(
        description="the seeds (as given) that grew it: the first started it, the others lay "
        "inside the region grown from it and refined it"
    )
    volume_ml: float = Field(
        description="its volume in the final mask (after the union, include joins and the "
        "--exclude cut), ml (voxel counting): each mask voxel counted once, for the lesion "
        "whose own region holds it (touching lesions: the nearest seed), so the lesions' "
        "volumes sum to volume_ml"
    )
    equivalent_diameter_mm: float = Field(description="diameter of the sphere of that volume, mm")
    lesion_hu: float | None = Field(None, description="median HU at its (first) seed")
    parenchyma_hu: float | None = Field(
        None, description="HU of the parenchyma around this lesion (its own estimate)"
    )
    window_hu: tuple[float, float] | None = Field(
        None, description="HU range grown for this lesion (low, high)"
    )
    appearance: Literal["hypo", "hyper"] | None = Field(
        None, description="this lesion darker or brighter than its parenchyma"
    )
    border_faces: list[str] = Field(
        default_factory=list,
        description="faces of the CT's image this lesion's voxels touch (as the result's "
        "border_faces); non-empty: its volume_ml / equivalent_diameter_mm are lower bounds",
    )


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
        None,
        description="tumour/zone: lesion darker or brighter than the parenchyma; with several "
        "lesions that of lesion 1 (each lesion's own: lesions[i].appearance)",
    )
    seeds: list[SeedRecord]
    include: list[SeedRecord] = Field(default_factory=list)
    exclude: list[SeedRecord] = Field(default_factory=list)
    lesions: list[LesionRecord] = Field(
        default_factory=list,
        description="tumour/zone: the lesions segmented, one per seed outside the earlier "
        "lesions (the mask is their union)",
    )
    include_outcomes: list[IncludeRecord] = Field(
        default_factory=list, description="tumour/zone: what each include point did"
    )
    # With several lesions these are lesion 1's (kept at the top level for the readers
    # of the one-lesion JSON); every lesion's own are in lesions[i].
    lesion_hu: float | None = Field(
        None,
        description="tumour/zone: median HU at the seed; with several lesions that of lesion "
        "1 (lesions[0].lesion_hu; each lesion's own: lesions[i].lesion_hu)",
    )
    parenchyma_hu: float | None = Field(
        None,
        description="HU of the liver (liver) or of the parenchyma around the lesion; with "
        "several lesions that around lesion 1 (each lesion's own: lesions[i].parenchyma_hu)",
    )
    window_hu: tuple[float, float] | None = Field(
        None,
        description="HU range grown (low, high); with several lesions that of lesion 1 "
        "(each lesion's own: lesions[i].window_hu)",
    )
    max_radius_mm: float | None = Field(None, description="leak limit from the nearest seed")
    volume_ml: float = Field(description="mask volume, ml (voxel counting)")
    equivalent_diameter_mm: float = Field(description="diameter of the sphere of that volume, mm")
    seconds: float = Field(description="segmentation time, s")
    border_faces: list[str] = Field(
        default_factory=list,
        description="faces of the CT's image the mask touches, e.g. 'superior (last slice, "
        "k = 119)' (hepanav.imaging.border); non-empty: the structure may continue outside "
        "the image and volume_ml / equivalent_diameter_mm are lower bounds",
    )
    warnings: list[str] = Field(
        default_factory=list, description="conditions that limit the result (shown in red)"
    )
    notes: list[str] = Field(default_factory=list, description="things the user should know")
