"""outbox: index by (dest, event_id)

The hub asks, each time a ticket gets a new holder, which of the ticket's
events are already queued for that holder (SyncRepo.queued_for). Without this
index that question scans every outbox row of the destination.

Revision ID: 0002
Revises: 0001
"""
from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_dest_event', ['dest', 'event_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_dest_event')
