from __future__ import annotations

import uuid
from datetime import datetime

from sqlmodel import Field, SQLModel

from domain.models.types import UTCDateTime, new_id, utcnow


class Schedule(SQLModel, table=True):
    """Runs a template on a workspace on a cron expression."""

    __tablename__ = "schedule"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    workspace_id: uuid.UUID = Field(foreign_key="workspace.id", ondelete="CASCADE", index=True)
    template_id: uuid.UUID = Field(foreign_key="template.id", ondelete="CASCADE")
    cron: str = Field(max_length=128)
    enabled: bool = True
    description: str = Field(default="", max_length=1024)
    next_run_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    last_run_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
