"""call_rates: one shared pacing slot per external API, so that every process together
keeps within Shopify's and desktop Khaos SOAP's per-minute limits, retries included
(issue #16, the chaos campaign's rates)

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('call_rates',
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('next_slot', sa.Double(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_call_rates'))
    )


def downgrade() -> None:
    op.drop_table('call_rates')
