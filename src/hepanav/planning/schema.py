"""Input and result types of ``hepanav.planning`` (Pydantic; they are the JSON schema).

All coordinates are ITK/DICOM LPS in millimetres; directions are unit vectors in LPS.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from hepanav import DISCLAIMER
from hepanav.imaging.labels import MAX_LABEL
from hepanav.imaging.schema import InputRecord

# Every number read from a user's file (device, risk map, plan.json) is finite
# (allow_inf_nan=False on every model) and bounded. The bounds are physical (a patient
# fits in 1 m; no ablation needle is longer than 40 cm) or keep time and memory within a
# workstation (documented per field and in docs/reliability.md).
#: Coordinates, mm: |x| <= 10 m covers any scanner's LPS origin.
Coord = Annotated[float, Field(ge=-1e4, le=1e4)]
Vec3 = tuple[Coord, Coord, Coord]
#: Largest safety margin, mm: twice the 10 mm beyond which no local tumour progression
#: was seen after ablation of colorectal liver metastases (Shady et al., Radiology
#: 2016;278:601-611); a larger margin is not an ablation plan.
MAX_MARGIN_MM = 20.0
#: Label ids of a label map: 1..65535 (0 is background; 16-bit label maps, DICOM SEG).
LabelId = Annotated[int, Field(ge=1, le=MAX_LABEL)]


def _unit(v: tuple[float, float, float]) -> tuple[float, float, float]:
    n = math.sqrt(sum(c * c for c in v))
    if not abs(n - 1.0) <= 1e-3:
        raise ValueError(f"must be a unit vector (length {n:.3g})")
    return v


def _nonzero(v: tuple[float, float, float] | None) -> tuple[float, float, float] | None:
    if v is not None and math.sqrt(sum(c * c for c in v)) < 1e-6:
        raise ValueError("must not be the zero vector")
    return v


UnitVec3 = Annotated[Vec3, AfterValidator(_unit)]
_FINITE = ConfigDict(allow_inf_nan=False)


# ----------------------------------------------------------------------------- inputs
class Device(BaseModel):
    """One ablation device at one setting: the predicted zone is an ellipsoid on the needle axis."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str = Field(description="identifier used with --device")
    kind: Literal["microwave", "rfa", "rfa_cluster"]
    description: str = ""
    power_w: float | None = Field(None, ge=0, le=500, description="generator power, W (<= 500)")
    time_min: float | None = Field(None, ge=0, le=120, description="ablation time, min")
    chart_length_mm: float = Field(
        gt=0, le=200, description="zone length along the needle, manufacturer chart"
    )
    chart_width_mm: float = Field(
        gt=0, le=200, description="zone width across the needle, manufacturer chart"
    )
    in_vivo_factor: float = Field(
        gt=0, le=1, description="multiplies the chart axes to give the clinical (in vivo) zone"
    )
    tip_to_center_mm: float = Field(
        ge=0,
        le=200,
        description="distance from the needle tip back along the shaft to the zone centre",
    )
    needle_length_mm: float = Field(
        gt=0, le=400, description="usable shaft length (skin to tip), <= 400 mm"
    )
    needle_diameter_mm: float = Field(gt=0, le=10)
    heat_sink_vessel_mm: float = Field(
        3.0, ge=0, le=50, description="vessels wider than this cool the zone (Lu 2002)"
    )
    heat_sink_trim_mm: float = Field(
        ge=0,
        le=50,
        description="tissue within this distance of such a vessel is predicted not ablated",
    )
    pullback_step_mm: float = Field(
        ge=1, le=200, description="step between positions along one needle, 1-200 mm"
    )
    max_positions: int = Field(
        1, ge=1, le=10, description="ablation positions per needle (pull-backs), <= 10"
    )
    source: str = Field(min_length=1, description="where the numbers come from")

    @property
    def zone_axes_mm(self) -> Vec3:
        """Clinical zone diameters (length along the needle, width, width) in mm."""
        length = self.chart_length_mm * self.in_vivo_factor
        width = self.chart_width_mm * self.in_vivo_factor
        return (length, width, width)


class RiskRule(BaseModel):
    """A group of labels that needles must not cross, with its clearance."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str
    labels: list[LabelId] = Field(min_length=1, max_length=1024)
    clearance_mm: float = Field(ge=0, le=100)
    heat_sink: bool = Field(False, description="a vessel group that cools ablation zones")
    source: str = ""


class TrajectoryRules(BaseModel):
    """Constraints on needle paths (documented defaults in docs/planning.md)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    max_angle_from_axial_deg: float = Field(30.0, ge=0, le=90)
    forbidden_approach_lps: Annotated[Vec3 | None, AfterValidator(_nonzero)] = Field(
        (0.0, 1.0, 0.0),
        description="entries from this side are excluded (default posterior, supine)",
    )
    forbidden_approach_half_angle_deg: float = Field(60.0, ge=0, le=180)
    entry_region_mask: str | None = Field(
        None,
        description="mask of the allowed skin entry region (path; relative to the risk-map file)",
    )
    min_needle_spacing_mm: float = Field(
        5.0, ge=0, le=100, description="two needles never pass closer than this (axis to axis)"
    )
    parallel: bool = Field(False, description="all needles parallel (aiming device)")
    direction_count: int = Field(
        80,
        ge=4,
        le=2000,
        description="candidate directions on the whole sphere (before the angle rules)",
    )
    lateral_step_mm: float | None = Field(
        None,
        ge=0.5,
        le=50,
        description="spacing of parallel candidate lines, 0.5-50 mm; default 0.4 x zone width",
    )
    grid_mm: float = Field(2.5, ge=0.5, le=10, description="working grid for path checks, mm")
    placement_error_sd_mm: float = Field(2.0, ge=0, le=20)
    monte_carlo_draws: int = Field(200, ge=10, le=10_000)
    coverage_goal: float = Field(0.99, gt=0, le=1)
    optimiser_time_limit_s: float = Field(8.0, gt=0, le=600)
    # approach rules (docs/planning.md, "Approach rules")
    ipsilateral_entry: bool = Field(
        False,
        description="skin entry on the tumour's side of the body midline (midline: centre of "
        "the body outline's left-right extent at the tumour's level)",
    )
    midline_tolerance_mm: float = Field(
        0.0,
        ge=0,
        le=200,
        description="with ipsilateral_entry: entries this far across the midline pass",
    )
    max_depth_mm: float | None = Field(
        None,
        gt=0,
        le=400,
        description="skin entry to deepest tip at most this long (None: needle length)",
    )
    rib_approach: Literal["any", "subcostal"] = Field(
        "any",
        description="'any': intercostal and subcostal entries (bone clearance still applies); "
        "'subcostal': the entry lies caudal of every rib voxel within subcostal_radius_mm",
    )
    subcostal_radius_mm: float = Field(30.0, gt=0, le=200)
    rib_labels: list[LabelId] = Field(
        default_factory=lambda: list(range(92, 118)),
        description="label ids of ribs and costal cartilages (TotalSegmentator v2: 92-117)",
    )


class RiskMap(BaseModel):
    """The YAML given with ``--label-map``: no-go structures, liver label, trajectory rules."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    liver_labels: list[LabelId] = Field(min_length=1, max_length=1024)
    structures: list[RiskRule] = Field(min_length=1, max_length=16)
    trajectory: TrajectoryRules = TrajectoryRules()
    source: str = ""

    @field_validator("structures")
    @classmethod
    def _unique_names(cls, rules: list[RiskRule]) -> list[RiskRule]:
        names = [r.name for r in rules]
        if len(set(names)) != len(names):
            raise ValueError("structure names must be unique")
        return rules


# ----------------------------------------------------------------------------- results
class Probe(BaseModel):
    """One ablation position: a needle tip and the zone it produces."""

    model_config = _FINITE

    needle: int = Field(description="1-based needle number")
    position: int = Field(description="1 = deepest; higher numbers are pull-backs")
    entry_lps_mm: Vec3
    tip_lps_mm: Vec3
    zone_center_lps_mm: Vec3
    zone_axes_mm: Vec3 = Field(description="zone diameters: along the needle, across, across")
    zone_direction: UnitVec3 = Field(
        description="unit vector of the zone's long axis (entry -> tip)"
    )
    device: str


class Needle(BaseModel):
    """A straight trajectory from the skin entry to the deepest tip position."""

    model_config = _FINITE

    needle: int
    entry_lps_mm: Vec3
    tip_lps_mm: Vec3
    direction: UnitVec3 = Field(description="unit vector entry -> tip, LPS")
    length_mm: float = Field(description="skin to deepest tip")
    angle_from_axial_deg: float
    min_clearance_mm: float | None = Field(
        description="smallest distance (voxel centres, full-resolution grid) to any no-go "
        "label; None when none lies within the reported range"
    )
    clearance_mm: dict[str, float] = Field(
        description="smallest distance to each no-go structure (label name) within the search range"
    )


class NeedlePosition(BaseModel):
    """One ablation position of a needle, as the operator sets it."""

    position: int = Field(description="1 = deepest; higher numbers are pull-backs")
    depth_mm: float = Field(description="skin entry to the tip at this position, along the needle")
    pullback_mm: float = Field(description="withdrawal from the deepest position, mm")
    power_w: float | None = Field(description="generator power (device table), W")
    time_min: float | None = Field(description="ablation time at this position (device table)")
    energy_kj: float | None = Field(description="power x time, kJ (None without power/time)")


class PathSegment(BaseModel):
    """A structure the needle passes, as a depth range along the needle (mm from the skin)."""

    structure: str
    from_mm: float
    to_mm: float


class NeedleGuide(BaseModel):
    """What the operator needs to place one needle (definitions in docs/planning.md)."""

    needle: int
    entry_slice: int = Field(description="1-based slice of the planning CT nearest the entry")
    entry_table_mm: float = Field(description="table position: LPS z (superior +) of the entry")
    entry_lr_from_midline_mm: float = Field(
        description="entry's left-right offset from the body midline at its slice; + = patient left"
    )
    entry_ap_from_anterior_skin_mm: float = Field(
        description="entry's depth below the most anterior skin point on the midline of its "
        "slice (+ = posterior), i.e. how far down the flank the entry lies"
    )
    in_plane_angle_deg: float = Field(
        description="angle of the needle's axial projection from the vertical (anterior -> "
        "posterior) axis; + when the tip lies to the patient's left of the entry, in (-180, 180]"
    )
    craniocaudal_angle_deg: float = Field(
        description="angle between the needle and the axial plane; + when the tip lies cranial "
        "(superior) of the entry"
    )
    depth_to_tip_mm: float = Field(description="skin entry to the deepest tip, mm")
    positions: list[NeedlePosition]
    energy_total_kj: float | None
    time_total_min: float | None
    passes: list[PathSegment] = Field(
        description="labelled structures along the path, skin to tip, from the label map"
    )
    midline_from: Literal["spine", "body outline", "none"] = Field(
        "body outline",
        description="'spine': centre of the vertebra labels in the entry slice; 'body "
        "outline': centre of the body's left-right extent (no vertebra label there)",
    )
    entry_on_skin: bool = Field(
        True,
        description="False when the CT 3 and 6 mm outside the entry (against the needle) is "
        "not air inside the image: the entry is then not a skin point (e.g. the path leaves "
        "a thin scanned slab) and must not be used to place the needle",
    )


class TumourSize(BaseModel):
    """Size of the tumour mask on the planning CT."""

    volume_ml: float
    max_diameter_mm: float = Field(description="largest distance between two voxel centres (Feret)")
    extent_lr_mm: float
    extent_ap_mm: float
    extent_cc_mm: float


class AbsentStructure(BaseModel):
    """A no-go or heat-sink group of the risk map with none of its labels in the label map
    (given or derived): the plan cannot keep needles clear of it or model its cooling."""

    name: str = Field(description="risk-map group name")
    labels: list[int] = Field(
        description="the group's label ids absent (all of them, or the missing members "
        "when partial)"
    )
    labels_named: str = Field(
        default="",
        description="those ids by name, grouped (e.g. 'ribs left 1-12, vertebrae T10-L3'; "
        "hepanav.imaging.labels.describe_label_ids)",
    )
    heat_sink: bool = Field(description="True for a heat-sink vessel group")
    partial: bool = Field(
        default=False,
        description="True when the group is only partly given: a TotalSegmentator folder "
        "holds files for some of its structures but none for the ``labels`` listed",
    )
    clearance_mm: float
    message: str
    derived_from_ct: str = Field(
        default="",
        description="non-empty when the group's missing part was derived from the CT "
        "instead (given label map lacking it): how, and the volume added (ml) in total and "
        "within needle reach of the tumour",
    )
    in_reach: bool = Field(
        default=True,
        description="False when the CT derivation shows nothing of the group within needle "
        "reach of the tumour that the label map lacks: listed as 'not needed here', not as "
        "a gap",
    )


class PlanResult(BaseModel):
    """``plan.json``."""

    model_config = _FINITE

    disclaimer: str = DISCLAIMER
    feasible: bool = Field(description="True when tumour + margin is covered to the coverage goal")
    message: str = Field(description="one-paragraph summary; the reason when not feasible")
    device: Device
    margin_mm: float = Field(ge=0, le=MAX_MARGIN_MM)
    probes: list[Probe]
    needles: list[Needle]
    needle_count: int
    coverage_tumor: float = Field(
        ge=0, le=1, description="fraction of tumour voxels inside the predicted zones"
    )
    coverage_target: float = Field(
        ge=0, le=1, description="fraction of tumour + margin voxels inside the zones"
    )
    min_clearance_mm: float | None = Field(description="smallest clearance over all needles, mm")
    healthy_liver_ablated_ml: float = Field(description="liver outside the tumour inside the zones")
    heat_sink_limited_fraction: float = Field(
        description="fraction of tumour + margin no zone can reach because of the heat sink"
    )
    placement_error_sd_mm: float
    coverage_probability: float = Field(
        description="P(tumour + margin coverage >= coverage goal) when every needle misses "
        "laterally by N(0, SD) per axis (Monte Carlo)"
    )
    coverage_target_mean_under_error: float
    coverage_tumor_probability: float = Field(
        description="P(tumour coverage >= coverage goal) under the same placement error"
    )
    candidate_lines: int = Field(description="candidate trajectories checked")
    candidate_lines_valid: int = Field(description="candidate trajectories meeting all constraints")
    candidate_zones: int = Field(description="columns of the set-cover problem")
    target_points: int = Field(description="rows of the set-cover problem (last iteration)")
    optimiser: str
    optimiser_time_s: float
    optimiser_status: str
    optimiser_time_limited: bool = Field(
        False,
        description="the wall-clock budget (optimiser_time_limit_s) shaped the result: a MILP "
        "stage stopped at the time limit or was skipped for lack of time; the plan is not "
        "reproducible (a rerun may differ; NOTE in message, bold in the report)",
    )
    planning_time_s: float
    rules: TrajectoryRules
    inputs: dict[str, str] = Field(
        description="input file paths and files written beside plan.json"
    )
    guides: list[NeedleGuide] = Field(
        default_factory=list, description="per needle: skin entry, angles, depths, energy"
    )
    tumour_size: TumourSize | None = None
    input_records: list[InputRecord] = Field(
        default_factory=list,
        description="every input read (file or series, UIDs) and what the reader did (notes)",
    )
    absent_structures: list[AbsentStructure] = Field(
        default_factory=list,
        description="no-go and heat-sink groups of the risk map absent from the label map "
        "(given or derived): the plan neither avoids nor models them (WARNING)",
    )
    derived_structures: dict[str, str] = Field(
        default_factory=dict,
        description="structures derived from the CT (no label map given): name -> how",
    )
    derivation_notes: list[str] = Field(
        default_factory=list,
        description="notes on the label map: what could not be derived from the CT and "
        "why, TotalSegmentator files not used",
    )
    tumour_at_ct_edge: list[str] = Field(
        default_factory=list,
        description="sides of the CT's field of view the tumour mask touches (LPS patient "
        "sides: 'superior'/'inferior' for its first/last slice, 'left'/'right'/'anterior'/"
        "'posterior' for its outermost columns/rows): the CT may end inside the tumour, so "
        "its true extent there is unknown and the plan's coverage cannot be verified",
    )
    warnings: list[str] = Field(
        default_factory=list,
        description="doubts about the inputs the plan cannot resolve (WARNING, also in "
        "message and, red, in the report): the tumour touching the CT's edge",
    )


class NeedleError(BaseModel):
    """Target positioning error of one placed needle against its planned trajectory."""

    planned_needle: int | None
    detected: int | None = Field(description="1-based detected needle, None if not found")
    tip_planned_lps_mm: Vec3 | None
    tip_actual_lps_mm: Vec3 | None
    direction_actual: Vec3 | None
    lateral_mm: float | None = Field(description="tip error perpendicular to the planned axis")
    longitudinal_mm: float | None = Field(
        description="tip error along the planned axis, positive = deeper than planned"
    )
    euclidean_mm: float | None
    angle_deg: float | None
    verdict: str = Field(
        "",
        description="'OK', 'advance N mm', 'withdraw N mm', 'redirect N mm toward ...', "
        "'MISSING' or 'EXTRA (not planned)'",
    )
    verdict_code: Literal["ok", "advance", "withdraw", "redirect", "missing", "extra", ""] = ""


class PlacementResult(BaseModel):
    """``placement.json``."""

    disclaimer: str = DISCLAIMER
    plan: str
    control_ct: str
    metal_threshold_hu: float
    needles_planned: int
    needles_detected: int
    errors: list[NeedleError]
    coverage_tumor_planned: float
    coverage_target_planned: float
    coverage_tumor_actual: float = Field(description="coverage predicted from the detected needles")
    coverage_target_actual: float
    message: str
    lateral_tolerance_mm: float = Field(
        5.0, description="a tip within this distance of the planned axis is OK laterally"
    )
    depth_tolerance_mm: float = Field(
        5.0, description="a tip within this distance of the planned depth is OK"
    )
    missing: list[int] = Field(default_factory=list, description="planned needles not found")
    extra: int = Field(0, description="detected metal lines matching no planned needle")
    warnings: list[str] = Field(
        default_factory=list,
        description="doubts about the control CT belonging to the plan (frame of reference)",
    )
