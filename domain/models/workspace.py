from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from domain.models.types import UTCDateTime, new_id, utcnow


class Workspace(SQLModel, table=True):
    __tablename__ = "workspace"
    __table_args__ = (UniqueConstraint("organization_id", "name"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    organization_id: uuid.UUID = Field(foreign_key="organization.id", ondelete="CASCADE", index=True)
    name: str = Field(max_length=90)
    description: str = Field(default="", max_length=1024)
    source: str | None = Field(default=None, max_length=2048)
    branch: str = Field(default="main", max_length=255)
    folder: str = Field(default="/", max_length=1024)
    terraform_version: str = Field(max_length=32)
    execution_mode: str = Field(default="remote", max_length=16)
    locked: bool = False
    lock_reason: str | None = Field(default=None, max_length=1024)
    locked_by: str | None = Field(default=None, max_length=255)
    locked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Variable(SQLModel, table=True):
    """A workspace variable. ``value`` holds ciphertext when ``sensitive`` is true."""

    __tablename__ = "variable"
    __table_args__ = (UniqueConstraint("workspace_id", "category", "key"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    workspace_id: uuid.UUID = Field(foreign_key="workspace.id", ondelete="CASCADE", index=True)
    key: str = Field(max_length=128)
    value: str = Field(default="", sa_type=Text)
    category: str = Field(max_length=16)
    sensitive: bool = False
    hcl: bool = False
    description: str = Field(default="", max_length=1024)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ConfigurationVersion(SQLModel, table=True):
    """An uploaded tarball of Terraform code, for workspaces without a git source."""

    __tablename__ = "configuration_version"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    workspace_id: uuid.UUID = Field(foreign_key="workspace.id", ondelete="CASCADE", index=True)
    blob_key: str = Field(max_length=1024)
    size: int
    sha256: str = Field(max_length=64)
    created_by: str = Field(max_length=255)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
