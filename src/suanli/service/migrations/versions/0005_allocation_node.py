"""allocations.node: the allocation's first (head) node as a plain indexed column, so that an
agent's heartbeat, its re-registration and the agent executor's view read only the active
allocations of the nodes they are about (index ``(node, active)``), not every active
allocation of the cluster (``nodes`` is a JSON list and cannot be indexed portably).

Active allocations are backfilled from ``nodes[0]``; ended ones keep NULL (nothing reads
them by node).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 00:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('allocations', schema=None) as b:
        b.add_column(sa.Column('node', sa.String(length=200), nullable=True))
        b.create_index('ix_allocations_node_active', ['node', 'active'], unique=False)
    head = ("nodes ->> 0" if op.get_bind().dialect.name == "postgresql"
            else "json_extract(nodes, '$[0]')")
    op.execute(f"UPDATE allocations SET node = {head} WHERE active")


def downgrade() -> None:
    with op.batch_alter_table('allocations', schema=None) as b:
        b.drop_index('ix_allocations_node_active')
        b.drop_column('node')
