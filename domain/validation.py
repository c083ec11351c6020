"""Shared input rules; each raises ``ValidationFailed`` naming the offending field."""

from __future__ import annotations

import re

from domain.errors import ValidationFailed

# Terraform Cloud's rule for organization and workspace names.
NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,90}$")
SEMVER_RE = re.compile(r"^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$")


def check_name(value: str, field: str = "name", what: str = "name") -> str:
    if not NAME_RE.fullmatch(value):
        raise ValidationFailed(
            field,
            f"{what} must be 1 to 90 letters, digits, '-' or '_' (got {value[:100]!r})",
        )
    return value


def check_text(value: str, field: str, *, max_length: int, required: bool = False) -> str:
    if required and not value.strip():
        raise ValidationFailed(field, f"{field} must not be empty")
    if len(value) > max_length:
        raise ValidationFailed(field, f"{field} must be at most {max_length} characters")
    return value


def check_semver(value: str, field: str) -> str:
    if not SEMVER_RE.fullmatch(value):
        raise ValidationFailed(field, f"{field} must be a version like 1.11.4 (got {value[:40]!r})")
    return value
