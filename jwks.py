"""Fetches and caches an OIDC issuer's signing keys (JWKS) over HTTP with httpx."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx

log = logging.getLogger("terrakube.oidc")

# An unknown key id triggers a refetch at most this often, so forged kids cannot flood the issuer.
MIN_REFRESH_INTERVAL = 10.0


class JwksKeySource:
    def __init__(
        self,
        issuer: str,
        *,
        jwks_url: str | None = None,
        cache_seconds: float = 300.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.jwks_url = jwks_url
        self.cache_seconds = cache_seconds
        self._client = client or httpx.AsyncClient(timeout=10.0)
        self._owns_client = client is None
        self._keys: list[dict[str, Any]] = []
        self._fetched_at = -1e9
        self._lock = asyncio.Lock()

    async def key_for(self, kid: str | None, alg: str) -> dict[str, Any] | None:
        await self._refresh(older_than=self.cache_seconds)
        key = self._match(kid, alg)
        if key is None:
            await self._refresh(older_than=MIN_REFRESH_INTERVAL)  # the issuer may have rotated its keys
            key = self._match(kid, alg)
        return key

    def _match(self, kid: str | None, alg: str) -> dict[str, Any] | None:
        kty = {"RS256": "RSA", "ES256": "EC"}.get(alg)
        candidates = [
            k
            for k in self._keys
            if k.get("kty") == kty and k.get("use", "sig") == "sig" and k.get("alg", alg) == alg
        ]
        if kid is not None:
            candidates = [k for k in candidates if k.get("kid") == kid]
        elif len(candidates) > 1:
            return None  # without a kid the choice would be a guess
        return candidates[0] if candidates else None

    async def _refresh(self, older_than: float) -> None:
        """Fetch unless the keys are younger than ``older_than`` seconds (checked under the
        lock, so concurrent first requests share one fetch)."""
        if time.monotonic() - self._fetched_at <= older_than:
            return
        async with self._lock:
            if time.monotonic() - self._fetched_at <= older_than:
                return
            try:
                url = self.jwks_url or await self._discover()
                response = await self._client.get(url)
                response.raise_for_status()
                keys = response.json().get("keys", [])
                self._keys = [k for k in keys if isinstance(k, dict)]
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("cannot fetch the signing keys of %s: %s", self.issuer, exc)
            finally:
                self._fetched_at = time.monotonic()

    async def _discover(self) -> str:
        response = await self._client.get(f"{self.issuer}/.well-known/openid-configuration")
        response.raise_for_status()
        url = response.json().get("jwks_uri")
        if not isinstance(url, str):
            raise ValueError("the discovery document has no jwks_uri")
        self.jwks_url = url
        return url

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()
