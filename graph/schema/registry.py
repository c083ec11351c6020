"""The private registry in GraphQL: modules, providers, signing keys (merged into Query and
Mutation in the assembly; `Organization.modules/providers/signingKey` use these types)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from domain.models import Module as ModuleRow
from domain.models import ModuleVersion as ModuleVersionRow
from domain.models import Provider as ProviderRow
from domain.models import ProviderPlatform as ProviderPlatformRow
from domain.models import ProviderVersion as ProviderVersionRow
from domain.models import SigningKey as SigningKeyRow
from domain.services.modules import ModuleCreate, ModuleUpdate, latest_version
from domain.services.providers import ProviderCreate, ProviderUpdate
from graph.resolvers import registry as resolvers
from graph.resolvers.context import Context
from graph.schema import inputs as i
from graph.schema.errors import (
    ConflictError,
    Deleted,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
    payload,
)

Info = strawberry.Info[Context, None]


# -- modules -------------------------------------------------------------------------------


@strawberry.type(description="One published version of a module: a semver tag of its repository.")
class ModuleVersion:
    id: strawberry.ID
    version: str
    tag: str
    commit: str
    created_at: datetime
    row: strawberry.Private[ModuleVersionRow]

    @strawberry.field(description="The README of the module's folder at this version, if it has one.")
    def readme(self) -> str | None:
        return self.row.readme

    @classmethod
    def from_row(cls, row: ModuleVersionRow) -> ModuleVersion:
        return cls(
            id=strawberry.ID(str(row.id)), version=row.version, tag=row.tag, commit=row.commit,
            created_at=row.created_at, row=row,
        )


@strawberry.type(description="A private module, `HOST/{organization}/{name}/{provider}` in terraform code.")
class Module:
    id: strawberry.ID
    organization_id: strawberry.ID
    name: str
    provider: str
    description: str
    source: str
    folder: str
    tag_prefix: str
    download_count: int
    created_at: datetime
    updated_at: datetime = strawberry.field(description="The last change, or the last look at the repository.")
    row: strawberry.Private[ModuleRow]

    @strawberry.field(description="Published versions, highest first.")
    async def versions(self, info: Info) -> list[ModuleVersion]:
        return [ModuleVersion.from_row(v) for v in await info.context.loaders.module_versions.load(self.row.id)]

    @strawberry.field(description="The highest version that is not a pre-release (else the highest).")
    async def latest_version(self, info: Info) -> str | None:
        return latest_version(await info.context.loaders.module_versions.load(self.row.id))

    @classmethod
    def from_row(cls, row: ModuleRow) -> Module:
        return cls(
            id=strawberry.ID(str(row.id)),
            organization_id=strawberry.ID(str(row.organization_id)),
            name=row.name,
            provider=row.provider,
            description=row.description,
            source=row.source,
            folder=row.folder,
            tag_prefix=row.tag_prefix,
            download_count=row.download_count,
            created_at=row.created_at,
            updated_at=row.updated_at,
            row=row,
        )


# -- providers -----------------------------------------------------------------------------


@strawberry.type(description="One os/arch build of a provider version.")
class ProviderPlatform:
    os: str
    arch: str
    filename: str
    shasum: str
    created_at: datetime

    @classmethod
    def from_row(cls, row: ProviderPlatformRow) -> ProviderPlatform:
        return cls(os=row.os, arch=row.arch, filename=row.filename, shasum=row.shasum, created_at=row.created_at)


@strawberry.type
class ProviderVersion:
    id: strawberry.ID
    version: str
    protocols: list[str]
    created_at: datetime
    row: strawberry.Private[ProviderVersionRow]

    @strawberry.field
    async def platforms(self, info: Info) -> list[ProviderPlatform]:
        return [ProviderPlatform.from_row(p) for p in await info.context.loaders.provider_platforms.load(self.row.id)]

    @classmethod
    def from_row(cls, row: ProviderVersionRow) -> ProviderVersion:
        return cls(
            id=strawberry.ID(str(row.id)), version=row.version, protocols=list(row.protocols),
            created_at=row.created_at, row=row,
        )


@strawberry.type(description="A private provider, `HOST/{organization}/{name}` in terraform code.")
class Provider:
    id: strawberry.ID
    organization_id: strawberry.ID
    name: str
    description: str
    created_at: datetime
    updated_at: datetime
    row: strawberry.Private[ProviderRow]

    @strawberry.field(description="Published versions, highest first.")
    async def versions(self, info: Info) -> list[ProviderVersion]:
        return [ProviderVersion.from_row(v) for v in await info.context.loaders.provider_versions.load(self.row.id)]

    @classmethod
    def from_row(cls, row: ProviderRow) -> Provider:
        return cls(
            id=strawberry.ID(str(row.id)),
            organization_id=strawberry.ID(str(row.organization_id)),
            name=row.name,
            description=row.description,
            created_at=row.created_at,
            updated_at=row.updated_at,
            row=row,
        )


@strawberry.type(description="The organization's OpenPGP key for provider releases; only the public half.")
class SigningKey:
    key_id: str
    ascii_armor: str = strawberry.field(description="The ASCII-armored public key terraform verifies with.")
    created_at: datetime

    @classmethod
    def from_row(cls, row: SigningKeyRow) -> SigningKey:
        return cls(key_id=row.key_id, ascii_armor=row.ascii_armor, created_at=row.created_at)


# -- inputs --------------------------------------------------------------------------------


@strawberry.input(description="`source` is a git URL; its semver tags (after `tagPrefix`) become versions.")
class CreateModuleInput:
    organization: str
    name: str
    provider: str
    source: str
    description: str = ""
    folder: str = "/"
    tag_prefix: str = ""


@strawberry.input(description="A new source, folder or tagPrefix re-reads the repository and replaces the versions.")
class UpdateModuleInput:
    id: strawberry.ID
    description: str | None = None
    source: str | None = None
    folder: str | None = None
    tag_prefix: str | None = None


@strawberry.input
class CreateProviderInput:
    organization: str
    name: str
    description: str = ""


@strawberry.input
class UpdateProviderInput:
    id: strawberry.ID
    description: str | None = None


@strawberry.input
class GenerateSigningKeyInput:
    organization: str


@strawberry.input(description="An ASCII-armored private key without a passphrase; it replaces the current key.")
class ImportSigningKeyInput:
    organization: str
    ascii_armor: str


Errors = ValidationError | NotFoundError | PermissionDeniedError | ConflictError
ModulePayload = Annotated[Module | Errors, strawberry.union("ModulePayload")]
ProviderPayload = Annotated[Provider | Errors, strawberry.union("ProviderPayload")]
SigningKeyPayload = Annotated[SigningKey | Errors, strawberry.union("SigningKeyPayload")]
DeleteModulePayload = Annotated[Deleted | Errors, strawberry.union("DeleteModulePayload")]
DeleteProviderPayload = Annotated[Deleted | Errors, strawberry.union("DeleteProviderPayload")]


def _deleted(object_id: str) -> Deleted:
    return Deleted(id=strawberry.ID(object_id))


@strawberry.type
class RegistryQuery:
    @strawberry.field(description="Null when it does not exist or the caller cannot see it.")
    async def module(self, info: Info, organization: str, name: str, provider: str) -> Module | None:
        row = await resolvers.module(info.context, organization, name, provider)
        return Module.from_row(row) if row else None

    @strawberry.field(description="Null when it does not exist or the caller cannot see it.")
    async def provider(self, info: Info, organization: str, name: str) -> Provider | None:
        row = await resolvers.provider(info.context, organization, name)
        return Provider.from_row(row) if row else None


@strawberry.type
class RegistryMutation:
    @strawberry.mutation(description="Publishes the repository's version tags (needs manageModule).")
    async def create_module(self, info: Info, input: CreateModuleInput) -> ModulePayload:
        data = ModuleCreate(
            organization=input.organization, name=input.name, provider=input.provider, description=input.description,
            source=input.source, folder=input.folder, tag_prefix=input.tag_prefix,
        )
        return await payload(lambda: resolvers.create_module(info.context, data), Module.from_row)

    @strawberry.mutation
    async def update_module(self, info: Info, input: UpdateModuleInput) -> ModulePayload:
        data = ModuleUpdate(
            description=input.description, source=input.source, folder=input.folder, tag_prefix=input.tag_prefix
        )
        return await payload(lambda: resolvers.update_module(info.context, input.id, data), Module.from_row)

    @strawberry.mutation
    async def delete_module(self, info: Info, input: i.IdInput) -> DeleteModulePayload:
        return await payload(lambda: resolvers.delete_module(info.context, input.id), _deleted)

    @strawberry.mutation(description="Publishes version tags added to the repository since the last look.")
    async def refresh_module(self, info: Info, input: i.IdInput) -> ModulePayload:
        return await payload(lambda: resolvers.refresh_module(info.context, input.id), Module.from_row)

    @strawberry.mutation(description="Needs manageProvider; releases are uploaded to /api/providers/….")
    async def create_provider(self, info: Info, input: CreateProviderInput) -> ProviderPayload:
        data = ProviderCreate(organization=input.organization, name=input.name, description=input.description)
        return await payload(lambda: resolvers.create_provider(info.context, data), Provider.from_row)

    @strawberry.mutation
    async def update_provider(self, info: Info, input: UpdateProviderInput) -> ProviderPayload:
        data = ProviderUpdate(description=input.description)
        return await payload(lambda: resolvers.update_provider(info.context, input.id, data), Provider.from_row)

    @strawberry.mutation(description="Deletes the provider with every version and file.")
    async def delete_provider(self, info: Info, input: i.IdInput) -> DeleteProviderPayload:
        return await payload(lambda: resolvers.delete_provider(info.context, input.id), _deleted)

    @strawberry.mutation(
        description="Makes a new RSA-4096 signing key for the organization's providers (needs manageProvider). "
        "It replaces the current key; published releases are re-signed."
    )
    async def generate_signing_key(self, info: Info, input: GenerateSigningKeyInput) -> SigningKeyPayload:
        return await payload(
            lambda: resolvers.generate_signing_key(info.context, input.organization), SigningKey.from_row
        )

    @strawberry.mutation(description="Installs an existing private key; the private half is never returned.")
    async def import_signing_key(self, info: Info, input: ImportSigningKeyInput) -> SigningKeyPayload:
        return await payload(
            lambda: resolvers.import_signing_key(info.context, input.organization, input.ascii_armor),
            SigningKey.from_row,
        )
