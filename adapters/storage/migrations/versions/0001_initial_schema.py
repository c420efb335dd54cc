"""initial schema

Revision ID: 0001
Revises: 
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('audit',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('at', sa.Float(), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('audit', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_ticket_id'), ['ticket_id'], unique=False)

    op.create_table('chain_heads',
    sa.Column('author', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('head', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.PrimaryKeyConstraint('author')
    )
    op.create_table('conflicts',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('ticket_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('sides_json', sa.Text(), nullable=False),
    sa.Column('provisional_winner', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('resolution_event', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('detected_hlc', sqlmodel.sql.sqltypes.AutoString(length=21), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('conflicts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_conflicts_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_conflicts_ticket_id'), ['ticket_id'], unique=False)

    op.create_table('dead_letters',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('dest', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('event_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('replayed_at', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('dead_letters', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dead_letters_dest'), ['dest'], unique=False)

    op.create_table('events',
    sa.Column('pos', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('ticket', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('author', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('hlc', sqlmodel.sql.sqltypes.AutoString(length=21), nullable=False),
    sa.Column('type', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('raw', sa.Text(), nullable=False),
    sa.Column('received_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('pos'),
    sa.UniqueConstraint('author', 'seq', name='uq_events_author_seq'),
    sa.UniqueConstraint('id')
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('ix_events_ticket_hlc', ['ticket', 'hlc'], unique=False)

    op.create_table('idempotency',
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('request_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('ticket_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('inbox',
    sa.Column('origin', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('event_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('received_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('origin', 'event_id')
    )
    op.create_table('institutions',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('node_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('region', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('competences', sa.Text(), nullable=False),
    sa.Column('ppid', sa.Boolean(), nullable=False),
    sa.Column('sealing_key_id', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('sealing_public', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('wrapped_private', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('institutions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_institutions_node_id'), ['node_id'], unique=False)

    op.create_table('meta',
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('node_keys',
    sa.Column('key_id', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('node_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('public', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('valid_from', sa.Float(), nullable=False),
    sa.Column('valid_until', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('key_id')
    )
    with op.batch_alter_table('node_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_node_keys_node_id'), ['node_id'], unique=False)

    op.create_table('nodes',
    sa.Column('node_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('role', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('url', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('region', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('enrolled_at', sa.Float(), nullable=True),
    sa.Column('revoked_at', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('node_id')
    )
    op.create_table('nonces',
    sa.Column('key_id', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('nonce', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('expires_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('key_id', 'nonce')
    )
    with op.batch_alter_table('nonces', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_nonces_expires_at'), ['expires_at'], unique=False)

    op.create_table('outbox',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('dest', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('event_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('enqueued_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_dest_id', ['dest', 'id'], unique=False)

    op.create_table('peers',
    sa.Column('node_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('url', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('last_contact', sa.Float(), nullable=True),
    sa.Column('acked', sa.Integer(), nullable=False),
    sa.Column('cursor', sa.Integer(), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.Float(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=False),
    sa.Column('lease_owner', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('lease_until', sa.Float(), nullable=False),
    sa.Column('repairs', sa.Integer(), nullable=False),
    sa.Column('anti_entropy_at', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('node_id')
    )
    op.create_table('regions',
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('level', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('parent', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.PrimaryKeyConstraint('code')
    )
    op.create_table('reporter_private',
    sa.Column('ticket_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('identity_json', sa.Text(), nullable=False),
    sa.Column('original_body', sa.Text(), nullable=False),
    sa.Column('redactions', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('ticket_id')
    )
    op.create_table('tickets',
    sa.Column('ticket_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('tracking_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('origin', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('institution', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('holder_node', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('report_type', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('category', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('region', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('anonim', sa.Boolean(), nullable=False),
    sa.Column('rahasia', sa.Boolean(), nullable=False),
    sa.Column('filed_at', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('last_hlc', sqlmodel.sql.sqltypes.AutoString(length=21), nullable=False),
    sa.Column('awaiting_disposition', sa.Boolean(), nullable=False),
    sa.Column('open_conflicts', sa.Integer(), nullable=False),
    sa.Column('digest', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('state_json', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('ticket_id')
    )
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tickets_awaiting_disposition'), ['awaiting_disposition'], unique=False)
        batch_op.create_index(batch_op.f('ix_tickets_filed_at'), ['filed_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_tickets_institution'), ['institution'], unique=False)
        batch_op.create_index(batch_op.f('ix_tickets_origin'), ['origin'], unique=False)
        batch_op.create_index(batch_op.f('ix_tickets_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_tickets_tracking_id'), ['tracking_id'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tickets_tracking_id'))
        batch_op.drop_index(batch_op.f('ix_tickets_status'))
        batch_op.drop_index(batch_op.f('ix_tickets_origin'))
        batch_op.drop_index(batch_op.f('ix_tickets_institution'))
        batch_op.drop_index(batch_op.f('ix_tickets_filed_at'))
        batch_op.drop_index(batch_op.f('ix_tickets_awaiting_disposition'))

    op.drop_table('tickets')
    op.drop_table('reporter_private')
    op.drop_table('regions')
    op.drop_table('peers')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_dest_id')

    op.drop_table('outbox')
    with op.batch_alter_table('nonces', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_nonces_expires_at'))

    op.drop_table('nonces')
    op.drop_table('nodes')
    with op.batch_alter_table('node_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_node_keys_node_id'))

    op.drop_table('node_keys')
    op.drop_table('meta')
    with op.batch_alter_table('institutions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_institutions_node_id'))

    op.drop_table('institutions')
    op.drop_table('inbox')
    op.drop_table('idempotency')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_ticket_hlc')

    op.drop_table('events')
    with op.batch_alter_table('dead_letters', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dead_letters_dest'))

    op.drop_table('dead_letters')
    with op.batch_alter_table('conflicts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_conflicts_ticket_id'))
        batch_op.drop_index(batch_op.f('ix_conflicts_status'))

    op.drop_table('conflicts')
    op.drop_table('chain_heads')
    with op.batch_alter_table('audit', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_ticket_id'))

    op.drop_table('audit')

