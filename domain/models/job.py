from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from domain.models.types import UTCDateTime, new_id, utcnow


class Job(SQLModel, table=True):
    """One run of a template's flow on a workspace (statuses: see DESIGN.md §3)."""

    __tablename__ = "job"
    __table_args__ = (Index("ix_job_workspace_created", "workspace_id", "created_at"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    organization_id: uuid.UUID = Field(foreign_key="organization.id", ondelete="CASCADE", index=True)
    workspace_id: uuid.UUID = Field(foreign_key="workspace.id", ondelete="CASCADE")
    template_id: uuid.UUID | None = Field(default=None, foreign_key="template.id", ondelete="SET NULL")
    tcl: str = Field(sa_type=Text)
    status: str = Field(default="pending", max_length=32, index=True)
    via: str = Field(default="API", max_length=32)
    created_by: str = Field(max_length=255)
    override_branch: str | None = Field(default=None, max_length=255)
    targets: list[str] = Field(default_factory=list, sa_type=JSON)
    replaces: list[str] = Field(default_factory=list, sa_type=JSON)
    auto_apply: bool = False
    # Plan-only flows (no apply, destroy, approval...) may run beside other jobs of the workspace.
    plan_only: bool = False
    # Bumped by every transition: "advance job N at revision R" is a deterministic queue job id.
    revision: int = 0
    commit_id: str | None = Field(default=None, max_length=64)
    plan_changes: bool | None = None
    reason: str | None = Field(default=None, sa_type=Text)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Step(SQLModel, table=True):
    """One entry of a job's flow; steps run in ascending ``step_number``."""

    __tablename__ = "step"
    __table_args__ = (UniqueConstraint("job_id", "step_number"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    job_id: uuid.UUID = Field(foreign_key="job.id", ondelete="CASCADE", index=True)
    step_number: int
    name: str = Field(default="", max_length=255)
    type: str = Field(max_length=32)
    status: str = Field(default="pending", max_length=32)
    team: str | None = Field(default=None, max_length=255)
    definition: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    log_key: str | None = Field(default=None, max_length=1024)
    plan_key: str | None = Field(default=None, max_length=1024)
    worker_id: str | None = Field(default=None, max_length=255)
    heartbeat_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    attempt: int = 0
    reason: str | None = Field(default=None, sa_type=Text)
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
