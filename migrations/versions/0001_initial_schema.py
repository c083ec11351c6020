"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-26 07:15:39.495801
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table('access_token',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('description', sa.String(length=1024), nullable=False),
    sa.Column('owner', sa.String(length=255), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('email', sa.String(length=255), nullable=True),
    sa.Column('groups', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_access_token'))
    )
    with op.batch_alter_table('access_token', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_access_token_owner'), ['owner'], unique=False)

    op.create_table('organization',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=90), nullable=False),
    sa.Column('description', sa.String(length=1024), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_organization')),
    sa.UniqueConstraint('name', name=op.f('uq_organization_name'))
    )
    op.create_table('module',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('organization_id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('provider', sa.String(length=64), nullable=False),
    sa.Column('description', sa.String(length=1024), nullable=False),
    sa.Column('source', sa.String(length=2048), nullable=False),
    sa.Column('folder', sa.String(length=1024), nullable=False),
    sa.Column('tag_prefix', sa.String(length=64), nullable=False),
    sa.Column('download_count', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], name=op.f('fk_module_organization_id_organization'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_module')),
    sa.UniqueConstraint('organization_id', 'name', 'provider', name=op.f('uq_module_organization_id_name_provider'))
    )
    with op.batch_alter_table('module', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_module_organization_id'), ['organization_id'], unique=False)

    op.create_table('provider',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('organization_id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('description', sa.String(length=1024), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], name=op.f('fk_provider_organization_id_organization'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_provider')),
    sa.UniqueConstraint('organization_id', 'name', name=op.f('uq_provider_organization_id_name'))
    )
    with op.batch_alter_table('provider', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_provider_organization_id'), ['organization_id'], unique=False)

    op.create_table('signing_key',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('organization_id', sa.Uuid(), nullable=False),
    sa.Column('key_id', sa.String(length=64), nullable=False),
    sa.Column('ascii_armor', sa.Text(), nullable=False),
    sa.Column('private_key', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], name=op.f('fk_signing_key_organization_id_organization'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_signing_key')),
    sa.UniqueConstraint('organization_id', name=op.f('uq_signing_key_organization_id'))
    )
    op.create_table('team',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('organization_id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('manage_workspace', sa.Boolean(), nullable=False),
    sa.Column('manage_state', sa.Boolean(), nullable=False),
    sa.Column('manage_module', sa.Boolean(), nullable=False),
    sa.Column('manage_provider', sa.Boolean(), nullable=False),
    sa.Column('manage_vcs', sa.Boolean(), nullable=False),
    sa.Column('manage_template', sa.Boolean(), nullable=False),
    sa.Column('plan_job', sa.Boolean(), nullable=False),
    sa.Column('approve_job', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], name=op.f('fk_team_organization_id_organization'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_team')),
    sa.UniqueConstraint('organization_id', 'name', name=op.f('uq_team_organization_id_name'))
    )
    with op.batch_alter_table('team', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_team_organization_id'), ['organization_id'], unique=False)

    op.create_table('template',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('organization_id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('description', sa.String(length=1024), nullable=False),
    sa.Column('tcl', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], name=op.f('fk_template_organization_id_organization'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_template')),
    sa.UniqueConstraint('organization_id', 'name', name=op.f('uq_template_organization_id_name'))
    )
    with op.batch_alter_table('template', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_template_organization_id'), ['organization_id'], unique=False)

    op.create_table('workspace',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('organization_id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=90), nullable=False),
    sa.Column('description', sa.String(length=1024), nullable=False),
    sa.Column('source', sa.String(length=2048), nullable=True),
    sa.Column('branch', sa.String(length=255), nullable=False),
    sa.Column('folder', sa.String(length=1024), nullable=False),
    sa.Column('terraform_version', sa.String(length=32), nullable=False),
    sa.Column('execution_mode', sa.String(length=16), nullable=False),
    sa.Column('locked', sa.Boolean(), nullable=False),
    sa.Column('lock_reason', sa.String(length=1024), nullable=True),
    sa.Column('locked_by', sa.String(length=255), nullable=True),
    sa.Column('locked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], name=op.f('fk_workspace_organization_id_organization'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_workspace')),
    sa.UniqueConstraint('organization_id', 'name', name=op.f('uq_workspace_organization_id_name'))
    )
    with op.batch_alter_table('workspace', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_workspace_organization_id'), ['organization_id'], unique=False)

    op.create_table('job',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('organization_id', sa.Uuid(), nullable=False),
    sa.Column('workspace_id', sa.Uuid(), nullable=False),
    sa.Column('template_id', sa.Uuid(), nullable=True),
    sa.Column('tcl', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('via', sa.String(length=32), nullable=False),
    sa.Column('created_by', sa.String(length=255), nullable=False),
    sa.Column('override_branch', sa.String(length=255), nullable=True),
    sa.Column('targets', sa.JSON(), nullable=False),
    sa.Column('replaces', sa.JSON(), nullable=False),
    sa.Column('auto_apply', sa.Boolean(), nullable=False),
    sa.Column('plan_only', sa.Boolean(), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('commit_id', sa.String(length=64), nullable=True),
    sa.Column('plan_changes', sa.Boolean(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], name=op.f('fk_job_organization_id_organization'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['template_id'], ['template.id'], name=op.f('fk_job_template_id_template'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], name=op.f('fk_job_workspace_id_workspace'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_job'))
    )
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_job_organization_id'), ['organization_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_job_status'), ['status'], unique=False)
        batch_op.create_index('ix_job_workspace_created', ['workspace_id', 'created_at'], unique=False)

    op.create_table('module_version',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('module_id', sa.Uuid(), nullable=False),
    sa.Column('version', sa.String(length=64), nullable=False),
    sa.Column('tag', sa.String(length=255), nullable=False),
    sa.Column('commit', sa.String(length=64), nullable=False),
    sa.Column('readme', sa.Text(), nullable=True),
    sa.Column('archive_key', sa.String(length=1024), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['module_id'], ['module.id'], name=op.f('fk_module_version_module_id_module'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_module_version')),
    sa.UniqueConstraint('module_id', 'version', name=op.f('uq_module_version_module_id_version'))
    )
    with op.batch_alter_table('module_version', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_module_version_module_id'), ['module_id'], unique=False)

    op.create_table('provider_version',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('provider_id', sa.Uuid(), nullable=False),
    sa.Column('version', sa.String(length=64), nullable=False),
    sa.Column('protocols', sa.JSON(), nullable=False),
    sa.Column('shasums_key', sa.String(length=1024), nullable=True),
    sa.Column('signature_key', sa.String(length=1024), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['provider_id'], ['provider.id'], name=op.f('fk_provider_version_provider_id_provider'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_provider_version')),
    sa.UniqueConstraint('provider_id', 'version', name=op.f('uq_provider_version_provider_id_version'))
    )
    with op.batch_alter_table('provider_version', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_provider_version_provider_id'), ['provider_id'], unique=False)

    op.create_table('schedule',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('workspace_id', sa.Uuid(), nullable=False),
    sa.Column('template_id', sa.Uuid(), nullable=False),
    sa.Column('cron', sa.String(length=128), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('description', sa.String(length=1024), nullable=False),
    sa.Column('next_run_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_run_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['template_id'], ['template.id'], name=op.f('fk_schedule_template_id_template'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], name=op.f('fk_schedule_workspace_id_workspace'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_schedule'))
    )
    with op.batch_alter_table('schedule', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_schedule_next_run_at'), ['next_run_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_schedule_workspace_id'), ['workspace_id'], unique=False)

    op.create_table('configuration_version',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('workspace_id', sa.Uuid(), nullable=False),
    sa.Column('blob_key', sa.String(length=1024), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('created_by', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], name=op.f('fk_configuration_version_workspace_id_workspace'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_configuration_version'))
    )
    with op.batch_alter_table('configuration_version', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_configuration_version_workspace_id'), ['workspace_id'], unique=False)

    op.create_table('state_lock',
    sa.Column('workspace_id', sa.Uuid(), nullable=False),
    sa.Column('lock_id', sa.String(length=255), nullable=False),
    sa.Column('info', sa.JSON(), nullable=False),
    sa.Column('holder', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], name=op.f('fk_state_lock_workspace_id_workspace'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('workspace_id', name=op.f('pk_state_lock'))
    )
    op.create_table('variable',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('workspace_id', sa.Uuid(), nullable=False),
    sa.Column('key', sa.String(length=128), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('category', sa.String(length=16), nullable=False),
    sa.Column('sensitive', sa.Boolean(), nullable=False),
    sa.Column('hcl', sa.Boolean(), nullable=False),
    sa.Column('description', sa.String(length=1024), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], name=op.f('fk_variable_workspace_id_workspace'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_variable')),
    sa.UniqueConstraint('workspace_id', 'category', 'key', name=op.f('uq_variable_workspace_id_category_key'))
    )
    with op.batch_alter_table('variable', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_variable_workspace_id'), ['workspace_id'], unique=False)

    op.create_table('provider_platform',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('provider_version_id', sa.Uuid(), nullable=False),
    sa.Column('os', sa.String(length=32), nullable=False),
    sa.Column('arch', sa.String(length=32), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('shasum', sa.String(length=64), nullable=False),
    sa.Column('blob_key', sa.String(length=1024), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['provider_version_id'], ['provider_version.id'], name=op.f('fk_provider_platform_provider_version_id_provider_version'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_provider_platform')),
    sa.UniqueConstraint('provider_version_id', 'os', 'arch', name=op.f('uq_provider_platform_provider_version_id_os_arch'))
    )
    with op.batch_alter_table('provider_platform', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_provider_platform_provider_version_id'), ['provider_version_id'], unique=False)

    op.create_table('state_version',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('workspace_id', sa.Uuid(), nullable=False),
    sa.Column('serial', sa.BigInteger(), nullable=False),
    sa.Column('lineage', sa.String(length=64), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('md5', sa.String(length=32), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('blob_key', sa.String(length=1024), nullable=False),
    sa.Column('job_id', sa.Uuid(), nullable=True),
    sa.Column('created_by', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['job.id'], name=op.f('fk_state_version_job_id_job'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], name=op.f('fk_state_version_workspace_id_workspace'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_state_version')),
    sa.UniqueConstraint('workspace_id', 'serial', name=op.f('uq_state_version_workspace_id_serial'))
    )
    with op.batch_alter_table('state_version', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_state_version_workspace_id'), ['workspace_id'], unique=False)

    op.create_table('step',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('job_id', sa.Uuid(), nullable=False),
    sa.Column('step_number', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('type', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('team', sa.String(length=255), nullable=True),
    sa.Column('definition', sa.JSON(), nullable=False),
    sa.Column('log_key', sa.String(length=1024), nullable=True),
    sa.Column('plan_key', sa.String(length=1024), nullable=True),
    sa.Column('worker_id', sa.String(length=255), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['job_id'], ['job.id'], name=op.f('fk_step_job_id_job'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_step')),
    sa.UniqueConstraint('job_id', 'step_number', name=op.f('uq_step_job_id_step_number'))
    )
    with op.batch_alter_table('step', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_step_job_id'), ['job_id'], unique=False)

    op.create_table('state_output',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('state_version_id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('type', sa.JSON(), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('sensitive', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['state_version_id'], ['state_version.id'], name=op.f('fk_state_output_state_version_id_state_version'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_state_output')),
    sa.UniqueConstraint('state_version_id', 'name', name=op.f('uq_state_output_state_version_id_name'))
    )
    with op.batch_alter_table('state_output', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_state_output_state_version_id'), ['state_version_id'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('state_output', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_state_output_state_version_id'))

    op.drop_table('state_output')
    with op.batch_alter_table('step', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_step_job_id'))

    op.drop_table('step')
    with op.batch_alter_table('state_version', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_state_version_workspace_id'))

    op.drop_table('state_version')
    with op.batch_alter_table('provider_platform', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_provider_platform_provider_version_id'))

    op.drop_table('provider_platform')
    with op.batch_alter_table('variable', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_variable_workspace_id'))

    op.drop_table('variable')
    with op.batch_alter_table('configuration_version', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_configuration_version_workspace_id'))

    op.drop_table('configuration_version')
    op.drop_table('state_lock')
    with op.batch_alter_table('schedule', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_schedule_workspace_id'))
        batch_op.drop_index(batch_op.f('ix_schedule_next_run_at'))

    op.drop_table('schedule')
    with op.batch_alter_table('provider_version', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_provider_version_provider_id'))

    op.drop_table('provider_version')
    with op.batch_alter_table('module_version', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_module_version_module_id'))

    op.drop_table('module_version')
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.drop_index('ix_job_workspace_created')
        batch_op.drop_index(batch_op.f('ix_job_status'))
        batch_op.drop_index(batch_op.f('ix_job_organization_id'))

    op.drop_table('job')
    with op.batch_alter_table('workspace', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_workspace_organization_id'))

    op.drop_table('workspace')
    with op.batch_alter_table('template', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_template_organization_id'))

    op.drop_table('template')
    with op.batch_alter_table('team', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_team_organization_id'))

    op.drop_table('team')
    op.drop_table('signing_key')
    with op.batch_alter_table('provider', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_provider_organization_id'))

    op.drop_table('provider')
    with op.batch_alter_table('module', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_module_organization_id'))

    op.drop_table('module')
    op.drop_table('organization')
    with op.batch_alter_table('access_token', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_access_token_owner'))

    op.drop_table('access_token')

