"""The registry's tables (SQLAlchemy 2 declarative).

Identifiers are the pseudonymous keys the centre already uses (``patient_id``,
``lesion_id``, ``procedure_id``); lesions and procedures are keyed *within* a
patient, so composite natural keys are used. That keeps imports to plain bulk
``INSERT``s with no id look-ups, and two centres' spreadsheets can share lesion
names like ``L1``. Alembic migrations in ``migrations/versions`` create these
tables; ``tests/test_registry_db.py`` checks that the two agree.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Integer,
    MetaData,
    String,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from hepanav.registry.vocabulary import (
    BRAF_STATUSES,
    COMPLICATION_SYSTEMS,
    EVENT_TYPES,
    MAM_BOUNDS,
    MARGIN_CONFIRMATIONS,
    MARGIN_STATUSES,
    PRIMARY_TYPES,
    PROCEDURE_TYPES,
    RAS_STATUSES,
    SEXES,
)

# Deterministic constraint names so migrations can refer to them on every backend.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ID = String(64)


def _in(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{v}'" for v in values)
    return f"{column} IS NULL OR {column} IN ({quoted})"


def _range(column: str, low: float, high: float, low_open: bool = False) -> str:
    # NaN and +-infinity fail this on both backends (PostgreSQL orders NaN above
    # every number; SQLite compares infinities): finite, in-range values only.
    op = ">" if low_open else ">="
    return f"{column} IS NULL OR ({column} {op} {low:g} AND {column} <= {high:g})"


# The ranges the import templates allow (schema.OutcomeRow); the database checks
# them again as the second line of defence (Alembic 0002).
RANGES: dict[str, dict[str, tuple[float, float, bool]]] = {
    "patients": {"year_of_birth": (1900, 2100, False)},
    "primary_tumours": {"ki67_pct": (0, 100, False)},
    "lesions": {"size_mm": (0, 400, True), "depth_mm": (0, 300, False)},
    "procedures": {
        "ablation_power_w": (0, 1000, True),
        "ablation_time_min": (0, 600, True),
        "cea_ng_ml": (0, 100000, False),
        "asa_class": (1, 6, False),
    },
    "lesion_treatments": {
        "margin_mm": (0, 200, False),
        "mam_mm": (-100, 100, False),
        "shell_coverage_5mm_pct": (0, 100, False),
        "shell_coverage_6mm_pct": (0, 100, False),
        "n_applicators": (1, 20, False),
        "mam_uncertainty_mm": (0, 100, False),
    },
}
# Checks added by migration 0003 (the others came with 0002).
RANGES_0003 = {
    "procedures": ("cea_ng_ml", "asa_class"),
    "lesion_treatments": ("n_applicators",),
}
# Checks added by migration 0004.
RANGES_0004 = {"lesion_treatments": ("mam_uncertainty_mm",)}


def _range_checks(table: str) -> tuple[CheckConstraint, ...]:
    return tuple(
        CheckConstraint(_range(c, lo, hi, open_), name=f"{c}_range")
        for c, (lo, hi, open_) in RANGES[table].items()
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Patient(Base):
    """A patient, by pseudonym only (no name, record number or full birth date)."""

    __tablename__ = "patients"
    __table_args__ = (CheckConstraint(_in("sex", SEXES), name="sex"), *_range_checks("patients"))

    patient_id: Mapped[str] = mapped_column(ID, primary_key=True)
    year_of_birth: Mapped[int | None] = mapped_column(Integer)
    sex: Mapped[str | None] = mapped_column(String(1))


class PrimaryTumour(Base):
    """The primary tumour of a patient; NET carry WHO grade and Ki-67 (%)."""

    __tablename__ = "primary_tumours"
    __table_args__ = (
        CheckConstraint(_in("primary_type", PRIMARY_TYPES), name="primary_type"),
        CheckConstraint(_in("ras_status", RAS_STATUSES), name="ras_status"),
        CheckConstraint(_in("braf_status", BRAF_STATUSES), name="braf_status"),
        *_range_checks("primary_tumours"),
    )

    patient_id: Mapped[str] = mapped_column(
        ID, ForeignKey("patients.patient_id", ondelete="CASCADE"), primary_key=True
    )
    primary_type: Mapped[str] = mapped_column(String(8))
    net_grade: Mapped[str | None] = mapped_column(String(2))
    ki67_pct: Mapped[float | None] = mapped_column(Float)
    ras_status: Mapped[str | None] = mapped_column(String(16))
    braf_status: Mapped[str | None] = mapped_column(String(16))


class Lesion(Base):
    """A liver lesion: Couinaud segment, largest diameter and depth below the capsule (mm)."""

    __tablename__ = "lesions"
    __table_args__ = _range_checks("lesions")

    patient_id: Mapped[str] = mapped_column(
        ID, ForeignKey("patients.patient_id", ondelete="CASCADE"), primary_key=True
    )
    lesion_id: Mapped[str] = mapped_column(ID, primary_key=True)
    segment: Mapped[str | None] = mapped_column(String(3))
    size_mm: Mapped[float | None] = mapped_column(Float)
    depth_mm: Mapped[float | None] = mapped_column(Float)
    vessel_contact: Mapped[bool | None] = mapped_column(Boolean)


class Procedure(Base):
    """A liver-directed procedure; ablations carry device and energy."""

    __tablename__ = "procedures"
    __table_args__ = (
        CheckConstraint(_in("procedure_type", PROCEDURE_TYPES), name="procedure_type"),
        *_range_checks("procedures"),
    )

    patient_id: Mapped[str] = mapped_column(
        ID, ForeignKey("patients.patient_id", ondelete="CASCADE"), primary_key=True
    )
    procedure_id: Mapped[str] = mapped_column(ID, primary_key=True)
    procedure_type: Mapped[str] = mapped_column(String(16))
    procedure_date: Mapped[dt.date] = mapped_column(Date)
    approach: Mapped[str | None] = mapped_column(String(16))
    icg_used: Mapped[bool | None] = mapped_column(Boolean)
    ablation_device: Mapped[str | None] = mapped_column(String(64))
    ablation_energy: Mapped[str | None] = mapped_column(String(8))
    ablation_power_w: Mapped[float | None] = mapped_column(Float)
    ablation_time_min: Mapped[float | None] = mapped_column(Float)
    centre: Mapped[str | None] = mapped_column(String(64))
    asa_class: Mapped[int | None] = mapped_column(Integer)
    cea_ng_ml: Mapped[float | None] = mapped_column(Float)
    prior_chemo: Mapped[bool | None] = mapped_column(Boolean)
    neoadjuvant_chemo: Mapped[bool | None] = mapped_column(Boolean)


class LesionTreatment(Base):
    """One lesion treated in one procedure, with its margin."""

    __tablename__ = "lesion_treatments"
    __table_args__ = (
        ForeignKeyConstraint(
            ["patient_id", "procedure_id"],
            ["procedures.patient_id", "procedures.procedure_id"],
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["patient_id", "lesion_id"],
            ["lesions.patient_id", "lesions.lesion_id"],
            ondelete="CASCADE",
        ),
        CheckConstraint(_in("margin_status", MARGIN_STATUSES), name="margin_status"),
        CheckConstraint(
            _in("margin_confirmation", MARGIN_CONFIRMATIONS), name="margin_confirmation"
        ),
        CheckConstraint(_in("mam_bound", MAM_BOUNDS), name="mam_bound"),
        *_range_checks("lesion_treatments"),
    )

    patient_id: Mapped[str] = mapped_column(ID, primary_key=True)
    procedure_id: Mapped[str] = mapped_column(ID, primary_key=True)
    lesion_id: Mapped[str] = mapped_column(ID, primary_key=True)
    margin_mm: Mapped[float | None] = mapped_column(Float)
    margin_status: Mapped[str | None] = mapped_column(String(16))
    mam_mm: Mapped[float | None] = mapped_column(Float)
    shell_coverage_5mm_pct: Mapped[float | None] = mapped_column(Float)
    shell_coverage_6mm_pct: Mapped[float | None] = mapped_column(Float)
    margin_category: Mapped[str | None] = mapped_column(String(16))
    # The MAM's uncertainty u (mm) and whether the MAM is decisive, from
    # margin.json (schema 0004): not decisive = within u of 0 or 5 mm, or masks
    # segmented automatically from seeds. NULL = unknown (typed in, or a CSV
    # without them).
    mam_uncertainty_mm: Mapped[float | None] = mapped_column(Float)
    mam_decisive: Mapped[bool | None] = mapped_column(Boolean)
    # Whether the MAM is only a bound of the true MAM (schema 0005, margin.json's
    # min_margin_bound): 'lower' (zone cut by the image border: the true MAM may be
    # larger), 'upper' (tumour partly outside the image: it may be smaller),
    # 'unknown' (both). NULL = a measurement, or unknown provenance.
    mam_bound: Mapped[str | None] = mapped_column(String(8))
    n_applicators: Mapped[int | None] = mapped_column(Integer)
    margin_confirmation: Mapped[str | None] = mapped_column(String(16))
    # Ahmed 2014 (Radiology 2014;273:241-260): technical success (zone covers the
    # tumour at the end of the procedure) and complete ablation at the first
    # contrast-enhanced follow-up (technique efficacy).
    technical_success: Mapped[bool | None] = mapped_column(Boolean)
    complete_at_first_follow_up: Mapped[bool | None] = mapped_column(Boolean)


class FollowUpEvent(Base):
    """A dated follow-up event; local tumour progression names its lesion."""

    __tablename__ = "follow_up_events"
    __table_args__ = (
        ForeignKeyConstraint(
            ["patient_id", "lesion_id"],
            ["lesions.patient_id", "lesions.lesion_id"],
            ondelete="CASCADE",
        ),
        CheckConstraint(_in("event_type", EVENT_TYPES), name="event_type"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    patient_id: Mapped[str] = mapped_column(
        ID, ForeignKey("patients.patient_id", ondelete="CASCADE"), index=True
    )
    lesion_id: Mapped[str | None] = mapped_column(ID)
    event_type: Mapped[str] = mapped_column(String(24))
    event_date: Mapped[dt.date] = mapped_column(Date)


class Complication(Base):
    """A complication of a procedure graded in Clavien-Dindo, CIRSE or CTCAE v5."""

    __tablename__ = "complications"
    __table_args__ = (
        ForeignKeyConstraint(
            ["patient_id", "procedure_id"],
            ["procedures.patient_id", "procedures.procedure_id"],
            ondelete="CASCADE",
        ),
        CheckConstraint(_in("grading_system", COMPLICATION_SYSTEMS), name="grading_system"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    patient_id: Mapped[str] = mapped_column(ID)
    procedure_id: Mapped[str] = mapped_column(ID)
    grading_system: Mapped[str] = mapped_column(String(16))
    grade: Mapped[str] = mapped_column(String(4))
    description: Mapped[str | None] = mapped_column(String(200))


class ImportBatch(Base):
    """Audit trail: one row per successful import (kind, rows, SHA-256 of the file).

    ``source`` holds ``sha256:<first 16 hex digits>``, never the file name (a
    name may carry a patient's name or folder); before schema 0002 it held the name.
    """

    __tablename__ = "import_batches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    n_rows: Mapped[int] = mapped_column(Integer)
    imported_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class RecordChange(Base):
    """Edit history: one row per changed field (who, when, field, old, new, reason).

    ``record_key`` is ``table:patient_id/...`` (pseudonymous keys only);
    ``action`` is create, update or delete. Values are stored as text.
    """

    __tablename__ = "record_changes"
    __table_args__ = (CheckConstraint("action IN ('create', 'update', 'delete')", name="action"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    changed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    changed_by: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(8))
    table_name: Mapped[str] = mapped_column(String(32))
    record_key: Mapped[str] = mapped_column(String(200), index=True)
    field: Mapped[str | None] = mapped_column(String(64))
    old_value: Mapped[str | None] = mapped_column(String(200))
    new_value: Mapped[str | None] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(String(200))
