"""Thin resolvers of the private registry: modules, providers and the organization signing key."""

from __future__ import annotations

import uuid

from domain.models import Module, Provider, SigningKey
from domain.pagination import Page, PageRequest
from domain.services import modules, providers
from graph.resolvers.context import Context, parse_id

# -- modules -------------------------------------------------------------------------------


async def module(ctx: Context, organization: str, name: str, provider: str) -> Module | None:
    return await modules.get_module(ctx.platform, ctx.actor, organization, name, provider)


async def modules_page(ctx: Context, org_id: uuid.UUID, first: int, after: str | None) -> Page[Module]:
    return await modules.list_modules(ctx.platform, org_id, PageRequest(first, after))


async def create_module(ctx: Context, data: modules.ModuleCreate) -> Module:
    return await modules.create_module(ctx.platform, ctx.actor, data)


async def update_module(ctx: Context, module_id: str, data: modules.ModuleUpdate) -> Module:
    return await modules.update_module(ctx.platform, ctx.actor, parse_id(module_id), data)


async def delete_module(ctx: Context, module_id: str) -> str:
    return str(await modules.delete_module(ctx.platform, ctx.actor, parse_id(module_id)))


async def refresh_module(ctx: Context, module_id: str) -> Module:
    return await modules.refresh_module(ctx.platform, ctx.actor, parse_id(module_id))


# -- providers -----------------------------------------------------------------------------


async def provider(ctx: Context, organization: str, name: str) -> Provider | None:
    return await providers.get_provider(ctx.platform, ctx.actor, organization, name)


async def providers_page(ctx: Context, org_id: uuid.UUID, first: int, after: str | None) -> Page[Provider]:
    return await providers.list_providers(ctx.platform, org_id, PageRequest(first, after))


async def create_provider(ctx: Context, data: providers.ProviderCreate) -> Provider:
    return await providers.create_provider(ctx.platform, ctx.actor, data)


async def update_provider(ctx: Context, provider_id: str, data: providers.ProviderUpdate) -> Provider:
    return await providers.update_provider(ctx.platform, ctx.actor, parse_id(provider_id), data)


async def delete_provider(ctx: Context, provider_id: str) -> str:
    return str(await providers.delete_provider(ctx.platform, ctx.actor, parse_id(provider_id)))


async def generate_signing_key(ctx: Context, organization: str) -> SigningKey:
    return await providers.generate_signing_key(ctx.platform, ctx.actor, organization)


async def import_signing_key(ctx: Context, organization: str, ascii_armor: str) -> SigningKey:
    return await providers.import_signing_key(ctx.platform, ctx.actor, organization, ascii_armor)
