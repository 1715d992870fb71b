"""The MAM's uncertainty and whether it is decisive, on the lesion treatment row.

``mam_uncertainty_mm`` is u of ``hepanav margin``'s ``margin.json``
(``uncertainty.half_width_mm``); ``mam_decisive`` is its ``uncertainty.decisive``
(false when the MAM lies within u of 0 mm or of 5 mm, or the masks were
segmented automatically from seeds). NULL in both = unknown (typed in, imported
from a CSV without them, or a margin.json without an uncertainty block).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from hepanav.registry.models import RANGES, RANGES_0004, _range

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TABLE = "lesion_treatments"
COLUMNS = [
    sa.Column("mam_uncertainty_mm", sa.Float(), nullable=True),
    sa.Column("mam_decisive", sa.Boolean(), nullable=True),
]


def upgrade() -> None:
    with op.batch_alter_table(TABLE) as batch:
        for column in COLUMNS:
            batch.add_column(sa.Column(column.name, column.type, nullable=True))
        for name in RANGES_0004[TABLE]:
            low, high, low_open = RANGES[TABLE][name]
            batch.create_check_constraint(f"{name}_range", _range(name, low, high, low_open))


def downgrade() -> None:
    with op.batch_alter_table(TABLE) as batch:
        for name in RANGES_0004[TABLE]:
            batch.drop_constraint(op.f(f"ck_{TABLE}_{name}_range"), type_="check")
        for column in COLUMNS:
            batch.drop_column(column.name)
