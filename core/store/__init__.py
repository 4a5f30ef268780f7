"""Chunk stores: one protocol (``ChunkStore``), a local and an S3 implementation.

``open_store(url, ...)`` picks the implementation from the URL scheme; nothing
outside this package knows which backend is in use.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from core.errors import InvalidRequest
from core.store.base import ChunkStore
from core.store.local import LocalChunkStore
from core.store.s3 import S3ChunkStore

__all__ = ["ChunkStore", "LocalChunkStore", "S3ChunkStore", "open_store"]


def open_store(
    url: str, access_key: str | None = None, secret_key: str | None = None
) -> ChunkStore:
    """The chunk store named by ``url`` (``file://DIR`` or ``s3://BUCKET/PREFIX?endpoint=…``)."""
    scheme = urlsplit(url).scheme
    if scheme == "file":
        return LocalChunkStore(Path(url.removeprefix("file://")))
    if scheme == "s3":
        return S3ChunkStore(url, access_key, secret_key)
    raise InvalidRequest(f"unknown chunk store URL {url!r}: use file://DIR or s3://BUCKET/PREFIX")
