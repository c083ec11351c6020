"""Semantic versions (semver.org 2.0) as the registry uses them: git tags of modules and provider
releases. Pure functions, no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering

from domain.errors import ValidationFailed

# semver.org's own pattern: no leading zeros, dot-separated pre-release and build identifiers.
_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)
MAX_LENGTH = 64  # the width of the version columns


@total_ordering
@dataclass(frozen=True)
class Version:
    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()
    build: str = ""

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(self.prerelease)
        if self.build:
            text += "+" + self.build
        return text

    @property
    def is_prerelease(self) -> bool:
        return bool(self.prerelease)

    def _key(self) -> tuple[int, int, int, int, tuple[tuple[int, int, str], ...]]:
        # A release sorts after its pre-releases; numeric identifiers sort before alphanumeric
        # ones and numerically among themselves (1.0.0-alpha.2 < 1.0.0-alpha.10 < 1.0.0-beta).
        ids = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in self.prerelease)
        return (self.major, self.minor, self.patch, 0 if self.prerelease else 1, ids)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() < other._key()

    def __eq__(self, other: object) -> bool:
        # Build metadata does not take part in precedence (semver.org §10).
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


def parse(text: str) -> Version | None:
    """A strict semantic version (no ``v``), or None."""
    if len(text) > MAX_LENGTH:
        return None
    m = _SEMVER.match(text)
    if m is None:
        return None
    major, minor, patch, pre, build = m.groups()
    return Version(int(major), int(minor), int(patch), tuple(pre.split(".")) if pre else (), build or "")


def sort_key(text: str) -> Version:
    """For sorting stored version strings; anything unparsable sorts first."""
    return parse(text) or Version(-1, 0, 0)


def version_from_tag(tag: str, prefix: str = "") -> Version | None:
    """The version a git tag names: ``prefix`` and then an optional ``v`` are stripped.

    ``v1.2.0`` and ``1.2.0`` give 1.2.0, ``vpc-v1.2.0`` gives it with prefix ``vpc-``,
    ``v2.0.0-rc.1`` stays a pre-release, and ``latest`` or ``v1.2`` give None (not a version).
    """
    if prefix:
        if not tag.startswith(prefix):
            return None
        tag = tag[len(prefix):]
    if tag[:1] in ("v", "V"):
        tag = tag[1:]
    return parse(tag)


def check_version(value: str, field: str = "version") -> Version:
    """A version given by a caller (provider releases): semver without a ``v``, or ValidationFailed."""
    version = parse(value)
    if version is None:
        raise ValidationFailed(
            field, f"{field} must be a semantic version like 1.2.0 or 1.3.0-beta.1 (got {value[:80]!r})"
        )
    return version


def latest(versions: list[str], *, include_prereleases: bool = False) -> str | None:
    """The highest version; pre-releases count only if asked to (or if there is nothing else)."""
    parsed = [(v, p) for v in versions if (p := parse(v)) is not None]
    stable = [(v, p) for v, p in parsed if not p.is_prerelease]
    pool = parsed if include_prereleases or not stable else stable
    if not pool:
        return None
    return max(pool, key=lambda item: item[1])[0]
