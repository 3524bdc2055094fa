"""reconciliation items (shipping / handling fee off the credit note, finance tasks)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from returnbridge.store.types import Money

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('reconciliation_items',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('return_id', sa.Integer(), nullable=True),
    sa.Column('associated_ref', sa.String(length=50), nullable=False),
    sa.Column('category', sa.String(length=30), nullable=False),
    sa.Column('amount', Money(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('reference', sa.String(length=120), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolved_by', sa.String(length=120), nullable=False),
    sa.ForeignKeyConstraint(['return_id'], ['returns.id'],
                            name=op.f('fk_reconciliation_items_return_id_returns'),
                            ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reconciliation_items')),
    sa.UniqueConstraint('associated_ref', 'category', name='uq_reconciliation_items_ref_cat')
    )
    with op.batch_alter_table('reconciliation_items', schema=None) as batch_op:
        batch_op.create_index('ix_reconciliation_items_status', ['status', 'category'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_reconciliation_items_return_id'), ['return_id'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('reconciliation_items', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reconciliation_items_return_id'))
        batch_op.drop_index('ix_reconciliation_items_status')
    op.drop_table('reconciliation_items')
