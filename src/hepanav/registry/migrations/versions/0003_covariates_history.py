"""Covariates margin studies adjust for, Ahmed 2014 ablation endpoints, and the
edit history table.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from hepanav.registry.models import RANGES, RANGES_0003, _in, _range
from hepanav.registry.vocabulary import BRAF_STATUSES, MARGIN_CONFIRMATIONS, RAS_STATUSES

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

COLUMNS = {
    "primary_tumours": [
        sa.Column("ras_status", sa.String(16), nullable=True),
        sa.Column("braf_status", sa.String(16), nullable=True),
    ],
    "lesions": [sa.Column("vessel_contact", sa.Boolean(), nullable=True)],
    "procedures": [
        sa.Column("centre", sa.String(64), nullable=True),
        sa.Column("asa_class", sa.Integer(), nullable=True),
        sa.Column("cea_ng_ml", sa.Float(), nullable=True),
        sa.Column("prior_chemo", sa.Boolean(), nullable=True),
        sa.Column("neoadjuvant_chemo", sa.Boolean(), nullable=True),
    ],
    "lesion_treatments": [
        sa.Column("n_applicators", sa.Integer(), nullable=True),
        sa.Column("margin_confirmation", sa.String(16), nullable=True),
        sa.Column("technical_success", sa.Boolean(), nullable=True),
        sa.Column("complete_at_first_follow_up", sa.Boolean(), nullable=True),
    ],
}
CODES = {
    "primary_tumours": {"ras_status": RAS_STATUSES, "braf_status": BRAF_STATUSES},
    "lesion_treatments": {"margin_confirmation": MARGIN_CONFIRMATIONS},
}


def upgrade() -> None:
    for table, columns in COLUMNS.items():
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.add_column(sa.Column(column.name, column.type, nullable=True))
            for name, values in CODES.get(table, {}).items():
                batch.create_check_constraint(name, _in(name, values))
            for name in RANGES_0003.get(table, ()):
                low, high, low_open = RANGES[table][name]
                batch.create_check_constraint(f"{name}_range", _range(name, low, high, low_open))
    op.create_table(
        "record_changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_by", sa.String(64), nullable=False),
        sa.Column("action", sa.String(8), nullable=False),
        sa.Column("table_name", sa.String(32), nullable=False),
        sa.Column("record_key", sa.String(200), nullable=False),
        sa.Column("field", sa.String(64), nullable=True),
        sa.Column("old_value", sa.String(200), nullable=True),
        sa.Column("new_value", sa.String(200), nullable=True),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.CheckConstraint(
            "action IN ('create', 'update', 'delete')", name=op.f("ck_record_changes_action")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_record_changes")),
    )
    op.create_index(
        op.f("ix_record_changes_record_key"), "record_changes", ["record_key"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_record_changes_record_key"), table_name="record_changes")
    op.drop_table("record_changes")
    for table, columns in COLUMNS.items():
        with op.batch_alter_table(table) as batch:
            for name in RANGES_0003.get(table, ()):
                batch.drop_constraint(op.f(f"ck_{table}_{name}_range"), type_="check")
            for name in CODES.get(table, {}):
                batch.drop_constraint(op.f(f"ck_{table}_{name}"), type_="check")
            for column in columns:
                batch.drop_column(column.name)
