"""team access tokens: access_token.team_id

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 10:15:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('access_token', schema=None) as batch_op:
        batch_op.add_column(sa.Column('team_id', sa.Uuid(), nullable=True))
        batch_op.create_index(batch_op.f('ix_access_token_team_id'), ['team_id'], unique=False)
        batch_op.create_foreign_key(
            batch_op.f('fk_access_token_team_id_team'), 'team', ['team_id'], ['id'], ondelete='CASCADE'
        )


def downgrade() -> None:
    with op.batch_alter_table('access_token', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_access_token_team_id_team'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_access_token_team_id'))
        batch_op.drop_column('team_id')
