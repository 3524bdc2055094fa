"""console search: text filters of the Returns list within 300 ms on 100,000 returns (issue #14)

The Returns list's free-text filters (``q``, ``ref``, ``order``, part of an e-mail) are
case-insensitive "contains" searches, which no ordinary b-tree index can answer.

- Both databases: ``ix_returns_search``, a narrow covering index (first seen, AssociatedRef,
  order, e-mail). A "contains" search scans this index instead of the wide ``returns`` rows
  (each carries the whole case JSON), newest first, and counts from it alone.
- PostgreSQL: ``pg_trgm`` trigram GIN indexes on the three columns, which answer ``ILIKE
  '%…%'`` for fragments of three or more characters without a scan. Created only when the
  server offers the extension; without it the covering index still serves.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

_TRGM = ('associated_ref', 'order_ref', 'customer_email')


def _has_trgm() -> bool:
    bind = op.get_bind()
    if bind.dialect.name != 'postgresql':
        return False
    return bool(bind.execute(sa.text(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")).scalar())


def upgrade() -> None:
    op.create_index('ix_returns_search', 'returns',
                    ['first_seen_at', 'associated_ref', 'order_ref', 'customer_email'])
    if _has_trgm():
        op.execute('CREATE EXTENSION IF NOT EXISTS pg_trgm')
        for column in _TRGM:
            op.execute(f'CREATE INDEX IF NOT EXISTS ix_returns_{column}_trgm ON returns '
                       f'USING gin ({column} gin_trgm_ops)')


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        for column in _TRGM:
            op.execute(f'DROP INDEX IF EXISTS ix_returns_{column}_trgm')
    op.drop_index('ix_returns_search', table_name='returns')
