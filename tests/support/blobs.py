"""Test-only helpers that damage stored chunks, the way a bad disk or a
careless operator would, through each backend's own storage."""

from __future__ import annotations

import io

from core.ids import ChunkHash
from core.store import ChunkStore, LocalChunkStore, S3ChunkStore


def overwrite_blob(store: ChunkStore, key: ChunkHash, blob: bytes) -> None:
    if isinstance(store, LocalChunkStore):
        path = store.root / key[:2] / key
        path.write_bytes(blob)
    elif isinstance(store, S3ChunkStore):
        store.client.put_object(store.bucket, store._key(key), io.BytesIO(blob), len(blob))
    else:  # pragma: no cover
        raise TypeError(store)


def flip_a_byte(store: ChunkStore, key: ChunkHash) -> None:
    blob = bytearray(store.get(key))
    blob[len(blob) // 2] ^= 0xFF
    overwrite_blob(store, key, bytes(blob))
