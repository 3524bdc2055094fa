"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from returnbridge.store.types import Money

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_log',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=120), nullable=False),
    sa.Column('action', sa.String(length=80), nullable=False),
    sa.Column('subject', sa.String(length=120), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log')),
    sa.UniqueConstraint('hash', name=op.f('uq_audit_log_hash'))
    )
    op.create_table('inbound_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('channel', sa.String(length=20), nullable=False),
    sa.Column('topic', sa.String(length=80), nullable=False),
    sa.Column('trigger', sa.String(length=80), nullable=False),
    sa.Column('dedupe_key', sa.String(length=128), nullable=False),
    sa.Column('source_ref', sa.String(length=80), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('headers', sa.JSON(), nullable=False),
    sa.Column('body', sa.LargeBinary(), nullable=False),
    sa.Column('body_sha256', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('processed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('duplicates', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inbound_events')),
    sa.UniqueConstraint('source', 'dedupe_key', name='uq_inbound_events_dedupe')
    )
    with op.batch_alter_table('inbound_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_inbound_events_status'), ['status'], unique=False)

    op.create_table('khaos_deliveries',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('endpoint', sa.String(length=40), nullable=False),
    sa.Column('format', sa.String(length=10), nullable=False),
    sa.Column('request_continuation', sa.String(length=255), nullable=False),
    sa.Column('response_continuation', sa.String(length=255), nullable=False),
    sa.Column('specific_ids', sa.Text(), nullable=False),
    sa.Column('return_count', sa.Integer(), nullable=False),
    sa.Column('document', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_khaos_deliveries'))
    )
    op.create_table('returns',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('associated_ref', sa.String(length=50), nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('source_return_id', sa.String(length=80), nullable=False),
    sa.Column('order_ref', sa.String(length=80), nullable=False),
    sa.Column('customer_email', sa.String(length=255), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('source_state', sa.String(length=40), nullable=False),
    sa.Column('khaos_status', sa.String(length=20), nullable=False),
    sa.Column('khaos_urn', sa.String(length=50), nullable=False),
    sa.Column('process_return', sa.Boolean(), nullable=False),
    sa.Column('source_created_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('source_updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('first_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_event_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ready_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('served_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('wait_reason', sa.String(length=255), nullable=False),
    sa.Column('case_json', sa.JSON(), nullable=False),
    sa.Column('credit_note_code', sa.String(length=50), nullable=False),
    sa.Column('credit_note_value', Money(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_returns')),
    sa.UniqueConstraint('associated_ref', name=op.f('uq_returns_associated_ref')),
    sa.UniqueConstraint('source', 'source_return_id', name='uq_returns_source_id')
    )
    with op.batch_alter_table('returns', schema=None) as batch_op:
        batch_op.create_index('ix_returns_khaos_status_ready', ['khaos_status', 'ready_at', 'id'], unique=False)

    op.create_table('watermarks',
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('value', sa.String(length=255), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_watermarks'))
    )
    op.create_table('exceptions',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('type', sa.String(length=50), nullable=False),
    sa.Column('owner', sa.String(length=20), nullable=False),
    sa.Column('severity', sa.String(length=20), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('return_id', sa.Integer(), nullable=True),
    sa.Column('associated_ref', sa.String(length=50), nullable=False),
    sa.Column('dedupe_key', sa.String(length=255), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('next_action', sa.Text(), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('first_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolved_by', sa.String(length=120), nullable=False),
    sa.Column('resolution', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['return_id'], ['returns.id'], name=op.f('fk_exceptions_return_id_returns'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_exceptions')),
    sa.UniqueConstraint('type', 'dedupe_key', name='uq_exceptions_dedupe')
    )
    with op.batch_alter_table('exceptions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_exceptions_return_id'), ['return_id'], unique=False)
        batch_op.create_index('ix_exceptions_status_owner', ['status', 'owner'], unique=False)

    op.create_table('exchange_lines',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('return_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('sku', sa.String(length=100), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('unit_net', Money(), nullable=False),
    sa.Column('unit_tax', Money(), nullable=False),
    sa.Column('unit_gross', Money(), nullable=False),
    sa.Column('out_of_stock', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['return_id'], ['returns.id'], name=op.f('fk_exchange_lines_return_id_returns'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_exchange_lines'))
    )
    with op.batch_alter_table('exchange_lines', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_exchange_lines_return_id'), ['return_id'], unique=False)

    op.create_table('khaos_delivery_items',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('delivery_id', sa.Integer(), nullable=False),
    sa.Column('return_id', sa.Integer(), nullable=False),
    sa.Column('associated_ref', sa.String(length=50), nullable=False),
    sa.Column('redelivery', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['delivery_id'], ['khaos_deliveries.id'], name=op.f('fk_khaos_delivery_items_delivery_id_khaos_deliveries'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['return_id'], ['returns.id'], name=op.f('fk_khaos_delivery_items_return_id_returns'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_khaos_delivery_items'))
    )
    with op.batch_alter_table('khaos_delivery_items', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_khaos_delivery_items_associated_ref'), ['associated_ref'], unique=False)
        batch_op.create_index(batch_op.f('ix_khaos_delivery_items_delivery_id'), ['delivery_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_khaos_delivery_items_return_id'), ['return_id'], unique=False)

    op.create_table('return_lines',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('return_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('sku', sa.String(length=100), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('unit_net', Money(), nullable=False),
    sa.Column('unit_tax', Money(), nullable=False),
    sa.Column('unit_gross', Money(), nullable=False),
    sa.Column('discount', Money(), nullable=False),
    sa.Column('reason', sa.String(length=255), nullable=False),
    sa.Column('parent_reason', sa.String(length=255), nullable=False),
    sa.Column('condition', sa.String(length=80), nullable=False),
    sa.Column('disposition', sa.String(length=20), nullable=False),
    sa.Column('physical_return_expected', sa.Boolean(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('source_unit_ids', sa.JSON(), nullable=False),
    sa.Column('khaos_reason_id', sa.String(length=20), nullable=False),
    sa.Column('processing', sa.String(length=20), nullable=False),
    sa.ForeignKeyConstraint(['return_id'], ['returns.id'], name=op.f('fk_return_lines_return_id_returns'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_return_lines'))
    )
    with op.batch_alter_table('return_lines', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_return_lines_return_id'), ['return_id'], unique=False)

    op.create_table('timeline',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('return_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('evidence', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['return_id'], ['returns.id'], name=op.f('fk_timeline_return_id_returns'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_timeline'))
    )
    with op.batch_alter_table('timeline', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_timeline_return_id'), ['return_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('timeline', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_timeline_return_id'))

    op.drop_table('timeline')
    with op.batch_alter_table('return_lines', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_return_lines_return_id'))

    op.drop_table('return_lines')
    with op.batch_alter_table('khaos_delivery_items', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_khaos_delivery_items_return_id'))
        batch_op.drop_index(batch_op.f('ix_khaos_delivery_items_delivery_id'))
        batch_op.drop_index(batch_op.f('ix_khaos_delivery_items_associated_ref'))

    op.drop_table('khaos_delivery_items')
    with op.batch_alter_table('exchange_lines', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_exchange_lines_return_id'))

    op.drop_table('exchange_lines')
    with op.batch_alter_table('exceptions', schema=None) as batch_op:
        batch_op.drop_index('ix_exceptions_status_owner')
        batch_op.drop_index(batch_op.f('ix_exceptions_return_id'))

    op.drop_table('exceptions')
    op.drop_table('watermarks')
    with op.batch_alter_table('returns', schema=None) as batch_op:
        batch_op.drop_index('ix_returns_khaos_status_ready')

    op.drop_table('returns')
    op.drop_table('khaos_deliveries')
    with op.batch_alter_table('inbound_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inbound_events_status'))

    op.drop_table('inbound_events')
    op.drop_table('audit_log')
