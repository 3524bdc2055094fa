"""refunds: credit-note stage and the platform's refund request on each return

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('returns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('credit_note_stage', sa.String(length=40),
                                      nullable=False, server_default=''))
        batch_op.add_column(sa.Column('refund_request', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('returns', schema=None) as batch_op:
        batch_op.drop_column('refund_request')
        batch_op.drop_column('credit_note_stage')
