"""inbound events: index for the event worker's per-return order check

The worker claims an event only when no older event about the same return is still waiting
(and deferred evidence is looked up the same way); this index keeps that a lookup instead of
a scan of every waiting event.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_inbound_events_source_ref_status', 'inbound_events',
                    ['source', 'source_ref', 'status', 'id'])


def downgrade() -> None:
    op.drop_index('ix_inbound_events_source_ref_status', table_name='inbound_events')
