"""outbox: ids never reused on SQLite

A queue position is an outbox id, and a peer acknowledges positions: everything
up to its ``acked`` is delivered. SQLite gave a new row the largest id in the
table plus one, so once the pruning job had removed every delivered row (a
district quiet for the retention, a week), the next event took a position its
hub had acknowledged already and was never sent. With AUTOINCREMENT, SQLite
remembers the largest id ever used (``sqlite_sequence``); it starts here past
every peer's acknowledgement, in case rows were pruned already. PostgreSQL's
sequence never went back.

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def _recreate(autoincrement: bool) -> None:
    with op.batch_alter_table('outbox', recreate='always', table_kwargs={'sqlite_autoincrement': autoincrement}):
        pass


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != 'sqlite':
        return
    _recreate(True)
    floor = bind.execute(sa.text("SELECT max(coalesce((SELECT max(id) FROM outbox), 0), "
                                 "coalesce((SELECT max(acked) FROM peers), 0))")).scalar()
    bind.execute(sa.text("DELETE FROM sqlite_sequence WHERE name = 'outbox'"))
    bind.execute(sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES ('outbox', :floor)"), {"floor": floor})


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        _recreate(False)
