"""Blob storage: the `BlobStore` protocol, the key layout, and the backends.

Depends on nothing of ours, so `domain`, `workers` and `registry` can all use it.
"""

from __future__ import annotations

import os

from .base import (
    BlobNotFound,
    BlobStore,
    InvalidKey,
    ObjectInfo,
    StorageError,
    validate_key,
    validate_prefix,
)
from .local import LocalBlobStore

__all__ = [
    "BlobNotFound",
    "BlobStore",
    "InvalidKey",
    "LocalBlobStore",
    "ObjectInfo",
    "StorageError",
    "open_local_store",
    "validate_key",
    "validate_prefix",
]


def open_local_store(path: str | os.PathLike[str]) -> LocalBlobStore:
    """A store on the directory `path` (created on first write; call check() to verify it)."""
    return LocalBlobStore(path)
