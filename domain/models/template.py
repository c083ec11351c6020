from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from domain.models.types import UTCDateTime, new_id, utcnow


class Template(SQLModel, table=True):
    """A named flow written in TCL; jobs snapshot ``tcl`` when they are created."""

    __tablename__ = "template"
    __table_args__ = (UniqueConstraint("organization_id", "name"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    organization_id: uuid.UUID = Field(foreign_key="organization.id", ondelete="CASCADE", index=True)
    name: str = Field(max_length=128)
    description: str = Field(default="", max_length=1024)
    tcl: str = Field(sa_type=Text)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
