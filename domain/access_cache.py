"""Who a token is and what its teams may see, remembered between requests.

Every request authenticates its token (a JWT check and a token row) and looks up its teams in
the organization it touches. Those answers change only when an access token, a team or an
organization row is written, so a process keeps them until such a write commits anywhere:

- in this process, the commit itself clears every cache of the process
  (``Database.transaction`` calls ``access_changed_here`` before the writer's caller resumes);
- in other processes, the broker carries an "access changed" message (Redis pub/sub) and each
  receiver clears its cache. While a receiver is not subscribed (starting, Redis unreachable) its
  cache is off (``live`` is False), because a message it cannot hear might be a revocation; every
  (re)subscription starts from an empty cache.

An answer is also kept at most ``max_age`` seconds and never past the token's own expiry, which
bounds what a change the broker cannot announce (an edit made directly in the database) costs.
A load that raced with a change (read before it, stored after) is dropped: every answer carries
the generation it was read in, and a change starts a new generation.
"""

from __future__ import annotations

import hashlib
import time
import uuid
import weakref
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session

from domain.models import AccessToken, Organization, Team
from domain.principal import OrganizationAccess, Principal

ACCESS_KEY = "terrakube.access_changed"  # set on a session whose transaction writes access rows
ACCESS_MODELS = (AccessToken, Team, Organization)
ACCESS_TABLES = frozenset(m.__tablename__ for m in ACCESS_MODELS)  # type: ignore[attr-defined]

_caches: weakref.WeakSet[AccessCache] = weakref.WeakSet()  # every cache of this process


def token_digest(token: str) -> bytes:
    """Entries are keyed by a digest, so the cache never holds a usable token."""
    return hashlib.sha256(token.encode()).digest()


class AccessCache:
    def __init__(
        self, max_age: float, *, live: bool = True, max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic, wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.max_age = max_age
        self.live = live
        self.max_entries = max_entries
        self.generation = 0
        self._clock = clock
        self._wall_clock = wall_clock
        self._principals: dict[bytes, tuple[float, Principal]] = {}
        self._access: dict[tuple[frozenset[str], uuid.UUID], tuple[float, OrganizationAccess]] = {}
        _caches.add(self)

    @property
    def enabled(self) -> bool:
        return self.live and self.max_age > 0

    def invalidate(self) -> None:
        self.generation += 1
        self._principals.clear()
        self._access.clear()

    def set_live(self, live: bool) -> None:
        """Whether changes made elsewhere can be heard; either way, start from nothing."""
        self.live = live
        self.invalidate()

    # -- principals -------------------------------------------------------------------------

    def principal(self, digest: bytes) -> Principal | None:
        return self._get(self._principals, digest)

    def keep_principal(self, digest: bytes, principal: Principal, expires_at: float, generation: int) -> None:
        """``expires_at``: the token's own expiry (epoch seconds); ``generation``: when it was read."""
        remaining = expires_at - self._wall_clock()
        self._put(self._principals, digest, principal, min(self.max_age, remaining), generation)

    # -- organization access of a set of groups ----------------------------------------------

    def access(self, groups: frozenset[str], organization_id: uuid.UUID) -> OrganizationAccess | None:
        return self._get(self._access, (groups, organization_id))

    def keep_access(
        self, groups: frozenset[str], organization_id: uuid.UUID, access: OrganizationAccess, generation: int
    ) -> None:
        self._put(self._access, (groups, organization_id), access, self.max_age, generation)

    # -- shared by both ----------------------------------------------------------------------

    def _get(self, items: dict[Any, tuple[float, Any]], key: Any) -> Any | None:
        if not self.enabled:
            return None
        hit = items.get(key)
        if hit is None:
            return None
        if hit[0] <= self._clock():
            items.pop(key, None)
            return None
        return hit[1]

    def _put(self, items: dict[Any, tuple[float, Any]], key: Any, value: Any, ttl: float, generation: int) -> None:
        if not self.enabled or generation != self.generation or ttl <= 0:
            return
        if len(items) >= self.max_entries:
            items.pop(next(iter(items)))  # the oldest entry
        items[key] = (self._clock() + ttl, value)


def access_changed_here() -> None:
    """A transaction that wrote access rows committed in this process."""
    for cache in list(_caches):
        cache.invalidate()


# -- noticing writes that change access --------------------------------------------------------


@event.listens_for(Session, "before_flush")
def _flushing(session: Session, _context: Any, _instances: Any) -> None:
    for obj in (*session.new, *session.dirty, *session.deleted):
        if isinstance(obj, ACCESS_MODELS):
            session.info[ACCESS_KEY] = True
            return


@event.listens_for(Session, "do_orm_execute")
def _bulk_statement(state: ORMExecuteState) -> None:
    """``UPDATE``/``DELETE`` statements bypass the flush; their target table tells."""
    if state.is_update or state.is_delete:
        table = getattr(state.statement, "table", None)
        if getattr(table, "name", None) in ACCESS_TABLES:
            state.session.info[ACCESS_KEY] = True
