"""ddas exports made by the scheduler

Revision ID: 5c1cc5cb43aa
Revises: 8a8251dbfd85
Create Date: 2026-12-07 18:53:53.763430
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '5c1cc5cb43aa'
down_revision: str | None = '8a8251dbfd85'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('ddas_exports',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('requested_by_id', sa.Integer(), nullable=False),
    sa.Column('gemeenten', sa.Text(), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.Column('period_end', sa.Date(), nullable=False),
    sa.Column('status', sa.Enum('queued', 'running', 'ready', 'refused', 'failed', 'removed', name='exportstatus', native_enum=False, length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('signals_total', sa.Integer(), nullable=True),
    sa.Column('signals_done', sa.Integer(), nullable=False),
    sa.Column('violations', sa.JSON(), nullable=True),
    sa.Column('error', sa.String(length=120), nullable=True),
    sa.Column('delivery_id', sa.Integer(), nullable=True),
    sa.Column('size', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('downloads', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['delivery_id'], ['ddas_deliveries.id'], name=op.f('fk_ddas_exports_delivery_id_ddas_deliveries')),
    sa.ForeignKeyConstraint(['requested_by_id'], ['users.id'], name=op.f('fk_ddas_exports_requested_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ddas_exports'))
    )
    with op.batch_alter_table('ddas_exports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ddas_exports_status'), ['status', 'requested_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('ddas_exports', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ddas_exports_status'))

    op.drop_table('ddas_exports')
