"""The mount's chunk cache on a real disk: hard limit, LRU eviction, pins,
restarts without rescanning, damaged files, and a full disk."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from trio.testing import MockClock

from cdc.chunking import ChunkHash, chunk_hash
from fusemount.cache import ChunkCache, disk_size
from fusemount.errors import CacheFull

KIB = 1024


def blob(seed: int, size: int = 64 * KIB) -> tuple[ChunkHash, bytes]:
    data = bytes([seed % 251]) * size + seed.to_bytes(8, "big")
    return chunk_hash(data), data


def files_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in (directory / "chunks").rglob("*") if p.is_file())


def test_put_then_read_slices_and_count_once(tmp_path: Path) -> None:
    async def main() -> None:
        cache = ChunkCache(tmp_path, 10 * 1024 * KIB)
        digest, data = blob(1)
        assert await cache.read(digest) is None
        assert await cache.put(digest, data)
        assert await cache.put(digest, data)  # the same chunk twice: stored once
        assert await cache.read(digest) == data
        assert await cache.read(digest, 10, 20) == data[10:20]
        assert cache.stats().used == disk_size(len(data))
        assert cache.stats().chunks == 1
        cache.close()

    trio.run(main)


def test_limit_is_never_exceeded_and_eviction_is_lru(tmp_path: Path) -> None:
    limit = 5 * disk_size(64 * KIB + 8)

    async def main() -> None:
        cache = ChunkCache(tmp_path, limit)
        chunks = [blob(seed) for seed in range(20)]
        for index, (digest, data) in enumerate(chunks):
            assert await cache.put(digest, data)
            assert cache.stats().used <= limit
            assert files_bytes(tmp_path) <= limit
            if index >= 1:
                assert await cache.read(chunks[0][0]) == chunks[0][1]  # chunk 0 stays in use
        assert cache.contains(chunks[0][0])
        assert cache.contains(chunks[19][0])
        assert not cache.contains(chunks[1][0])  # least recently used went first
        assert cache.stats().chunks == 5
        cache.close()

    trio.run(main)


def test_pinned_chunks_are_never_evicted(tmp_path: Path) -> None:
    size = disk_size(64 * KIB + 8)

    async def main() -> None:
        cache = ChunkCache(tmp_path, 3 * size)
        pinned = [blob(seed) for seed in range(3)]
        for digest, data in pinned:
            await cache.put(digest, data, pinned=True)
        newcomer = blob(99)
        with pytest.raises(CacheFull):
            await cache.put(*newcomer)
        assert all(cache.contains(d) for d, _ in pinned)
        cache.set_pinned([pinned[0][0]])  # unpin two: they become evictable
        assert await cache.put(*newcomer)
        assert cache.contains(pinned[0][0])
        assert cache.stats().pinned == size
        cache.close()

    trio.run(main)


def test_index_survives_reopen_and_a_smaller_limit_evicts(tmp_path: Path) -> None:
    size = disk_size(64 * KIB + 8)
    chunks = [blob(seed) for seed in range(4)]

    async def fill() -> None:
        cache = ChunkCache(tmp_path, 10 * size)
        for digest, data in chunks:
            await cache.put(digest, data, pinned=digest == chunks[0][0])
        cache.close()

    async def reopen() -> None:
        cache = ChunkCache(tmp_path, 2 * size)
        assert cache.stats().used <= 2 * size
        assert cache.contains(chunks[0][0])  # pinned: kept
        assert await cache.read(chunks[0][0]) == chunks[0][1]
        cache.close()

    trio.run(fill)
    trio.run(reopen)
    assert files_bytes(tmp_path) <= 2 * size


def test_damaged_or_missing_files_are_dropped_not_served(tmp_path: Path) -> None:
    good, bad, gone = blob(1), blob(2), blob(3)

    async def fill() -> None:
        cache = ChunkCache(tmp_path, 1024 * KIB)
        for digest, data in (good, bad, gone):
            await cache.put(digest, data)
        cache.close()

    async def reopen() -> None:
        cache = ChunkCache(tmp_path, 1024 * KIB)
        assert await cache.read(good[0]) == good[1]
        assert await cache.read(bad[0]) is None
        assert await cache.read(gone[0]) is None
        assert not cache.contains(bad[0])
        assert not cache.contains(gone[0])
        assert not cache.path(bad[0]).exists()
        assert cache.stats().chunks == 1
        cache.close()

    trio.run(fill)
    cache_file = ChunkCache(tmp_path, 1024 * KIB)
    with open(cache_file.path(bad[0]), "r+b") as file:
        file.write(b"X")
    cache_file.path(gone[0]).unlink()
    cache_file.close()
    trio.run(reopen)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs: a disk that fills up after a few chunks."""
    mountpoint = tmp_path / "tiny"
    mountpoint.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mountpoint)], check=True
    )
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def test_full_disk_leaves_nothing_half_written(tiny_disk: Path) -> None:
    async def main() -> None:
        cache = ChunkCache(tiny_disk, 100 * 1024 * KIB)  # the limit is not what stops it
        stored = []
        for seed in range(8):
            digest, data = blob(seed)
            if await cache.put(digest, data):
                stored.append((digest, data))
        assert 0 < len(stored) < 8
        assert cache.stats().chunks == len(stored)
        for digest, data in stored:
            assert await cache.read(digest) == data
        assert os.listdir(tiny_disk / "tmp") == []
        cache.close()

    trio.run(main)


def test_odd_sizes_read_back_exactly(tmp_path: Path) -> None:
    chunks = [blob(seed, size) for seed, size in enumerate((1, 4095, 4096, 4097, 1_300_000))]

    async def main() -> None:
        cache = ChunkCache(tmp_path, 4 * 1024 * KIB)
        for digest, data in chunks:
            assert await cache.put(digest, data)
        cache.close()
        cache = ChunkCache(tmp_path, 4 * 1024 * KIB)  # reopened: every file re-hashed
        for digest, data in chunks:
            assert cache.path(digest).stat().st_size == len(data)
            assert await cache.read(digest) == data
        assert cache.stats().used == sum(disk_size(len(data)) for _, data in chunks)
        cache.close()

    trio.run(main)


def test_a_reserved_chunk_counts_as_cached_and_put_waits_for_its_write(tmp_path: Path) -> None:
    digest, data = blob(1)

    async def main() -> None:
        cache = ChunkCache(tmp_path, 1024 * KIB)
        size = cache.reserve(digest, len(data))
        assert size == disk_size(len(data))
        assert cache.reserve(digest, len(data)) is None  # being written: not twice
        assert cache.cached_among([digest]) == {digest}
        assert cache.stats().used == size
        assert await cache.read(digest) is None  # not on disk yet
        async with trio.open_nursery() as nursery:
            nursery.start_soon(cache.put, digest, data, True)  # pinned: waits, then pins
            await trio.sleep(0.01)  # put parks on the reservation (a virtual 10 ms)
            assert await cache.write(digest, data, size)
        assert await cache.read(digest) == data
        assert cache.stats().pinned == size
        assert cache.stats().used == size
        other, more = blob(2)
        size = cache.reserve(other, len(more), pinned=True)
        assert size is not None
        cache.set_pinned([digest])  # the other unpinned while it is written: its row says so
        assert await cache.write(other, more, size)
        assert cache.stats().pinned == disk_size(len(data))
        cache.close()

    # Nothing here waits on time but the sleep above: the clock jumps it.
    trio.run(main, clock=MockClock(autojump_threshold=0))
