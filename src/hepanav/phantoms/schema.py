"""Parameters and results of the CT phantoms (Pydantic models; also the JSON schema).

Units: millimetres and LPS coordinates (x to the patient's left, y posterior,
z superior) for positions; Hounsfield units (HU) for attenuation.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hepanav import DISCLAIMER
from hepanav.imaging.labels import anatomy_label_names

Vec3 = tuple[float, float, float]
Spacing3 = tuple[
    Annotated[float, Field(gt=0.05, le=20)],
    Annotated[float, Field(gt=0.05, le=20)],
    Annotated[float, Field(gt=0.05, le=20)],
]
Size3 = tuple[
    Annotated[int, Field(ge=8, le=4096)],
    Annotated[int, Field(ge=8, le=4096)],
    Annotated[int, Field(ge=8, le=4096)],
]

# The structures the phantom paints, with the TotalSegmentator v2 ids of
# hepanav/imaging/data/anatomy_labels.yaml, so one risk map serves the phantom and the
# real scans in ../shared/data (200, hepatic veins, is a HepaNav extension).
_PHANTOM_LABELS = (
    1,
    2,
    3,
    4,
    5,
    6,
    11,
    14,
    18,
    20,
    *range(27, 34),
    51,
    52,
    63,
    64,
    *range(97, 104),
    *range(109, 118),
    200,
)
LABEL_NAMES: dict[int, str] = {i: anatomy_label_names()[i] for i in _PHANTOM_LABELS}
LABEL_IDS: dict[str, int] = {name: i for i, name in LABEL_NAMES.items()}
LIVER_LABEL = 5


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TumorSpec(_Spec):
    """An irregular, roughly ellipsoidal tumour placed in the liver (pre-procedure space)."""

    center_lps: Vec3 | None = Field(
        None, description="tumour centre in LPS mm; None = chosen deep in the liver by seed"
    )
    radius_mm: float = Field(
        15.0, gt=0.5, le=80, description="mean radius in mm (3 cm tumour = 15)"
    )
    axis_ratios: Vec3 = Field(
        (1.0, 0.9, 0.8), description="semi-axes relative to radius_mm before rotation"
    )
    irregularity: float = Field(
        0.08, ge=0, le=0.3, description="relative amplitude of the lobulation of the outline"
    )
    rotation_deg: Vec3 | None = Field(
        None, description="Euler angles (x, y, z) in degrees; None = random by seed"
    )
    contrast_hu: float = Field(
        -45.0,
        description="attenuation relative to liver parenchyma, HU (colorectal metastases are "
        "hypoattenuating in the portal venous phase)",
    )


class ZoneSpec(_Spec):
    """The ablation zone: an irregular ellipsoid in post-ablation space around the tumour."""

    margin_mm: float = Field(
        7.0, ge=-30, le=40, description="added to each tumour semi-axis to get the zone's"
    )
    offset_lps: Vec3 = Field(
        (0.0, 0.0, 0.0),
        description="zone centre minus the tumour centre mapped into post space, LPS mm",
    )
    elongation: float = Field(
        1.0, ge=0.5, le=2.0, description="extra factor on the zone's long axis (needle axis)"
    )
    irregularity: float = Field(0.05, ge=0, le=0.3, description="lobulation of the zone outline")
    rotation_deg: Vec3 | None = Field(None, description="Euler angles; None = random by seed")
    contrast_hu: float = Field(
        -60.0, description="coagulation zone relative to liver, HU (hypodense)"
    )
    rim_contrast_hu: float = Field(
        35.0, description="enhancing rim (periablational hyperaemia) relative to liver, HU"
    )
    rim_mm: float = Field(1.5, ge=0, le=6, description="thickness of the enhancing rim, mm")


class DeformationSpec(_Spec):
    """Respiratory-like smooth deformation from pre to post space."""

    max_displacement_mm: float = Field(
        10.0, ge=0, le=25, description="largest displacement anywhere in the grid, mm"
    )
    direction_lps: Vec3 = Field(
        (0.1, -0.3, -1.0),
        description="main motion direction (normalised): caudal and anterior, as the liver "
        "moves on inspiration",
    )
    local_fraction: float = Field(
        0.3, ge=0, le=1, description="amplitude of the local (non-rigid) bumps relative to the main"
    )

    @field_validator("direction_lps")
    @classmethod
    def _nonzero_direction(cls, value: Vec3) -> Vec3:
        # A zero vector cannot be normalised (and with no local bumps the motion could
        # not be scaled to max_displacement_mm: a division by zero, NaN displacements).
        if sum(v * v for v in value) < 1e-12:
            raise ValueError("main motion direction must not be the zero vector")
        return value


class CaseParameters(_Spec):
    """Everything that defines an ablation case besides the seed."""

    spacing_mm: Spacing3 = Field((1.5, 1.5, 1.5), description="pre grid voxel size (x, y, z), mm")
    size: Size3 | None = Field(
        None, description="pre grid voxels (x, y, z); None = cover the upper abdomen"
    )
    post_spacing_mm: Spacing3 | None = Field(
        None, description="post grid voxel size; None = same grid as pre"
    )
    noise_hu: float = Field(12.0, ge=0, le=100, description="image noise SD, HU")
    n_landmarks: int = Field(24, ge=20, le=500, description="landmark pairs inside the liver")
    tumor: TumorSpec = Field(default_factory=TumorSpec)
    zone: ZoneSpec = Field(default_factory=ZoneSpec)
    deformation: DeformationSpec = Field(default_factory=DeformationSpec)


class StarShapeParameters(BaseModel):
    """A star-shaped irregular ellipsoid (see ``hepanav.phantoms.lesions.StarShape``)."""

    center_lps: Vec3
    semi_axes_mm: Vec3
    rotation: tuple[Vec3, Vec3, Vec3] = Field(description="3x3 matrix, columns = axes in LPS")
    irregularity: float
    harmonics: list[tuple[float, float, float, float, float, float]] = Field(
        description="lobulation terms (nx, ny, nz, frequency, phase, weight)"
    )


class TrueMargins(BaseModel):
    """Ground-truth margin figures in POST space from the continuous shapes."""

    min_margin_mm: float = Field(description="minimal ablative margin (MAM), mm; signed")
    surface_fraction_below_0mm: float = Field(description="tumour surface area fraction < 0 mm")
    surface_fraction_below_5mm: float = Field(description="tumour surface area fraction < 5 mm")
    shell_coverage_5mm: float = Field(description="fraction of the 5 mm shell inside the zone")
    shell_coverage_6mm: float = Field(description="fraction of the 6 mm shell inside the zone")
    category: str = Field(description="incomplete, 0-5mm, 5-10mm or >=10mm")
    percentiles_mm: dict[str, float] = Field(
        description="signed margin percentiles (area-weighted)"
    )
    tumor_volume_ml: float = Field(description="tumour volume in pre space (as segmented), ml")
    tumor_volume_post_ml: float = Field(description="tumour volume mapped into post space, ml")
    ablation_volume_ml: float = Field(description="ablation-zone volume in post space, ml")


class CaseTruth(TrueMargins):
    """``truth.json``: the true margins plus how the case was made."""

    disclaimer: str = DISCLAIMER
    seed: int
    max_displacement_mm: float = Field(description="largest displacement in the post grid, mm")
    tumor_center_pre_lps: Vec3
    tumor_center_post_lps: Vec3
    zone_center_post_lps: Vec3
    tumor_shape: StarShapeParameters = Field(description="tumour in pre space")
    zone_shape: StarShapeParameters = Field(description="ablation zone in post space")
    parameters: CaseParameters
    base_ct: str | None = Field(None, description="real CT the lesions were implanted into")


class AblationCase(BaseModel):
    """``case.json``: the files of a case (paths relative to the case folder)."""

    disclaimer: str = DISCLAIMER
    seed: int
    kind: str = Field(description="'procedural' or 'implanted' (real CT)")
    pre_ct: str = "pre_ct.nii.gz"
    post_ct: str = "post_ct.nii.gz"
    pre_liver: str = "pre_liver.nii.gz"
    post_liver: str = "post_liver.nii.gz"
    pre_tumor: str = "pre_tumor.nii.gz"
    post_ablation: str = "post_ablation.nii.gz"
    pre_labels: str | None = "pre_labels.nii.gz"
    landmarks_pre: str = "landmarks_pre.csv"
    landmarks_post: str = "landmarks_post.csv"
    truth_post_tumor: str = "truth/post_tumor.nii.gz"
    truth_pre_ablation: str = "truth/pre_ablation.nii.gz"
    truth_displacement_post_to_pre: str | None = "truth/displacement_post_to_pre.nii.gz"
    truth: str = "truth.json"
    report: str | None = Field(None, description="quick-look case.html, when written")
    label_names: dict[int, str] = Field(default_factory=dict)
    parameters: CaseParameters
    true_margins: TrueMargins
