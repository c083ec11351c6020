from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from domain.models.types import UTCDateTime, new_id, utcnow


class StateVersion(SQLModel, table=True):
    """An immutable Terraform state written to a workspace; the blob lives in storage."""

    __tablename__ = "state_version"
    __table_args__ = (UniqueConstraint("workspace_id", "serial"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    workspace_id: uuid.UUID = Field(foreign_key="workspace.id", ondelete="CASCADE", index=True)
    serial: int = Field(sa_type=BigInteger)
    lineage: str = Field(max_length=64)
    sha256: str = Field(max_length=64)
    md5: str = Field(max_length=32)
    size: int = Field(sa_type=BigInteger)
    blob_key: str = Field(max_length=1024)
    job_id: uuid.UUID | None = Field(default=None, foreign_key="job.id", ondelete="SET NULL")
    created_by: str = Field(max_length=255)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class StateOutput(SQLModel, table=True):
    """One root-module output of a state version. ``value`` is ciphertext when sensitive."""

    __tablename__ = "state_output"
    __table_args__ = (UniqueConstraint("state_version_id", "name"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    state_version_id: uuid.UUID = Field(foreign_key="state_version.id", ondelete="CASCADE", index=True)
    name: str = Field(max_length=255)
    type: Any = Field(default=None, sa_type=JSON)
    value: str = Field(default="", sa_type=Text)
    sensitive: bool = False


class StateLock(SQLModel, table=True):
    """The http backend lock of a workspace's state (at most one per workspace)."""

    __tablename__ = "state_lock"

    workspace_id: uuid.UUID = Field(foreign_key="workspace.id", ondelete="CASCADE", primary_key=True)
    lock_id: str = Field(max_length=255)
    info: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    holder: str = Field(max_length=255)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
