"""inbox: rows in arrival order, without a key on (origin, event id)

An inbox row says who delivered an event stored here. Its primary key, (origin,
event id), put every row at a random place of a B-tree, since event ids are
hashes: a receive of 1,000 events dirtied a page of that index for most of its
events, and each was written to the log at the commit and copied again by the
checkpoint. In an in-process replay of a 100,000-event backlog into a hub, its
database thread spent a seventh less time per event without the key
(scripts/PERFORMANCE.md). The key kept nothing out: a row is written only for
an event stored fresh, which the events table's unique id decides once. The
rows now take an id in arrival order.

Revision ID: 0005
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def _columns(with_id: bool) -> list:
    cols = [sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True,
                      nullable=False)] if with_id else []
    return cols + [sa.Column('origin', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
                   sa.Column('event_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
                   sa.Column('received_at', sa.Float(), nullable=False)]


def _move(with_id: bool, copy: str) -> None:
    key = sa.PrimaryKeyConstraint('id') if with_id else sa.PrimaryKeyConstraint('origin', 'event_id')
    op.create_table('inbox_moving', *_columns(with_id), key)
    op.execute(copy)
    op.drop_table('inbox')
    op.rename_table('inbox_moving', 'inbox')


def upgrade() -> None:
    _move(True, "INSERT INTO inbox_moving (origin, event_id, received_at) "
                "SELECT origin, event_id, received_at FROM inbox ORDER BY received_at")


def downgrade() -> None:
    _move(False, "INSERT INTO inbox_moving (origin, event_id, received_at) "
                 "SELECT origin, event_id, min(received_at) FROM inbox GROUP BY origin, event_id")
