"""audit anchor: row count and head hash of the audit chain, kept apart and sealed

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

GENESIS = "0" * 64


def upgrade() -> None:
    op.create_table('audit_anchor',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('head_id', sa.Integer(), nullable=False),
    sa.Column('head_hash', sa.String(length=64), nullable=False),
    sa.Column('mac', sa.String(length=100), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_anchor'))
    )
    # Anchor what is already there (unkeyed: 'returnbridge audit-log seal' seals it with
    # [audit].hmac_key once the chain has been verified).
    conn = op.get_bind()
    count = conn.execute(sa.text("SELECT COUNT(*) FROM audit_log")).scalar_one()
    last = conn.execute(sa.text(
        "SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1")).first()
    head_id, head_hash = (int(last[0]), str(last[1])) if last else (0, GENESIS)
    message = f"returnbridge-audit-anchor:{count}:{head_id}:{head_hash}"
    mac = "sha256:" + hashlib.sha256(message.encode()).hexdigest()
    conn.execute(sa.text(
        "INSERT INTO audit_anchor (id, count, head_id, head_hash, mac, updated_at) "
        "VALUES (1, :count, :head_id, :head_hash, :mac, CURRENT_TIMESTAMP)"),
        {"count": count, "head_id": head_id, "head_hash": head_hash, "mac": mac})


def downgrade() -> None:
    op.drop_table('audit_anchor')
