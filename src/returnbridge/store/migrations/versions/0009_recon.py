"""reconciliation legs: platform outcome, Khaos credit note, payments (issue #13)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

_TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        'recon_platform',
        sa.Column('associated_ref', sa.String(50), nullable=False),
        sa.Column('source', sa.String(20), nullable=False),
        sa.Column('order_ref', sa.String(80), nullable=False),
        sa.Column('customer', sa.String(255), nullable=False),
        sa.Column('currency', sa.String(3), nullable=False),
        sa.Column('state', sa.String(20), nullable=False),
        sa.Column('outcome_at', _TZ, nullable=True),
        sa.Column('units', sa.Integer(), nullable=False),
        *(sa.Column(c, sa.BigInteger(), nullable=False) for c in (
            'goods', 'tax', 'refund', 'store_credit', 'exchange_credit', 'shipping',
            'handling_fee', 'bonus', 'upsell')),
        sa.PrimaryKeyConstraint('associated_ref', name=op.f('pk_recon_platform')),
    )
    op.create_index('ix_recon_platform_outcome', 'recon_platform', ['outcome_at'])
    op.create_index(op.f('ix_recon_platform_source'), 'recon_platform', ['source'])
    op.create_index(op.f('ix_recon_platform_order_ref'), 'recon_platform', ['order_ref'])
    op.create_table(
        'recon_credit_notes',
        sa.Column('associated_ref', sa.String(50), nullable=False),
        sa.Column('code', sa.String(50), nullable=False),
        *(sa.Column(c, sa.BigInteger(), nullable=False) for c in (
            'value', 'tax', 'shipping_line', 'fee_line')),
        sa.Column('stage', sa.String(40), nullable=False),
        sa.Column('cleared', sa.Boolean(), nullable=False),
        sa.Column('raised_at', _TZ, nullable=True),
        sa.PrimaryKeyConstraint('associated_ref', name=op.f('pk_recon_credit_notes')),
    )
    op.create_index('ix_recon_credit_notes_raised', 'recon_credit_notes', ['raised_at'])
    op.create_table(
        'recon_payments',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('associated_ref', sa.String(50), nullable=False),
        sa.Column('order_ref', sa.String(80), nullable=False),
        sa.Column('kind', sa.String(20), nullable=False),
        sa.Column('provider', sa.String(20), nullable=False),
        sa.Column('provider_ref', sa.String(120), nullable=False),
        sa.Column('amount', sa.BigInteger(), nullable=False),
        sa.Column('gateway', sa.String(60), nullable=False),
        sa.Column('ours', sa.Boolean(), nullable=False),
        sa.Column('matched_by', sa.String(20), nullable=False),
        sa.Column('created_at', _TZ, nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_recon_payments')),
        sa.UniqueConstraint('provider', 'provider_ref', name='uq_recon_payments_provider_ref'),
    )
    op.create_index('ix_recon_payments_created', 'recon_payments', ['created_at'])
    op.create_index(op.f('ix_recon_payments_associated_ref'), 'recon_payments',
                    ['associated_ref'])


def downgrade() -> None:
    op.drop_table('recon_payments')
    op.drop_table('recon_credit_notes')
    op.drop_table('recon_platform')
