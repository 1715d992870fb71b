"""Result and settings types of hepanav.fluorescence (they are also the JSON schema).

Units: pixels of the *input* NIR frame (x to the right, y down, origin at the top-left
pixel centre) unless a field name says ``_mm``; millimetre fields are only filled when
the user gives the pixel size (``--mm-per-px``). Intensities are NIR digital numbers (DN).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator

from hepanav import DISCLAIMER, __version__

Pattern = Literal["homogeneous", "partial", "rim", "undetermined"]

# Documented ranges of the numeric settings (docs/fluorescence.md "Checked ranges").
MM_PER_PX_RANGE = (1e-4, 10.0)
MAX_BACKGROUND_PX = 1000.0
MAX_CNR = 1000.0
MAX_DN = 65535.0

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
        3.0,
        ge=0,
        le=MAX_BACKGROUND_PX,
        allow_inf_nan=False,
        description=f"annulus starts this far beyond the lesion edge, px (0-{MAX_BACKGROUND_PX})",
    )
    outer_px: float = Field(
        10.0,
        gt=0,
        le=MAX_BACKGROUND_PX,
        allow_inf_nan=False,
        description=f"annulus ends this far beyond the lesion edge, px (up to {MAX_BACKGROUND_PX})",
    )
    excludes_other_lesions: bool = Field(
        True,
        description="pixels closer than inner_px to any other lesion are left out (annulus; "
        "always false for a user rectangle, which is used as given)",
    )
    roi_xywh: tuple[int, int, int, int] | None = Field(
        None,
        description="user background rectangle (x, y, width, height), px, for kind='roi'; "
        "x, y >= 0, width and height > 1",
    )
    description: str = ""

    @model_validator(mode="after")
    def _check(self) -> BackgroundDefinition:
        if self.outer_px <= self.inner_px:
            raise ValueError("background outer_px must be larger than inner_px")
        if self.kind == "roi" and self.roi_xywh is None:
            raise ValueError("background kind 'roi' needs roi_xywh")
        if self.kind == "roi":
            # A user rectangle is used as given: nothing is left out of it.
            self.excludes_other_lesions = False
        if self.roi_xywh is not None:
            x, y, w, h = self.roi_xywh
            if x < 0 or y < 0 or w <= 1 or h <= 1:
                raise ValueError("the background rectangle needs x, y >= 0 and w, h > 1")
        if not self.description:
            if self.kind == "annulus":
                self.description = (
                    f"ring of liver from {self.inner_px:g} to {self.outer_px:g} px beyond the "
                    "lesion edge (Euclidean distance), excluding specular highlights"
                    + (" and pixels near other lesions" if self.excludes_other_lesions else "")
                )
            else:
                self.description = (
                    f"user rectangle x,y,w,h = {self.roi_xywh} px; lesion pixels are not "
                    "removed from it: in frames where it overlaps a detected lesion TBR and "
                    "CNR are not reported (frame warning names --bg-roi)"
                )
        return self


class AnalysisSettings(BaseModel):
    """Settings of the analysis (saved in the JSON with the results)."""

    bit_depth: Literal[8, 12, 16] | None = Field(
        None, description="NIR bit depth; None = from the pixel type (8 or 16)"
    )
    mm_per_px: float | None = Field(
        None,
        ge=MM_PER_PX_RANGE[0],
        le=MM_PER_PX_RANGE[1],
        allow_inf_nan=False,
        description=f"pixel size on the tissue, mm ({MM_PER_PX_RANGE[0]:g}-{MM_PER_PX_RANGE[1]:g}: "
        "from a microscope's micrometre pixels to a wide view of the abdomen)",
    )
    saturation_fraction: float = Field(
        0.01,
        ge=0,
        lt=1,
        allow_inf_nan=False,
        description="warn when more than this fraction of a lesion's pixels sit at the top "
        "code of the bit depth (TBR is then underestimated)",
    )
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


class GainWindow(BaseModel):
    """Fixed display window ``--gain-range low,high`` in NIR digital numbers."""

    low: float = Field(ge=0, le=MAX_DN, allow_inf_nan=False)
    high: float = Field(ge=0, le=MAX_DN, allow_inf_nan=False)

    @model_validator(mode="after")
    def _order(self) -> GainWindow:
        if self.high <= self.low:
            raise ValueError("high must exceed low")
        return self


class MarginCriterion(BaseModel):
    """When a margin-check frame is at risk (``--min-cnr``, ``--min-area-px``)."""

    min_cnr: float = Field(
        3.0,
        ge=0,
        le=MAX_CNR,
        allow_inf_nan=False,
        description=f"CNR of a spot that puts the margin at risk (0-{MAX_CNR:g})",
    )
    min_area_px: int = Field(
        20, ge=0, le=10**8, description="area of a spot that puts the margin at risk, px"
    )


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
        "background is clipped to zero (maps unmixed from vendor overlays) or cannot be "
        "estimated (bright area larger than half the frame: pattern 'undetermined')"
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
    """What was read. File names are relative to the working folder (or the bare name for
    files outside it): an absolute path can name a patient's folder."""

    nir: str
    white: str | None = None
    layout: str
    frame_size_wh: tuple[int, int] | None = None
    bit_depth: int | None = None
    msb_aligned: bool = Field(
        False, description="12-bit data stored in the high bits of 16-bit words (shifted by 4)"
    )
    fps: float | None = Field(
        None, description="nominal frame rate: 1 / median frame interval of the container"
    )
    codec: str | None = Field(None, description="video codec or image format of the NIR")
    lossy: bool | None = Field(
        None, description="the NIR codec is lossy: TBR and CNR are approximate"
    )
    frame_times: Literal["container timestamps", "clock", "none"] = Field(
        "none",
        description="where FrameRecord.time_s comes from: each frame's presentation "
        "timestamp in the video container, the wall clock (cameras, streams), or nowhere",
    )
    variable_frame_rate: bool = False
    frame_interval_ms: tuple[float, float, float] | None = Field(
        None, description="min, median and max interval between frames, ms (videos)"
    )
    notes: list[str] = Field(default_factory=list, description="how the input was read")
    warnings: list[str] = Field(
        default_factory=list, description="problems of the whole input (e.g. variable frame rate)"
    )


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
    tbr: float | None = Field(description="None when the spot could not be measured")
    cnr: float | None = Field(description="None when the spot could not be measured")
    background: Literal["spot ring", "region ring", "none"] = Field(
        "spot ring",
        description="where the background was measured: the ring around the spot, the ring "
        "around the whole fluorescent region the spot is part of (when the spot's own ring "
        "lies inside it, e.g. a surface cut through a lesion), or nowhere (not measured)",
    )
    meets_criterion: bool = Field(
        False,
        description="CNR >= min_cnr and area_px >= min_area_px: the spot puts the margin at "
        "risk (fainter spots are listed but decide nothing); a spot that could not be "
        "measured (cnr None) meets it when area_px >= min_area_px",
    )


class MarginFrame(BaseModel):
    index: int
    at_risk: bool
    undetermined: bool = Field(
        False,
        description="a spot on the surface could not be measured (no background around it "
        "or its region): the frame is counted as at risk",
    )
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
    undetermined: bool = Field(
        False,
        description="true if a frame is at risk only because a spot on the surface could "
        "not be measured (see MarginFrame.undetermined)",
    )
    frames: list[MarginFrame]
