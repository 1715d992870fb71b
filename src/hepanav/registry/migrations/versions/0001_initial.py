"""Initial registry schema: patients, primary tumours, lesions, procedures, treatments,
follow-up events, complications and the import audit trail.

Revision ID: 0001
Revises:
Create Date: 2026-11-21 10:47:18.007645
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "import_batches",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("n_rows", sa.Integer(), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_batches")),
    )
    op.create_table(
        "patients",
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("year_of_birth", sa.Integer(), nullable=True),
        sa.Column("sex", sa.String(length=1), nullable=True),
        sa.CheckConstraint("sex IS NULL OR sex IN ('F', 'M', 'X')", name=op.f("ck_patients_sex")),
        sa.PrimaryKeyConstraint("patient_id", name=op.f("pk_patients")),
    )
    op.create_table(
        "lesions",
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("lesion_id", sa.String(length=64), nullable=False),
        sa.Column("segment", sa.String(length=3), nullable=True),
        sa.Column("size_mm", sa.Float(), nullable=True),
        sa.Column("depth_mm", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.patient_id"],
            name=op.f("fk_lesions_patient_id_patients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("patient_id", "lesion_id", name=op.f("pk_lesions")),
    )
    op.create_table(
        "primary_tumours",
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("primary_type", sa.String(length=8), nullable=False),
        sa.Column("net_grade", sa.String(length=2), nullable=True),
        sa.Column("ki67_pct", sa.Float(), nullable=True),
        sa.CheckConstraint(
            "primary_type IS NULL OR primary_type IN ('CRC', 'NET', 'HCC', 'other')",
            name=op.f("ck_primary_tumours_primary_type"),
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.patient_id"],
            name=op.f("fk_primary_tumours_patient_id_patients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("patient_id", name=op.f("pk_primary_tumours")),
    )
    op.create_table(
        "procedures",
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("procedure_id", sa.String(length=64), nullable=False),
        sa.Column("procedure_type", sa.String(length=16), nullable=False),
        sa.Column("procedure_date", sa.Date(), nullable=False),
        sa.Column("approach", sa.String(length=16), nullable=True),
        sa.Column("icg_used", sa.Boolean(), nullable=True),
        sa.Column("ablation_device", sa.String(length=64), nullable=True),
        sa.Column("ablation_energy", sa.String(length=8), nullable=True),
        sa.Column("ablation_power_w", sa.Float(), nullable=True),
        sa.Column("ablation_time_min", sa.Float(), nullable=True),
        sa.CheckConstraint(
            "procedure_type IS NULL OR procedure_type IN ('resection', 'ablation', 'TAE', "
            "'TACE', 'TARE', 'HAI', 'PRRT', 'systemic')",
            name=op.f("ck_procedures_procedure_type"),
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.patient_id"],
            name=op.f("fk_procedures_patient_id_patients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("patient_id", "procedure_id", name=op.f("pk_procedures")),
    )
    op.create_table(
        "complications",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("procedure_id", sa.String(length=64), nullable=False),
        sa.Column("grading_system", sa.String(length=16), nullable=False),
        sa.Column("grade", sa.String(length=4), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=True),
        sa.CheckConstraint(
            "grading_system IS NULL OR grading_system IN ('clavien_dindo', 'cirse', 'ctcae')",
            name=op.f("ck_complications_grading_system"),
        ),
        sa.ForeignKeyConstraint(
            ["patient_id", "procedure_id"],
            ["procedures.patient_id", "procedures.procedure_id"],
            name=op.f("fk_complications_patient_id_procedures"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_complications")),
    )
    op.create_table(
        "follow_up_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("lesion_id", sa.String(length=64), nullable=True),
        sa.Column("event_type", sa.String(length=24), nullable=False),
        sa.Column("event_date", sa.Date(), nullable=False),
        sa.CheckConstraint(
            "event_type IS NULL OR event_type IN ('local_progression', "
            "'intrahepatic_recurrence', 'extrahepatic_recurrence', 'death', 'last_contact')",
            name=op.f("ck_follow_up_events_event_type"),
        ),
        sa.ForeignKeyConstraint(
            ["patient_id", "lesion_id"],
            ["lesions.patient_id", "lesions.lesion_id"],
            name=op.f("fk_follow_up_events_patient_id_lesions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.patient_id"],
            name=op.f("fk_follow_up_events_patient_id_patients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_follow_up_events")),
    )
    with op.batch_alter_table("follow_up_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_follow_up_events_patient_id"), ["patient_id"], unique=False
        )

    op.create_table(
        "lesion_treatments",
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("procedure_id", sa.String(length=64), nullable=False),
        sa.Column("lesion_id", sa.String(length=64), nullable=False),
        sa.Column("margin_mm", sa.Float(), nullable=True),
        sa.Column("margin_status", sa.String(length=16), nullable=True),
        sa.Column("mam_mm", sa.Float(), nullable=True),
        sa.Column("shell_coverage_5mm_pct", sa.Float(), nullable=True),
        sa.Column("shell_coverage_6mm_pct", sa.Float(), nullable=True),
        sa.Column("margin_category", sa.String(length=16), nullable=True),
        sa.CheckConstraint(
            "margin_status IS NULL OR margin_status IN "
            "('R0', 'R1_parenchymal', 'R1_vascular', 'R2')",
            name=op.f("ck_lesion_treatments_margin_status"),
        ),
        sa.ForeignKeyConstraint(
            ["patient_id", "lesion_id"],
            ["lesions.patient_id", "lesions.lesion_id"],
            name=op.f("fk_lesion_treatments_patient_id_lesions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["patient_id", "procedure_id"],
            ["procedures.patient_id", "procedures.procedure_id"],
            name=op.f("fk_lesion_treatments_patient_id_procedures"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "patient_id", "procedure_id", "lesion_id", name=op.f("pk_lesion_treatments")
        ),
    )


def downgrade() -> None:
    op.drop_table("lesion_treatments")
    with op.batch_alter_table("follow_up_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_follow_up_events_patient_id"))

    op.drop_table("follow_up_events")
    op.drop_table("complications")
    op.drop_table("procedures")
    op.drop_table("primary_tumours")
    op.drop_table("lesions")
    op.drop_table("patients")
    op.drop_table("import_batches")
