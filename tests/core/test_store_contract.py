"""The ChunkStore contract, run against every implementation (local dir and S3)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cdc.chunking import chunk_hash
from core import ChunkMissing, InvalidRequest, StorageUnavailable
from core.chunkcodec import decode_chunk, encode_chunk
from core.ids import ChunkHash
from core.store import ChunkStore, LocalChunkStore, open_store


@pytest.fixture(params=["file", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ChunkStore]:
    if request.param == "file":
        opened = open_store(f"file://{tmp_path}/chunks")
    else:
        endpoint = request.getfixturevalue("s3")
        opened = open_store(f"s3://contract-{os.getpid()}/pre/fix?endpoint={endpoint}", "k", "s")
        opened.delete_many([key for key, _ in opened.list_all()])
    yield opened
    opened.close()


def _blob(data: bytes) -> tuple[ChunkHash, bytes]:
    return chunk_hash(data), encode_chunk(data)


def test_put_get_round_trip_and_idempotent_put(store: ChunkStore) -> None:
    key, blob = _blob(os.urandom(300_000))
    store.put(key, blob)
    store.put(key, blob)
    assert store.get(key) == blob
    assert [k for k, _ in store.list_all()] == [key]


def test_split_get_is_get_cut_in_two(store: ChunkStore) -> None:
    data = os.urandom(300_000)
    key = chunk_hash(data)
    store.put(key, b"head" + data)
    assert store.get(key) == b"head" + data
    head, rest = store.get_split(key, 4)
    assert (head, bytes(rest)) == (b"head", data)
    assert store.get_split(key, 10**6) == (b"head" + data, b"")


def test_get_of_an_absent_key_raises_chunk_missing(store: ChunkStore) -> None:
    with pytest.raises(ChunkMissing):
        store.get(ChunkHash("ab" * 32))
    with pytest.raises(ChunkMissing):
        store.get_split(ChunkHash("ab" * 32), 4)


def test_has_many_and_delete_many(store: ChunkStore) -> None:
    items = [_blob(os.urandom(1000 + i)) for i in range(5)]
    for key, blob in items:
        store.put(key, blob)
    keys = [key for key, _ in items]
    absent = ChunkHash("cd" * 32)
    assert store.has_many([*keys, absent]) == set(keys)
    store.delete_many([keys[0], keys[1], absent])
    assert store.has_many(keys) == set(keys[2:])
    assert sorted(k for k, _ in store.list_all()) == sorted(keys[2:])


def test_prefetch_is_a_hint_that_never_raises(store: ChunkStore) -> None:
    key, blob = _blob(os.urandom(5000))
    store.put(key, blob)
    store.prefetch([key, ChunkHash("ef" * 32)])  # an absent key is no error
    store.prefetch([])
    assert store.get(key) == blob


def test_list_all_reports_write_times(store: ChunkStore) -> None:
    key, blob = _blob(b"timed")
    store.put(key, blob)
    ((listed, stamp),) = list(store.list_all())
    assert listed == key and stamp > 1_600_000_000


def test_local_store_leaves_no_temp_files(tmp_path: Path) -> None:
    store = LocalChunkStore(tmp_path / "c")
    key, blob = _blob(b"x" * 5000)
    store.put(key, blob)
    assert list((tmp_path / "c" / "tmp").iterdir()) == []
    assert (tmp_path / "c" / key[:2] / key).read_bytes() == blob


def test_unwritable_local_store_is_storage_unavailable(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a dir")
    with pytest.raises(StorageUnavailable):
        LocalChunkStore(tmp_path / "file" / "chunks")


def test_unknown_store_url_is_refused() -> None:
    with pytest.raises(InvalidRequest):
        open_store("ftp://somewhere")
    with pytest.raises(InvalidRequest):
        open_store("s3://bucket?endpoint=nohost")


def test_unreachable_s3_is_storage_unavailable() -> None:
    with pytest.raises(StorageUnavailable):
        open_store("s3://bucket?endpoint=http://127.0.0.1:9", "k", "s")


def test_codec_compresses_when_it_helps_and_verifies_on_decode() -> None:
    text = b"abc" * 100_000
    stored = encode_chunk(text)
    assert len(stored) < len(text) // 10
    assert decode_chunk(stored, chunk_hash(text)) == text
    noise = os.urandom(100_000)
    assert len(encode_chunk(noise)) == len(noise) + 4  # raw when zstd does not help
    from core import ChunkCorrupt

    damaged = bytearray(stored)
    damaged[-5] ^= 1
    with pytest.raises(ChunkCorrupt):
        decode_chunk(bytes(damaged), chunk_hash(text))
    with pytest.raises(ChunkCorrupt):
        decode_chunk(encode_chunk(b"other"), chunk_hash(text))
