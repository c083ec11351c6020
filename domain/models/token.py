from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON
from sqlmodel import Field, SQLModel

from domain.models.types import UTCDateTime, new_id, utcnow


class AccessToken(SQLModel, table=True):
    """A platform-issued token; ``id`` is the JWT's ``jti``. The secret itself is never stored.

    ``kind``: ``personal`` (acts as its creator, with the creator's groups), ``admin`` (the
    installation's first token) or ``team`` (acts as ``team_id``, in that team's organization only;
    deleted with the team)."""

    __tablename__ = "access_token"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    kind: str = Field(default="personal", max_length=16)
    description: str = Field(default="", max_length=1024)
    # ``owner`` is the creator's stable subject; ``name`` how the creator is shown.
    owner: str = Field(max_length=255, index=True)
    name: str = Field(default="", max_length=255)
    email: str | None = Field(default=None, max_length=255)
    groups: list[str] = Field(default_factory=list, sa_type=JSON)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    team_id: uuid.UUID | None = Field(default=None, foreign_key="team.id", ondelete="CASCADE", index=True)
