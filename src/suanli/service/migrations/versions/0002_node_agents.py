"""node agents: agent-managed nodes (last heartbeat, probed facts) and observed launch states

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 19:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('nodes', schema=None) as b:
        b.add_column(sa.Column('agent', sa.Boolean(), nullable=False,
                               server_default=sa.false()))
        b.add_column(sa.Column('tenant_id', sa.Integer(), nullable=True))
        b.add_column(sa.Column('hostname', sa.String(length=200), nullable=True))
        b.add_column(sa.Column('executor', sa.String(length=50), nullable=True))
        b.add_column(sa.Column('memory_mib', sa.Float(), nullable=True))
        b.add_column(sa.Column('driver_version', sa.String(length=100), nullable=True))
        b.add_column(sa.Column('stack_version', sa.String(length=100), nullable=True))
        b.add_column(sa.Column('device_indices', sa.JSON(), nullable=True))
        b.add_column(sa.Column('last_seen', sa.DateTime(timezone=True), nullable=True))
        b.create_index('ix_nodes_agent_state', ['agent', 'state'], unique=False)
    with op.batch_alter_table('allocations', schema=None) as b:
        b.add_column(sa.Column('observed_state', sa.String(length=20), nullable=True))
        b.add_column(sa.Column('observed_exit_code', sa.Integer(), nullable=True))
        b.add_column(sa.Column('observed_message', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('allocations', schema=None) as b:
        b.drop_column('observed_message')
        b.drop_column('observed_exit_code')
        b.drop_column('observed_state')
    with op.batch_alter_table('nodes', schema=None) as b:
        b.drop_index('ix_nodes_agent_state')
        for c in ('last_seen', 'device_indices', 'stack_version', 'driver_version',
                  'memory_mib', 'executor', 'hostname', 'tenant_id', 'agent'):
            b.drop_column(c)
