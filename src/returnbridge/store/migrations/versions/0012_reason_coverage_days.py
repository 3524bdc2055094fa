"""console: reason coverage pre-grouped per day and reconciliation reports kept per legs
version, both kept honest by triggers; shared sign-in throttle (issue #14)

- ``reason_coverage_days``: the Mapping page's coverage grouped per UTC day of
  ``returns.last_event_at`` (see ``store/reason_coverage.py``), filled here from the
  returns already stored.
- ``reason_coverage_dirty``: (day, return) marks written by triggers on ``returns`` and
  ``return_lines`` whenever a grouped value changes, so every writer keeps the table
  honest; a reader rebuilds the marked days before reading.
- ``ix_returns_last_event_at``: a day's returns, and a period's count, from an index.
- ``recon_legs_version`` (a counter that triggers on the three reconciliation leg tables
  add to on every change) and ``reconciliation_reports`` (a month's report as computed at
  a version): the Reconciliation page reads the report while the legs are unchanged.
- ``console_login_failures``: failed sign-ins, so that every ``serve`` process (worker)
  counts them together.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

_SQLITE_TRIGGERS = [
    """CREATE TRIGGER trg_rcov_line_ins AFTER INSERT ON return_lines BEGIN
        INSERT OR IGNORE INTO reason_coverage_dirty (day, return_id)
        SELECT substr(r.last_event_at, 1, 10), r.id FROM returns r WHERE r.id = NEW.return_id;
    END""",
    """CREATE TRIGGER trg_rcov_line_del AFTER DELETE ON return_lines BEGIN
        INSERT OR IGNORE INTO reason_coverage_dirty (day, return_id)
        SELECT substr(r.last_event_at, 1, 10), r.id FROM returns r WHERE r.id = OLD.return_id;
    END""",
    """CREATE TRIGGER trg_rcov_line_upd AFTER UPDATE OF return_id, reason, condition,
    disposition, physical_return_expected, quantity ON return_lines BEGIN
        INSERT OR IGNORE INTO reason_coverage_dirty (day, return_id)
        SELECT substr(r.last_event_at, 1, 10), r.id FROM returns r
        WHERE r.id IN (OLD.return_id, NEW.return_id);
    END""",
    """CREATE TRIGGER trg_rcov_return_upd AFTER UPDATE OF last_event_at, source, associated_ref
    ON returns WHEN OLD.last_event_at IS NOT NEW.last_event_at OR OLD.source IS NOT NEW.source
        OR OLD.associated_ref IS NOT NEW.associated_ref BEGIN
        INSERT OR IGNORE INTO reason_coverage_dirty (day, return_id)
        VALUES (substr(OLD.last_event_at, 1, 10), OLD.id),
               (substr(NEW.last_event_at, 1, 10), NEW.id);
    END""",
    """CREATE TRIGGER trg_rcov_return_del AFTER DELETE ON returns BEGIN
        INSERT OR IGNORE INTO reason_coverage_dirty (day, return_id)
        VALUES (substr(OLD.last_event_at, 1, 10), OLD.id);
    END""",
]

# PostgreSQL: upsert (DO UPDATE, not DO NOTHING) so that a writer waits for a reader that
# holds the mark while rebuilding its day, and then marks it again.
_PG_MARK = """INSERT INTO reason_coverage_dirty (day, return_id)
    SELECT to_char(r.last_event_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'), r.id FROM returns r
    WHERE r.id = {rid}
    ON CONFLICT (day, return_id) DO UPDATE SET day = EXCLUDED.day;"""
_PG_MARK_AT = """INSERT INTO reason_coverage_dirty (day, return_id)
    VALUES (to_char({rec}.last_event_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'), {rec}.id)
    ON CONFLICT (day, return_id) DO UPDATE SET day = EXCLUDED.day;"""

_PG_TRIGGERS = [
    f"""CREATE OR REPLACE FUNCTION rcov_line_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP <> 'INSERT' THEN {_PG_MARK.format(rid='OLD.return_id')} END IF;
        IF TG_OP <> 'DELETE' THEN {_PG_MARK.format(rid='NEW.return_id')} END IF;
        RETURN NULL;
    END $$""",
    """CREATE TRIGGER trg_rcov_lines AFTER INSERT OR DELETE OR UPDATE OF return_id, reason,
    condition, disposition, physical_return_expected, quantity ON return_lines FOR EACH ROW EXECUTE FUNCTION rcov_line_changed()""",
    f"""CREATE OR REPLACE FUNCTION rcov_return_changed() RETURNS trigger LANGUAGE plpgsql
    AS $$
    BEGIN
        {_PG_MARK_AT.format(rec='OLD')}
        IF TG_OP = 'UPDATE' THEN {_PG_MARK_AT.format(rec='NEW')} END IF;
        RETURN NULL;
    END $$""",
    """CREATE TRIGGER trg_rcov_return_upd AFTER UPDATE OF last_event_at, source,
    associated_ref ON returns FOR EACH ROW
    WHEN (OLD.last_event_at IS DISTINCT FROM NEW.last_event_at
          OR OLD.source IS DISTINCT FROM NEW.source
          OR OLD.associated_ref IS DISTINCT FROM NEW.associated_ref)
    EXECUTE FUNCTION rcov_return_changed()""",
    """CREATE TRIGGER trg_rcov_return_del AFTER DELETE ON returns FOR EACH ROW
    EXECUTE FUNCTION rcov_return_changed()""",
]

_LEGS = ('recon_platform', 'recon_credit_notes', 'recon_payments')
_BUMP = 'UPDATE recon_legs_version SET n = n + 1 WHERE id = 1'

_FILL = """INSERT INTO reason_coverage_days (day, source, reason, condition, disposition,
    physical_return_expected, returns, lines, units, last_seen, example_ref)
    SELECT {day}, r.source, l.reason, l.condition, l.disposition,
        l.physical_return_expected, count(DISTINCT r.id), count(*),
        coalesce(sum(l.quantity), 0), max(r.last_event_at), max(r.associated_ref)
    FROM return_lines l JOIN returns r ON r.id = l.return_id
    GROUP BY {day}, r.source, l.reason, l.condition, l.disposition,
        l.physical_return_expected"""


def upgrade() -> None:
    op.create_table('reason_coverage_days',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('day', sa.String(length=10), nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('reason', sa.String(length=255), nullable=False),
    sa.Column('condition', sa.String(length=80), nullable=False),
    sa.Column('disposition', sa.String(length=20), nullable=False),
    sa.Column('physical_return_expected', sa.Boolean(), nullable=False),
    sa.Column('returns', sa.Integer(), nullable=False),
    sa.Column('lines', sa.Integer(), nullable=False),
    sa.Column('units', sa.BigInteger(), nullable=False),
    sa.Column('last_seen', sa.DateTime(timezone=True), nullable=False),
    sa.Column('example_ref', sa.String(length=50), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reason_coverage_days'))
    )
    op.create_index(op.f('ix_reason_coverage_days_day'), 'reason_coverage_days', ['day'])
    op.create_table('reason_coverage_dirty',
    sa.Column('day', sa.String(length=10), nullable=False),
    sa.Column('return_id', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('day', 'return_id', name=op.f('pk_reason_coverage_dirty'))
    )
    op.create_index('ix_returns_last_event_at', 'returns', ['last_event_at'])
    op.create_table('console_login_failures',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_console_login_failures'))
    )
    op.create_index('ix_console_login_failures_key_at', 'console_login_failures',
                    ['key', 'at'])
    op.create_index('ix_console_login_failures_at', 'console_login_failures', ['at'])
    op.create_table('recon_legs_version',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('n', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recon_legs_version'))
    )
    op.execute('INSERT INTO recon_legs_version (id, n) VALUES (1, 0)')
    op.create_table('reconciliation_reports',
    sa.Column('period', sa.String(length=7), nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('legs_version', sa.BigInteger(), nullable=False),
    sa.Column('computed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('summary', sa.JSON(), nullable=False),
    sa.Column('differences', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('period', 'source', name=op.f('pk_reconciliation_reports'))
    )
    pg = op.get_bind().dialect.name == 'postgresql'
    if pg:  # one bump per statement (a leg refresh or a COPY is one or a few statements)
        op.execute(f"""CREATE OR REPLACE FUNCTION recon_legs_changed() RETURNS trigger
            LANGUAGE plpgsql AS $$ BEGIN {_BUMP}; RETURN NULL; END $$""")
        for table in _LEGS:
            op.execute(f'CREATE TRIGGER trg_{table}_version AFTER INSERT OR UPDATE OR DELETE '
                       f'OR TRUNCATE ON {table} FOR EACH STATEMENT '
                       'EXECUTE FUNCTION recon_legs_changed()')
    else:
        for table in _LEGS:
            for event in ('INSERT', 'UPDATE', 'DELETE'):
                op.execute(f'CREATE TRIGGER trg_{table}_{event.lower()}_version AFTER {event} '
                           f'ON {table} BEGIN {_BUMP}; END')
    day = ("to_char(r.last_event_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')" if pg
           else 'substr(r.last_event_at, 1, 10)')
    op.execute(_FILL.format(day=day))
    for statement in (_PG_TRIGGERS if pg else _SQLITE_TRIGGERS):
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        for table in _LEGS:
            op.execute(f'DROP TRIGGER IF EXISTS trg_{table}_version ON {table}')
        op.execute('DROP FUNCTION IF EXISTS recon_legs_changed()')
        op.execute('DROP TRIGGER IF EXISTS trg_rcov_lines ON return_lines')
        op.execute('DROP TRIGGER IF EXISTS trg_rcov_return_upd ON returns')
        op.execute('DROP TRIGGER IF EXISTS trg_rcov_return_del ON returns')
        op.execute('DROP FUNCTION IF EXISTS rcov_line_changed()')
        op.execute('DROP FUNCTION IF EXISTS rcov_return_changed()')
    else:
        for table in _LEGS:
            for event in ('insert', 'update', 'delete'):
                op.execute(f'DROP TRIGGER IF EXISTS trg_{table}_{event}_version')
        for name in ('line_ins', 'line_del', 'line_upd', 'return_upd', 'return_del'):
            op.execute(f'DROP TRIGGER IF EXISTS trg_rcov_{name}')
    op.drop_table('reconciliation_reports')
    op.drop_table('recon_legs_version')
    op.drop_index('ix_console_login_failures_at', table_name='console_login_failures')
    op.drop_index('ix_console_login_failures_key_at', table_name='console_login_failures')
    op.drop_table('console_login_failures')
    op.drop_index('ix_returns_last_event_at', table_name='returns')
    op.drop_table('reason_coverage_dirty')
    op.drop_index(op.f('ix_reason_coverage_days_day'), table_name='reason_coverage_days')
    op.drop_table('reason_coverage_days')
