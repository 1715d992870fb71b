"""Whether the MAM is only a bound of the true MAM, on the lesion treatment row.

``mam_bound`` is ``hepanav margin``'s ``min_margin_bound`` (docs/margin.md,
"Border"): 'lower' when the MAM is reached where the ablation zone is cut by the
image border (the true MAM may be LARGER), 'upper' when part of the tumour lies
outside the image (the true MAM may be SMALLER), 'unknown' for both. NULL = a
measurement, or unknown provenance (typed in, a CSV without the column, a
margin.json older than the field), exactly as margin.json's null. Existing rows
get NULL.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from hepanav.registry.models import _in
from hepanav.registry.vocabulary import MAM_BOUNDS

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TABLE = "lesion_treatments"
COLUMN = "mam_bound"


def upgrade() -> None:
    with op.batch_alter_table(TABLE) as batch:
        batch.add_column(sa.Column(COLUMN, sa.String(8), nullable=True))
        batch.create_check_constraint(COLUMN, _in(COLUMN, MAM_BOUNDS))


def downgrade() -> None:
    with op.batch_alter_table(TABLE) as batch:
        batch.drop_constraint(op.f(f"ck_{TABLE}_{COLUMN}"), type_="check")
        batch.drop_column(COLUMN)
