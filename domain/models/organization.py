from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from domain.models.types import UTCDateTime, new_id, utcnow


class Organization(SQLModel, table=True):
    __tablename__ = "organization"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    name: str = Field(max_length=90, unique=True)
    description: str = Field(default="", max_length=1024)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Team(SQLModel, table=True):
    """An identity-provider group's permissions in one organization."""

    __tablename__ = "team"
    __table_args__ = (UniqueConstraint("organization_id", "name"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    organization_id: uuid.UUID = Field(foreign_key="organization.id", ondelete="CASCADE", index=True)
    name: str = Field(max_length=255)
    role: str = Field(max_length=16)
    manage_workspace: bool = False
    manage_state: bool = False
    manage_module: bool = False
    manage_provider: bool = False
    manage_vcs: bool = False
    manage_template: bool = False
    plan_job: bool = False
    approve_job: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
