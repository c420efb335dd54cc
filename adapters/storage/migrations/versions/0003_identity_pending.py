"""identity_pending: one row per ticket whose identity waits for a sealing key

The origin node remembers the tickets whose reporter identity it could not
seal yet (the holder's sealing key is unknown) and retries them after each
directory refresh (node.identity). They were one JSON array in the meta row
``identity:pending``, read, parsed and rewritten whole for every ticket
checked: quadratic in the number waiting, all in one write transaction. With
a row each, noting or clearing a ticket is a one-row statement and the retry
reads a page at a time. The array, if any, moves into the table.

Revision ID: 0003
Revises: 0002
"""
import json

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

OLD_KEY = 'identity:pending'
meta = sa.table('meta', sa.column('key', sa.String()), sa.column('value', sa.Text()))


def upgrade() -> None:
    pending = op.create_table('identity_pending',
    sa.Column('ticket_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.PrimaryKeyConstraint('ticket_id')
    )
    bind = op.get_bind()
    raw = bind.execute(sa.select(meta.c.value).where(meta.c.key == OLD_KEY)).scalar()
    if raw is None:
        return
    try:
        ids = json.loads(raw)
    except ValueError as exc:
        raise RuntimeError(f"meta row {OLD_KEY!r} is not JSON ({exc}); fix or delete it, then migrate again") \
            from None
    if not isinstance(ids, list) or not all(isinstance(t, str) for t in ids):
        raise RuntimeError(f"meta row {OLD_KEY!r} is not a list of ticket ids; fix or delete it, then migrate again")
    if ids:
        op.bulk_insert(pending, [{'ticket_id': t} for t in sorted(set(ids))])
    bind.execute(meta.delete().where(meta.c.key == OLD_KEY))


def downgrade() -> None:
    pending = sa.table('identity_pending', sa.column('ticket_id', sa.String()))
    bind = op.get_bind()
    ids = sorted(bind.execute(sa.select(pending.c.ticket_id)).scalars())
    bind.execute(meta.delete().where(meta.c.key == OLD_KEY))
    if ids:
        bind.execute(meta.insert().values(key=OLD_KEY, value=json.dumps(ids)))
    op.drop_table('identity_pending')
