"""``margin.json``: the machine-readable result of ``hepanav margin`` (Pydantic models).

Units: mm for lengths, mm^2 for areas, ml for volumes, fractions in [0, 1].
Coordinates are LPS (ITK/DICOM patient coordinates: +x left, +y posterior,
+z superior) in the space of the ablation-zone (post-procedure) image.
Sign convention: the margin at a tumour-surface point is its distance to the
ablation-zone surface, POSITIVE when the point lies inside the zone, negative
outside.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_serializer

from hepanav import DISCLAIMER, __version__
from hepanav.imaging.schema import InputRecord

Category = Literal["incomplete", "0-5mm", "5-10mm", ">=10mm"]

# Thresholds from the ablation literature (../shared/docs/domain.md, "Ablation margin by
# image fusion"): MAM >= 5 mm without local progression (MD Anderson, Radiology 2023;
# Laimer 2025), >= 10 mm no LTP (Shady 2018); MAM < 0 is an incomplete ablation.
SAFE_MARGIN_MM = 5.0
WIDE_MARGIN_MM = 10.0


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Percentiles(_Model):
    """Area-weighted percentiles of the signed margin over the tumour surface, mm."""

    p5: float = Field(description="5th percentile, mm")
    p25: float = Field(description="25th percentile, mm")
    p50: float = Field(description="median, mm")
    p75: float = Field(description="75th percentile, mm")
    p95: float = Field(description="95th percentile, mm")


class SurfaceRegion(_Model):
    """A connected part of the tumour surface, located and pointed at from its lesion:
    the fields :class:`ShortRegion` and :class:`ResidualRegion` share (one definition,
    so the two cannot drift apart)."""

    centroid_lps_mm: tuple[float, float, float] = Field(
        description="area-weighted centre of the region (its tumour-surface part), LPS mm"
    )
    area_mm2: float = Field(
        description="tumour surface area of the region, mm^2 (a residual region: the area "
        "outside the zone)"
    )
    min_margin_mm: float = Field(
        description="smallest signed margin in the region, mm (a residual region: its most "
        "negative margin)"
    )
    direction_lps: tuple[float, float, float] = Field(
        description="unit vector from the centroid of the region's lesion (the tumour's "
        "connected component holding the region) to the region centre, LPS; (0, 0, 0) when "
        "the region has no direction (it is the whole lesion, or its centre lies within 0.1 "
        "of the lesion's equivalent radius of the lesion's centroid: see direction)"
    )
    lesion: int | None = Field(
        None, description="1-based lesion (connected tumour component, largest first)"
    )
    lesion_centroid_lps_mm: tuple[float, float, float] | None = Field(
        None, description="volume centroid of that lesion, LPS mm (direction origin)"
    )
    direction: str = Field(
        description="the same direction in words, e.g. 'left-posterior-superior'; a region "
        "covering its whole lesion: 'whole lesion k outside the zone (untreated)' (residual) "
        "or 'all round lesion k (...)' (short); a region with parts on every side (centre "
        "within 0.1 lesion radii of the lesion's): 'all round lesion k (no single direction: "
        "...)'"
    )


class ShortRegion(SurfaceRegion):
    """A connected part of the tumour surface whose margin is below the safe margin."""


class BorderCut(_Model):
    """Where the tumour is cut by the edge of an image, it cannot be assessed there."""

    tumor_surface_fraction_not_assessable: float = Field(
        description="fraction of the tumour surface area on the cut (lying on the border of "
        "the tumour's or the zone's image); left out of every figure"
    )
    tumor_cut_by_border: bool = Field(description="true when that fraction is > 0")


class ResidualRegion(SurfaceRegion):
    """A connected part of the tumour lying OUTSIDE the ablation zone (margin < 0 mm).

    ``margin.json`` keeps the order its keys always had (``volume_ml`` after
    ``area_mm2``; :data:`RESIDUAL_KEYS`); the fields are those of :class:`SurfaceRegion`
    plus ``volume_ml``."""

    volume_ml: float = Field(description="tumour volume outside the zone in this region, ml")

    @model_serializer(mode="wrap")
    def _in_key_order(self, handler):
        data = handler(self)
        return {k: data[k] for k in RESIDUAL_KEYS if k in data}


#: Key order of a residual region in ``margin.json`` (as before the shared base).
RESIDUAL_KEYS = (
    "centroid_lps_mm",
    "area_mm2",
    "volume_ml",
    "min_margin_mm",
    "direction_lps",
    "lesion",
    "lesion_centroid_lps_mm",
    "direction",
)


class ZoneGap(_Model):
    """Unablated tissue enclosed by, or running through, the ablation zone (kept, not filled).

    Found on the local analysis grid (the zone within 40 mm of the tumour): an
    enclosed cavity of the zone ('hole'), or non-zone tissue that a closing of the
    zone with a ball of ``hepanav.margin.gaps.CLOSING_RADIUS_MM`` fills ('channel': a tube or cleft
    narrower than twice that radius, e.g. along a vessel that carried the heat away).
    """

    kind: Literal["hole", "channel"] = Field(
        description="'hole': enclosed by the zone; 'channel': open to the zone's outside"
    )
    centroid_lps_mm: tuple[float, float, float] = Field(
        description="centre of the gap's volume, LPS mm (post space)"
    )
    volume_ml: float = Field(description="volume of the gap inside the zone's outline, ml")
    extent_mm: tuple[float, float, float] = Field(
        description="size of its bounding box along the zone image's axes (x, y, z), mm"
    )
    reaches_tumor: bool = Field(
        description="true when the gap touches the tumour (then it also shows as residual "
        "tumour or short margin on the tumour surface)"
    )
    distance_to_tumor_mm: float = Field(
        description="smallest distance from the gap to the tumour surface, mm (0 when it "
        "reaches the tumour)"
    )


class Uncertainty(_Model):
    """How far the margin figures may be off, and whether the MAM is decisive."""

    half_width_mm: float = Field(
        description="u (mm): registration error at the tumour (local consistency) + 0.5 mm "
        "floor + half the coarsest voxel beyond 1 mm (masks given in one space on different "
        "voxel grids: half the coarsest voxel's diagonal in full, see warnings). With masks "
        "given by the user the MAM "
        "lies in [MAM - u, MAM + u]; with a mask segmented automatically from a seed u "
        "covers the registration and the voxel geometry ONLY, not the segmentation error, "
        "and bounds nothing (min_margin_interval_mm is then null)"
    )
    min_margin_interval_mm: tuple[float, float] | None = Field(
        description="[MAM - u, MAM + u], mm; for a MAM that is a LOWER bound "
        "(min_margin_bound 'lower') [MAM - u, E + u], E the smallest margin measured against "
        "real zone surface; null when a mask was segmented automatically from a seed (its "
        "error is not in u) or when the MAM bound has no such end (see "
        "interval_withheld_reason)"
    )
    interval_withheld_reason: str | None = Field(
        default=None,
        description="why min_margin_interval_mm is null (masks segmented automatically from "
        "seeds; a MAM that is an upper bound or no bound because of the image border); "
        "null when the interval is given",
    )
    source: str = Field(description="what u was estimated from")
    local_correction_lps_mm: tuple[float, float, float] | None = Field(
        description="translation (LPS mm) a local registration near the zone still wanted "
        "after the registration (null without registration)"
    )
    decisive: bool = Field(
        description="false when the MAM lies within u of 0 mm or of 5 mm (rule: such a "
        "margin is not decisive); for a MAM that is a bound (min_margin_bound), false "
        "unless the whole range the true MAM may take (the interval, or below MAM + u for "
        "an upper bound) lies clear of 0 mm and 5 mm; false with masks segmented "
        "automatically from seeds (see rule) and when the zone is the tumour itself "
        "(zone_is_tumor)"
    )
    rule: str = Field(description="the decision rule in words")


#: ``Registration.mode`` in words (the report's Registration section and the DICOM SR).
REGISTRATION_MODE_WORDS = {
    "none": "none (masks in one space)",
    "liver": "liver-driven (liver masks given)",
    "lesion_region": "lesion region (no liver masks: soft tissue around the ablation zone)",
    "same_image": "none (pre and post are the same image)",
}


class Registration(_Model):
    """How the pre-procedure image was brought into the post-procedure space."""

    mode: Literal["none", "liver", "lesion_region", "same_image"] = Field(
        description="what drove the registration: 'none' (masks given in one space), "
        "'liver' (liver masks given), 'lesion_region' (no liver masks: the soft tissue "
        "around the ablation zone) or 'same_image' (--pre and --post are the same image, "
        "same voxels and geometry: not registered, identity transform; the figures are "
        "those of masks in one space)"
    )
    method: str = Field(
        description="'none (masks given in one space)', 'none: pre and post are the same "
        "image ...', or the registration used (ending with a note when the rigid + B-spline "
        "result did not improve the metric over its start or the identity, or mapped too "
        "little of the metric region into the pre scan's to be compared, and that was kept)"
    )
    liver_dice: float | None = Field(
        description="Dice of the registered pre liver mask and the post liver mask "
        "(null without liver masks)"
    )
    tre_mm: dict[str, float] | None = Field(
        description="target registration error over the landmark pairs: mean, max, n "
        "(mm; null without landmarks)"
    )
    seconds: float = Field(description="wall time of the registration, s")


class MarginResult(_Model):
    """Ablation-margin figures of one tumour and its ablation zone."""

    min_margin_mm: float = Field(description="minimal ablative margin (MAM), signed, mm")
    min_margin_bound: Literal["lower", "upper", "unknown"] | None = Field(
        default=None,
        description="null: the MAM is a measurement (within u). 'lower': it is reached "
        "where the ablation zone is cut by the image border (the zone may continue beyond "
        "the image): the true MAM may be LARGER (up to the upper end of "
        "uncertainty.min_margin_interval_mm). 'upper': part of the tumour is outside the "
        "image: the true MAM may be SMALLER. 'unknown': both. A bound is decisive only "
        "in the direction it supports (see uncertainty.rule)",
    )
    percentiles_mm: Percentiles
    mean_margin_mm: float = Field(description="area-weighted mean signed margin, mm")
    surface_fraction_below_0mm: float = Field(
        description="fraction of the (analysed) tumour surface area outside the zone"
    )
    surface_fraction_below_5mm: float = Field(
        description="fraction of the (analysed) tumour surface area with margin < 5 mm"
    )
    shell_coverage_5mm: float = Field(
        description="fraction of the volume of the 5 mm shell around the tumour inside the zone"
    )
    shell_coverage_6mm: float = Field(
        description="fraction of the volume of the 6 mm shell around the tumour inside the "
        "zone (Innsbruck criterion: >= 0.9, Laimer 2021)"
    )
    category: Category = Field(description="'incomplete' (MAM < 0), '0-5mm', '5-10mm', '>=10mm'")
    mam_point_lps_mm: tuple[float, float, float] = Field(
        description="tumour-surface point where the MAM is reached, LPS mm (post space)"
    )
    residual_regions: list[ResidualRegion] = Field(
        description="residual tumour: connected parts outside the zone (margin < 0 mm), "
        "most negative first; empty when MAM >= 0"
    )
    residual_volume_ml: float = Field(
        default=0.0,
        description="total tumour volume outside the zone, ml: analysis-grid voxels in the "
        "tumour mask's voxel boxes (as tumor_volume_ml) outside the zone surface and inside "
        "the post image; a lesion wholly outside the zone counts with its whole mask volume",
    )
    residual_volume_is_lower_bound: bool = Field(
        default=False,
        description="true when tumour outside the post image (residual_unassessable_ml) or "
        "beyond the analysis grid is not counted: the true residual may be larger "
        "(the reason is in warnings)",
    )
    residual_unassessable_ml: float = Field(
        default=0.0,
        description="tumour volume outside the zone that lies outside the post image: no "
        "zone is known there, so it is neither residual nor ablated; ml",
    )
    short_regions: list[ShortRegion] = Field(
        description="connected surface parts with 0 <= margin < 5 mm (residual parts are in "
        "residual_regions), smallest margin first"
    )
    zone_gaps: list[ZoneGap] = Field(
        default_factory=list,
        description="holes and channels of unablated tissue in the zone near the tumour "
        "(kept, not filled), largest first; those not reaching the tumour do not change "
        "the margin figures but are reported here",
    )
    uncertainty: Uncertainty
    border: BorderCut
    subcapsular_exclusion_mm: float | None = Field(
        description="surface within this distance of the liver capsule was left out "
        "(null: no exclusion)"
    )
    subcapsular_excluded_fraction: float = Field(
        description="fraction of the tumour surface area left out as subcapsular (0 when off)"
    )
    tumor_volume_ml: float = Field(description="tumour volume (voxel count of its mask), ml")
    ablation_volume_ml: float = Field(description="ablation-zone volume (voxel count), ml")
    tumor_surface_area_mm2: float = Field(description="area of the tumour surface mesh, mm^2")
    registration: Registration
    warnings: list[str] = Field(description="conditions that limit the result")
    plausibility: list[str] = Field(
        default_factory=list,
        description="reasons not to read the category at face value (the zone (nearly) the "
        "tumour itself: zone_is_tumor; zone smaller than the tumour: pre/post swapped?; "
        "pre/post swapped by contrast; tumour cut by the image border), shown in red "
        "beside it (hepanav.margin.plausibility)",
    )
    tumor_zone_dice: float | None = Field(
        default=None,
        description="Dice overlap of the tumour (mapped into post space) and the ablation "
        "zone on the local analysis grid (the zone within 40 mm of the tumour); null in "
        "files written before it",
    )
    zone_is_tumor: bool = Field(
        default=False,
        description="true when the ablation zone is (nearly) the tumour itself (Dice >= "
        "0.9, or the zone's volume within 5 % of the tumour's with >= 80 % of the tumour "
        "inside it): the same lesion segmented twice or the pre CT given as post, NOT a "
        "measured ablation; plausibility says so and the MAM is not decisive",
    )
    inputs: list[InputRecord] = Field(
        default_factory=list,
        description="every input read (file or series, UIDs) and what the reader did (notes)",
    )
    hepanav_version: str = __version__
    disclaimer: str = DISCLAIMER
