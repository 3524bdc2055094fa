"""console: users, sessions, API tokens, console mapping rules, SKU aliases, search indexes

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('console_users',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('username', sa.String(length=80), nullable=False),
    sa.Column('display_name', sa.String(length=120), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_login_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_console_users')),
    sa.UniqueConstraint('username', name=op.f('uq_console_users_username'))
    )
    op.create_table('console_sessions',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('csrf_token', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('client', sa.String(length=255), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['console_users.id'], name=op.f('fk_console_sessions_user_id_console_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_console_sessions'))
    )
    with op.batch_alter_table('console_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_console_sessions_user_id'), ['user_id'], unique=False)
    op.create_table('api_tokens',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('scope', sa.String(length=20), nullable=False),
    sa.Column('token_sha256', sa.String(length=64), nullable=False),
    sa.Column('prefix', sa.String(length=12), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=120), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
    sa.UniqueConstraint('name', name=op.f('uq_api_tokens_name')),
    sa.UniqueConstraint('token_sha256', name=op.f('uq_api_tokens_token_sha256'))
    )
    op.create_table('console_mapping_rules',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('reason', sa.String(length=255), nullable=False),
    sa.Column('condition', sa.String(length=80), nullable=False),
    sa.Column('disposition', sa.String(length=20), nullable=False),
    sa.Column('khaos_reason_id', sa.String(length=20), nullable=False),
    sa.Column('processing', sa.String(length=20), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=120), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_console_mapping_rules'))
    )
    op.create_table('sku_aliases',
    sa.Column('source_sku', sa.String(length=100), nullable=False),
    sa.Column('khaos_sku', sa.String(length=100), nullable=False),
    sa.Column('stock_id', sa.String(length=40), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=120), nullable=False),
    sa.PrimaryKeyConstraint('source_sku', name=op.f('pk_sku_aliases'))
    )
    with op.batch_alter_table('returns', schema=None) as batch_op:
        batch_op.create_index('ix_returns_first_seen_flow', ['first_seen_at', 'khaos_status', 'imported_at', 'credit_confirmed_at'], unique=False)
        batch_op.create_index('ix_returns_status_credit', ['khaos_status', 'credit_confirmed_at', 'process_return'], unique=False)
        batch_op.create_index('ix_returns_customer_email', ['customer_email'], unique=False)
        batch_op.create_index('ix_returns_order_ref', ['order_ref'], unique=False)
        batch_op.create_index('ix_returns_served_at', ['served_at'], unique=False)
        batch_op.create_index('ix_returns_khaos_status_first_seen', ['khaos_status', 'first_seen_at'], unique=False)
    with op.batch_alter_table('return_lines', schema=None) as batch_op:
        batch_op.create_index('ix_return_lines_sku', ['sku'], unique=False)
    with op.batch_alter_table('exceptions', schema=None) as batch_op:
        batch_op.create_index('ix_exceptions_status_first_seen', ['status', 'first_seen_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('exceptions', schema=None) as batch_op:
        batch_op.drop_index('ix_exceptions_status_first_seen')
    with op.batch_alter_table('return_lines', schema=None) as batch_op:
        batch_op.drop_index('ix_return_lines_sku')
    with op.batch_alter_table('returns', schema=None) as batch_op:
        batch_op.drop_index('ix_returns_khaos_status_first_seen')
        batch_op.drop_index('ix_returns_served_at')
        batch_op.drop_index('ix_returns_order_ref')
        batch_op.drop_index('ix_returns_customer_email')
        batch_op.drop_index('ix_returns_status_credit')
        batch_op.drop_index('ix_returns_first_seen_flow')
    op.drop_table('sku_aliases')
    op.drop_table('console_mapping_rules')
    op.drop_table('api_tokens')
    with op.batch_alter_table('console_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_console_sessions_user_id'))
    op.drop_table('console_sessions')
    op.drop_table('console_users')
