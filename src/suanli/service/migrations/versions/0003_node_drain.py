"""node drain: the operator's wish (``drain``), when a node's state last changed, and an index
so that lost-node detection reads only the nodes whose heartbeat deadline passed

Node states after this revision: ``ready``, ``draining`` (no new work; what runs there
finishes), ``drained`` (nothing runs there any more), ``lost`` (an agent missed its
heartbeats).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 23:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('nodes', schema=None) as b:
        b.add_column(sa.Column('drain', sa.Boolean(), nullable=False,
                               server_default=sa.false()))
        b.add_column(sa.Column('state_changed_at', sa.DateTime(timezone=True), nullable=True))
        b.drop_index('ix_nodes_agent_state')
        b.create_index('ix_nodes_agent_state_seen', ['agent', 'state', 'last_seen'],
                       unique=False)
        b.create_index('ix_nodes_state_changed_at', ['state_changed_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('nodes', schema=None) as b:
        b.drop_index('ix_nodes_state_changed_at')
        b.drop_index('ix_nodes_agent_state_seen')
        b.create_index('ix_nodes_agent_state', ['agent', 'state'], unique=False)
        b.drop_column('state_changed_at')
        b.drop_column('drain')
