from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from domain.models.types import UTCDateTime, new_id, utcnow


class Module(SQLModel, table=True):
    __tablename__ = "module"
    __table_args__ = (UniqueConstraint("organization_id", "name", "provider"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    organization_id: uuid.UUID = Field(foreign_key="organization.id", ondelete="CASCADE", index=True)
    name: str = Field(max_length=64)
    provider: str = Field(max_length=64)
    description: str = Field(default="", max_length=1024)
    source: str = Field(max_length=2048)
    folder: str = Field(default="/", max_length=1024)
    tag_prefix: str = Field(default="", max_length=64)
    download_count: int = 0
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ModuleVersion(SQLModel, table=True):
    __tablename__ = "module_version"
    __table_args__ = (UniqueConstraint("module_id", "version"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    module_id: uuid.UUID = Field(foreign_key="module.id", ondelete="CASCADE", index=True)
    version: str = Field(max_length=64)
    tag: str = Field(max_length=255)
    commit: str = Field(max_length=64)
    readme: str | None = Field(default=None, sa_type=Text)
    archive_key: str | None = Field(default=None, max_length=1024)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Provider(SQLModel, table=True):
    __tablename__ = "provider"
    __table_args__ = (UniqueConstraint("organization_id", "name"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    organization_id: uuid.UUID = Field(foreign_key="organization.id", ondelete="CASCADE", index=True)
    name: str = Field(max_length=64)
    description: str = Field(default="", max_length=1024)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ProviderVersion(SQLModel, table=True):
    __tablename__ = "provider_version"
    __table_args__ = (UniqueConstraint("provider_id", "version"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    provider_id: uuid.UUID = Field(foreign_key="provider.id", ondelete="CASCADE", index=True)
    version: str = Field(max_length=64)
    protocols: list[str] = Field(default_factory=list, sa_type=JSON)
    shasums_key: str | None = Field(default=None, max_length=1024)
    signature_key: str | None = Field(default=None, max_length=1024)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ProviderPlatform(SQLModel, table=True):
    __tablename__ = "provider_platform"
    __table_args__ = (UniqueConstraint("provider_version_id", "os", "arch"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    provider_version_id: uuid.UUID = Field(
        foreign_key="provider_version.id", ondelete="CASCADE", index=True
    )
    os: str = Field(max_length=32)
    arch: str = Field(max_length=32)
    filename: str = Field(max_length=255)
    shasum: str = Field(max_length=64)
    blob_key: str = Field(max_length=1024)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class SigningKey(SQLModel, table=True):
    """An organization's GPG key for provider releases; the private half is ciphertext."""

    __tablename__ = "signing_key"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    organization_id: uuid.UUID = Field(
        foreign_key="organization.id", ondelete="CASCADE", unique=True
    )
    key_id: str = Field(max_length=64)
    ascii_armor: str = Field(sa_type=Text)
    private_key: str = Field(sa_type=Text)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
