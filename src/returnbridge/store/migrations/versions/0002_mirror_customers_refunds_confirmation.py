"""mirror, customers, refunds, confirmation

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from returnbridge.store.types import Money

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('customers',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('email', sa.String(length=255), nullable=False),
    sa.Column('urn', sa.String(length=50), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('origin', sa.String(length=20), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customers')),
    sa.UniqueConstraint('email', name=op.f('uq_customers_email'))
    )
    op.create_table('khaos_order_statuses',
    sa.Column('order_id', sa.String(length=40), nullable=False),
    sa.Column('order_code', sa.String(length=50), nullable=False),
    sa.Column('associated_ref', sa.String(length=80), nullable=False),
    sa.Column('order_type', sa.String(length=10), nullable=False),
    sa.Column('invoice_code', sa.String(length=50), nullable=False),
    sa.Column('stage', sa.String(length=40), nullable=False),
    sa.Column('total', Money(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('raw', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('order_id', name=op.f('pk_khaos_order_statuses'))
    )
    with op.batch_alter_table('khaos_order_statuses', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_khaos_order_statuses_associated_ref'), ['associated_ref'], unique=False)

    op.create_table('khaos_stock_barcodes',
    sa.Column('barcode', sa.String(length=100), nullable=False),
    sa.Column('stock_id', sa.String(length=40), nullable=False),
    sa.PrimaryKeyConstraint('barcode', 'stock_id', name=op.f('pk_khaos_stock_barcodes'))
    )
    op.create_table('khaos_stock_items',
    sa.Column('stock_id', sa.String(length=40), nullable=False),
    sa.Column('stock_code', sa.String(length=100), nullable=False),
    sa.Column('other_ref', sa.String(length=100), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('barcodes', sa.JSON(), nullable=False),
    sa.Column('publish_on_web', sa.Boolean(), nullable=False),
    sa.Column('discontinued', sa.Boolean(), nullable=False),
    sa.Column('stock_controlled', sa.Boolean(), nullable=False),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('raw', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('stock_id', name=op.f('pk_khaos_stock_items'))
    )
    with op.batch_alter_table('khaos_stock_items', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_khaos_stock_items_other_ref'), ['other_ref'], unique=False)
        batch_op.create_index(batch_op.f('ix_khaos_stock_items_stock_code'), ['stock_code'], unique=False)

    op.create_table('khaos_stock_levels',
    sa.Column('stock_id', sa.String(length=40), nullable=False),
    sa.Column('site_id', sa.String(length=40), nullable=False),
    sa.Column('stock_code', sa.String(length=100), nullable=False),
    sa.Column('available', Money(), nullable=False),
    sa.Column('on_order', Money(), nullable=False),
    sa.Column('from_children', sa.Boolean(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('pushed_available', Money(), nullable=True),
    sa.Column('pushed_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('stock_id', 'site_id', name=op.f('pk_khaos_stock_levels'))
    )
    with op.batch_alter_table('khaos_stock_levels', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_khaos_stock_levels_stock_code'), ['stock_code'], unique=False)

    op.create_table('refunds',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('return_id', sa.Integer(), nullable=True),
    sa.Column('associated_ref', sa.String(length=50), nullable=False),
    sa.Column('provider', sa.String(length=20), nullable=False),
    sa.Column('origin', sa.String(length=20), nullable=False),
    sa.Column('idempotency_key', sa.String(length=120), nullable=False),
    sa.Column('provider_refund_id', sa.String(length=120), nullable=False),
    sa.Column('order_ref', sa.String(length=80), nullable=False),
    sa.Column('amount', Money(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['return_id'], ['returns.id'], name=op.f('fk_refunds_return_id_returns'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_refunds')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_refunds_idempotency_key'))
    )
    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_refunds_associated_ref'), ['associated_ref'], unique=False)
        batch_op.create_index(batch_op.f('ix_refunds_return_id'), ['return_id'], unique=False)

    with op.batch_alter_table('returns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('imported_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('credit_confirmed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('credit_source', sa.String(length=20), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('khaos_order_code', sa.String(length=50), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('first_seen_via', sa.String(length=20), nullable=False, server_default='webhook'))
        batch_op.add_column(sa.Column('parent_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_returns_parent_id'), ['parent_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_returns_parent_id_returns'), 'returns', ['parent_id'], ['id'], ondelete='SET NULL')



def downgrade() -> None:
    with op.batch_alter_table('returns', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_returns_parent_id_returns'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_returns_parent_id'))
        batch_op.drop_column('parent_id')
        batch_op.drop_column('first_seen_via')
        batch_op.drop_column('khaos_order_code')
        batch_op.drop_column('credit_source')
        batch_op.drop_column('credit_confirmed_at')
        batch_op.drop_column('imported_at')

    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_refunds_return_id'))
        batch_op.drop_index(batch_op.f('ix_refunds_associated_ref'))

    op.drop_table('refunds')
    with op.batch_alter_table('khaos_stock_levels', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_khaos_stock_levels_stock_code'))

    op.drop_table('khaos_stock_levels')
    with op.batch_alter_table('khaos_stock_items', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_khaos_stock_items_stock_code'))
        batch_op.drop_index(batch_op.f('ix_khaos_stock_items_other_ref'))

    op.drop_table('khaos_stock_items')
    op.drop_table('khaos_stock_barcodes')
    with op.batch_alter_table('khaos_order_statuses', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_khaos_order_statuses_associated_ref'))

    op.drop_table('khaos_order_statuses')
    op.drop_table('customers')
