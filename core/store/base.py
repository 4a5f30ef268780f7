"""The ChunkStore protocol: what every chunk backend MUST and MAY do.

A store keeps opaque blobs (a chunk's stored form, see ``core.chunkcodec``)
under their chunk hash. It knows nothing of files, users or versions.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol

from core.ids import ChunkHash


class ChunkStore(Protocol):
    """A content-addressed blob store.

    - ``put`` MUST be idempotent and durable when it returns: after a crash
      the blob is either absent or whole, never partial. It MUST NOT keep a
      reference to ``blob`` (the writer reuses the memory behind a view).
      It SHOULD raise ``core.errors.StorageFull`` when the backend has no space
      left (a full disk), ``StorageUnavailable`` for other failures.
    - ``get`` MUST raise ``core.errors.ChunkMissing`` for an absent blob and
      ``core.errors.StorageUnavailable`` when the backend cannot be reached.
    - ``get_split`` is ``get`` cut after ``head`` bytes: the blob's first
      ``head`` bytes, then the rest (a reader that strips a header gets the rest
      without another copy where the backend allows it). Same errors as ``get``.
    - ``has_many`` SHOULD answer in one round trip where the backend allows.
    - ``delete_many`` MUST ignore absent keys.
    - ``list_all`` yields every key with its last-write time (seconds since
      the epoch); gc uses it to find blobs no metadata row knows.
    - ``prefetch`` is a hint that these blobs will be read soon: it MAY start
      reading them in the background, MUST return at once and MUST NOT raise
      (a sequential reader calls it for the chunks after its read-ahead).
    """

    url: str

    def put(self, key: ChunkHash, blob: bytes | memoryview) -> None: ...

    def get(self, key: ChunkHash) -> bytes: ...

    def get_split(self, key: ChunkHash, head: int) -> tuple[bytes, bytes | memoryview]: ...

    def has_many(self, keys: Iterable[ChunkHash]) -> set[ChunkHash]: ...

    def delete_many(self, keys: Iterable[ChunkHash]) -> None: ...

    def list_all(self) -> Iterator[tuple[ChunkHash, float]]: ...

    def prefetch(self, keys: Iterable[ChunkHash]) -> None: ...

    def close(self) -> None: ...
