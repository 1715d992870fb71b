"""Plain R1 margin status; finite, in-range numbers enforced by CHECK constraints;
import file names replaced by their hash.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from hepanav.registry.models import _range

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Frozen copy of the ranges this revision introduced (models.RANGES grows later).
RANGES = {
    "patients": {"year_of_birth": (1900, 2100, False)},
    "primary_tumours": {"ki67_pct": (0, 100, False)},
    "lesions": {"size_mm": (0, 400, True), "depth_mm": (0, 300, False)},
    "procedures": {"ablation_power_w": (0, 1000, True), "ablation_time_min": (0, 600, True)},
    "lesion_treatments": {
        "margin_mm": (0, 200, False),
        "mam_mm": (-100, 100, False),
        "shell_coverage_5mm_pct": (0, 100, False),
        "shell_coverage_6mm_pct": (0, 100, False),
    },
}
OLD_STATUSES = "('R0', 'R1_parenchymal', 'R1_vascular', 'R2')"
NEW_STATUSES = "('R0', 'R1', 'R1_parenchymal', 'R1_vascular', 'R2')"


def _status_check(values: str) -> str:
    return f"margin_status IS NULL OR margin_status IN {values}"


def upgrade() -> None:
    # Values that can no longer be stored are set to NULL first (NaN/inf/1e300 MAM
    # written by older versions), so the new constraints can be created.
    for table, columns in RANGES.items():
        for column, (low, high, low_open) in columns.items():
            check = _range(column, low, high, low_open)
            op.execute(sa.text(f"UPDATE {table} SET {column} = NULL WHERE NOT ({check})"))
    for table, columns in RANGES.items():
        with op.batch_alter_table(table) as batch:
            if table == "lesion_treatments":
                batch.drop_constraint(op.f("ck_lesion_treatments_margin_status"), type_="check")
                batch.create_check_constraint("margin_status", _status_check(NEW_STATUSES))
            for column, (low, high, low_open) in columns.items():
                batch.create_check_constraint(
                    f"{column}_range", _range(column, low, high, low_open)
                )
    op.execute(sa.text("UPDATE import_batches SET source = 'sha256:' || substr(sha256, 1, 16)"))


def downgrade() -> None:
    op.execute(
        sa.text("UPDATE lesion_treatments SET margin_status = NULL WHERE margin_status = 'R1'")
    )
    for table, columns in RANGES.items():
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.drop_constraint(op.f(f"ck_{table}_{column}_range"), type_="check")
            if table == "lesion_treatments":
                batch.drop_constraint(op.f("ck_lesion_treatments_margin_status"), type_="check")
                batch.create_check_constraint("margin_status", _status_check(OLD_STATUSES))
