"""Result and settings types of hepanav.fluorescence (they are also the JSON schema).

Units: pixels of the *input* NIR frame (x to the right, y down, origin at the top-left
pixel centre) unless a field name says ``_mm``; millimetre fields are only filled when
the user gives the pixel size (``--mm-per-px``). Intensities are NIR digital numbers (DN).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator

from hepanav import DISCLAIMER, __version__

Pattern = Literal["homogeneous", "partial", "rim"]

TBR_DEFINITION = (
    "TBR = mean NIR signal inside the lesion mask / mean NIR signal in the background "
    "region (signals in DN, no offset subtracted)."
)
CNR_DEFINITION = (
    "CNR = (mean signal in the lesion mask - mean signal in the background region) / "
    "standard deviation of the background region's pixels (AAPM TG-311 form)."
)


class BackgroundDefinition(BaseModel):
    """Where the liver background for TBR and CNR is measured."""

    kind: Literal["annulus", "roi"] = Field(
        "annulus", description="'annulus' around each lesion, or one user 'roi' for all"
    )
    inner_px: float = Field(
        3.0, ge=0, description="annulus starts this far beyond the lesion edge, px"
    )
    outer_px: float = Field(
        10.0, gt=0, description="annulus ends this far beyond the lesion edge, px"
    )
    excludes_other_lesions: bool = Field(
        True, description="pixels closer than inner_px to any other lesion are left out"
    )
    roi_xywh: tuple[int, int, int, int] | None = Field(
        None, description="user background rectangle (x, y, width, height), px, for kind='roi'"
    )
    description: str = ""

    @model_validator(mode="after")
    def _check(self) -> BackgroundDefinition:
        if self.outer_px <= self.inner_px:
            raise ValueError("background outer_px must be larger than inner_px")
        if self.kind == "roi" and self.roi_xywh is None:
            raise ValueError("background kind 'roi' needs roi_xywh")
        if not self.description:
            if self.kind == "annulus":
                self.description = (
                    f"ring of liver from {self.inner_px:g} to {self.outer_px:g} px beyond the "
                    "lesion edge (Euclidean distance), excluding specular highlights"
                    + (" and pixels near other lesions" if self.excludes_other_lesions else "")
                )
            else:
                self.description = f"user rectangle x,y,w,h = {self.roi_xywh} px"
        return self


class AnalysisSettings(BaseModel):
    """Settings of the analysis (saved in the JSON with the results)."""

    bit_depth: Literal[8, 12, 16] | None = Field(
        None, description="NIR bit depth; None = from the pixel type (8 or 16)"
    )
    mm_per_px: float | None = Field(None, gt=0, description="pixel size on the tissue, mm")
    detect_z: float = Field(
        4.5, gt=0, description="detection threshold: local contrast / background SD (smoothed)"
    )
    min_diameter_px: float | None = Field(
        None,
        gt=0,
        description="smallest lesion kept, px (equivalent diameter); None = 2 mm if mm_per_px "
        "is known, else 2 % of the longer frame side (at least 12 px)",
    )
    boundary_fraction: float = Field(
        0.35, gt=0, lt=1, description="lesion edge at this fraction of the peak contrast"
    )
    rim_centre_ratio: float = Field(
        0.95, gt=0, lt=1, description="centre/ring contrast below this = rim pattern"
    )
    partial_asymmetry: float = Field(
        0.06, gt=0, lt=1, description="angular asymmetry above this = partial pattern"
    )
    working_max_side: int = Field(
        640, ge=128, description="analysis runs on frames downscaled to this size"
    )
    background: BackgroundDefinition = Field(default_factory=BackgroundDefinition)


class LesionRecord(BaseModel):
    """One lesion in one frame."""

    id: int = Field(description="track id, the same for a lesion across frames")
    centroid_xy: tuple[float, float] = Field(description="centroid of the lesion mask, px")
    bbox_xywh: tuple[int, int, int, int] = Field(description="bounding box x, y, width, height, px")
    area_px: int = Field(description="lesion mask area, px")
    area_mm2: float | None = Field(None, description="area, mm^2 (needs mm_per_px)")
    equivalent_diameter_px: float
    touches_border: bool = Field(
        False, description="the lesion reaches the frame edge: area and pattern may be incomplete"
    )
    pattern: Pattern
    rim_thickness_px: float | None = Field(None, description="ring thickness for pattern 'rim', px")
    rim_thickness_mm: float | None = None
    tbr: float | None = Field(
        description="tumour-to-background ratio over the whole lesion mask; None when the "
        "background is clipped to zero (maps unmixed from vendor overlays)"
    )
    tbr_rim: float | None = Field(
        None, description="TBR of the fluorescent ring only (pattern 'rim')"
    )
    cnr: float | None = Field(description="contrast-to-noise ratio over the whole lesion mask")
    mean_signal: float = Field(description="mean NIR in the lesion mask, DN")
    background_mean: float = Field(description="mean NIR in the background region, DN")
    background_sd: float = Field(description="SD of NIR in the background region, DN")
    background_px: int = Field(description="number of background pixels used")
    centre_to_ring_ratio: float = Field(description="contrast of the centre / of the outer ring")
    sector_uniformity: float = Field(description="weakest / strongest of 8 angular sectors")
    asymmetry: float = Field(
        description="first angular harmonic of the contrast / its mean (0 = symmetric)"
    )


class FrameRecord(BaseModel):
    """Everything measured on one frame."""

    index: int
    time_s: float | None = Field(None, description="frame time from the stream, s")
    latency_ms: float = Field(description="processing time of the frame (analysis and display), ms")
    motion_xy: tuple[float, float] = Field(
        (0.0, 0.0), description="scene shift since last frame, px"
    )
    warnings: list[str] = Field(default_factory=list)
    lesions: list[LesionRecord] = Field(default_factory=list)


class LatencyStats(BaseModel):
    """Per-frame processing latency."""

    n_frames: int
    median_ms: float | None
    p99_ms: float | None
    max_ms: float | None


class InputDescription(BaseModel):
    nir: str
    white: str | None = None
    layout: str
    frame_size_wh: tuple[int, int] | None = None
    bit_depth: int | None = None
    fps: float | None = None


class AnalysisResult(BaseModel):
    """Content of ``lesions.json`` written by ``hepanav fluoro analyze``."""

    disclaimer: str = DISCLAIMER
    hepanav_version: str = __version__
    complete: bool = Field(False, description="false while the video is still being processed")
    input: InputDescription
    settings: AnalysisSettings
    background: BackgroundDefinition
    tbr_definition: str = TBR_DEFINITION
    cnr_definition: str = CNR_DEFINITION
    latency: LatencyStats
    n_frames: int
    n_frames_with_warnings: int
    frames: list[FrameRecord]


class MarginSpot(BaseModel):
    """A fluorescent spot on the transection (or specimen) surface."""

    id: int
    centroid_xy: tuple[float, float]
    bbox_xywh: tuple[int, int, int, int]
    area_px: int
    area_mm2: float | None = None
    tbr: float
    cnr: float


class MarginFrame(BaseModel):
    index: int
    at_risk: bool
    warnings: list[str] = Field(default_factory=list)
    spots: list[MarginSpot] = Field(default_factory=list)


class MarginResult(BaseModel):
    """Content of ``margin.json`` written by ``hepanav fluoro margin-check``."""

    disclaimer: str = DISCLAIMER
    hepanav_version: str = __version__
    input: InputDescription
    surface: str
    surface_area_px: int
    criterion: str = Field(
        description="when a frame is at risk: a fluorescent spot on the surface meeting the "
        "CNR and area thresholds"
    )
    min_cnr: float
    min_area_px: int
    background: BackgroundDefinition
    tbr_definition: str = TBR_DEFINITION
    cnr_definition: str = CNR_DEFINITION
    at_risk: bool = Field(description="true if any frame is at risk (predicts a margin < 1 mm)")
    frames: list[MarginFrame]
