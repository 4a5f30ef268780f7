"""``file://DIR``: chunks as files under DIR/ab/cd/<hash>.

Writes go to DIR/tmp, are fsynced, renamed into place and the directory is
fsynced, so a crash leaves either no chunk or a whole one.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

from core.errors import ChunkMissing, StorageUnavailable
from core.ids import ChunkHash


class LocalChunkStore:
    """Chunk store on a local (or locally mounted) file system."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = f"file://{root}"
        self._tmp = root / "tmp"
        try:
            self._tmp.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageUnavailable(f"cannot create chunk dir {root}: {exc}") from None

    def _path(self, key: ChunkHash) -> Path:
        return self.root / key[:2] / key[2:4] / key

    def put(self, key: ChunkHash, blob: bytes) -> None:
        final = self._path(key)
        if final.exists():
            os.utime(final)  # a re-put counts as fresh for gc's orphan sweep
            return
        tmp = self._tmp / f"{key}.{uuid.uuid4().hex}"
        try:
            with open(tmp, "wb") as handle:
                handle.write(blob)
                handle.flush()
                os.fsync(handle.fileno())
            final.parent.mkdir(parents=True, exist_ok=True)
            os.rename(tmp, final)
            _fsync_dir(final.parent)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise StorageUnavailable(f"cannot write chunk {key}: {exc}") from None

    def get(self, key: ChunkHash) -> bytes:
        try:
            with open(self._path(key), "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            raise ChunkMissing(f"chunk {key} is missing from {self.url}") from None
        except OSError as exc:
            raise StorageUnavailable(f"cannot read chunk {key}: {exc}") from None

    def has_many(self, keys: Iterable[ChunkHash]) -> set[ChunkHash]:
        return {key for key in keys if self._path(key).exists()}

    def delete_many(self, keys: Iterable[ChunkHash]) -> None:
        for key in keys:
            self._path(key).unlink(missing_ok=True)

    def list_all(self) -> Iterator[tuple[ChunkHash, float]]:
        for first in sorted(self.root.glob("[0-9a-f][0-9a-f]")):
            for entry in first.glob("*/*"):
                try:
                    yield ChunkHash(entry.name), entry.stat().st_mtime
                except FileNotFoundError:
                    continue

    def close(self) -> None:
        """Nothing to release."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
