"""Patch commits: a few changed bytes sent, the server re-cuts the chunks around
them from its own. The result must be exactly the whole new content, cut as
a whole write would cut it, with only the chunks around the edits new; over
the sync API, every malformed patch is refused and changes nothing."""

from __future__ import annotations

import dataclasses
import hashlib
import random
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

import core.patch
from cdc.chunking import cut_bytes
from core import Drive, InvalidRequest, Patch, QuotaExceeded, UserInfo, VersionConflict, segments
from core.commit import WriteTarget
from core.db.models import Chunk, Segment
from core.ids import NodeId, VersionId
from tests.conftest import get, put
from tests.support.apiclient import error_code, unchanged, whole_tree
from tests.support.davbodies import exclusive_lock

MiB = 1024 * 1024
OCTETS = {"Content-Type": "application/octet-stream"}


def _target(drive: Drive, user: UserInfo, path: str) -> WriteTarget:
    info = drive.stat(user.id, path)
    return WriteTarget(user_id=user.id, node_id=info.id, base_version_id=info.version_id)


def _entries(drive: Drive, user: UserInfo, path: str) -> list[tuple[str, int]]:
    refs = drive.manifest(user.id, path).chunks
    return [(ref.hash, ref.length) for ref in refs]


def _whole_cut(data: bytes) -> list[tuple[str, int]]:
    return [(hashlib.sha256(c).hexdigest(), len(c)) for c in cut_bytes(data)]


def _count(drive: Drive, model: type[Chunk] | type[Segment]) -> int:
    with drive.db.read() as session:
        return session.execute(select(func.count()).select_from(model)).scalar_one()


@pytest.mark.parametrize("seed", range(6))
def test_a_patch_gives_the_content_and_chunks_a_whole_write_gives(
    drive: Drive, alice: UserInfo, seed: int
) -> None:
    _random_patches(drive, alice, random.Random(seed), [1000, 3 * MiB, 9 * MiB])


def _small_windows(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Segments of two chunks and no margin past a patch's last change: its window
    is a few chunks of the file. Returns, per plan made, whether it stayed in it."""
    monkeypatch.setattr(segments, "SEGMENT_CHUNKS", 2)
    monkeypatch.setattr(core.patch, "PLAN_MARGIN", 1)
    planned: list[bool] = []
    plan = core.patch._plan

    def recording(*args: Any) -> Any:
        result = plan(*args)
        planned.append(result is not None)
        return result

    monkeypatch.setattr(core.patch, "_plan", recording)
    return planned


def test_patches_planned_over_a_window_of_the_file_give_what_a_whole_write_gives(
    drive: Drive, alice: UserInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A patch loads and walks only the base's segments around its changes."""
    planned = _small_windows(monkeypatch)
    for seed in range(3):
        _random_patches(drive, alice, random.Random(seed), [12 * MiB, 20 * MiB], f"/w{seed}")
    assert True in planned


def test_a_patch_whose_recut_leaves_its_window_is_planned_again_over_every_chunk(
    drive: Drive, alice: UserInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    planned = _small_windows(monkeypatch)
    window = core.patch._window

    def tight(*args: Any) -> Any:  # nothing to read past the planned part
        found = window(*args)
        kept = [c for c in found.chunks if c.offset + c.length <= found.stop]
        return dataclasses.replace(found, chunks=kept)

    monkeypatch.setattr(core.patch, "_window", tight)
    content = bytearray(random.Random(9).randbytes(12 * MiB))
    put(drive, alice, "/f.bin", bytes(content))
    # Bytes changed just before the end of a segment's last chunk: that chunk's cut
    # may move, so the walk must read on into the next segment.
    boundary = sum(length for _, length in _entries(drive, alice, "/f.bin")[:4])
    content[boundary - 15 : boundary - 5] = b"0123456789"
    drive.patch(
        _target(drive, alice, "/f.bin"),
        Patch(len(content), [(boundary - 15, b"0123456789")]),
    )
    assert planned == [False, True]
    assert get(drive, alice, "/f.bin") == bytes(content)
    assert _entries(drive, alice, "/f.bin") == _whole_cut(bytes(content))


def _random_patches(
    drive: Drive, alice: UserInfo, rng: random.Random, sizes: list[int], path: str = "/f.bin"
) -> None:
    """Three random patches (writes, extends, truncates) of a file: after each, the
    content and the chunk list are exactly those of a whole write."""
    content = bytearray(rng.randbytes(rng.choice(sizes)))
    put(drive, alice, path, bytes(content))
    for _ in range(3):
        size = len(content)
        match rng.choice(["write", "extend", "truncate"]):
            case "write":
                size = len(content)
            case "extend":
                size = len(content) + rng.choice([1, 5000, 2 * MiB])
            case "truncate":
                size = rng.randrange(1, len(content) + 1)
        new = bytearray(content[:size]) + bytes(max(0, size - len(content)))
        ranges = []
        at = 0
        for _ in range(rng.randrange(0, 4)):
            at = rng.randrange(at, size) if at < size else size
            data = rng.randbytes(min(rng.choice([1, 70, 300_000]), size - at))
            if data:
                ranges.append((at, data))
                new[at : at + len(data)] = data
                at += len(data)
        drive.patch(_target(drive, alice, path), Patch(size, ranges))
        content = new
        assert get(drive, alice, path) == bytes(content)
        assert _entries(drive, alice, path) == _whole_cut(bytes(content))
    assert len(drive.versions(alice.id, path)) == 4
    assert not drive.fsck(verify=True).damaged


def test_a_one_byte_patch_of_a_big_file_stores_one_chunk_and_one_segment(
    drive: Drive, alice: UserInfo
) -> None:
    content = bytearray(random.Random(3).randbytes(48 * MiB))
    put(drive, alice, "/big.bin", bytes(content))
    chunks, segments = _count(drive, Chunk), _count(drive, Segment)
    middle = len(content) // 2
    content[middle] ^= 0xFF
    state = drive.patch(
        _target(drive, alice, "/big.bin"),
        Patch(len(content), [(middle, bytes(content[middle : middle + 1]))]),
    )
    assert state.version_number == 2
    assert _count(drive, Chunk) - chunks in (1, 2)
    assert _count(drive, Segment) - segments == 1
    assert get(drive, alice, "/big.bin") == bytes(content)
    assert get(drive, alice, "/big.bin", version=1) != bytes(content)
    # Patched back: the chunk it makes is version 1's, which the server has already.
    content[middle] ^= 0xFF
    stored = _count(drive, Chunk)
    drive.patch(
        _target(drive, alice, "/big.bin"),
        Patch(len(content), [(middle, bytes(content[middle : middle + 1]))]),
    )
    assert _count(drive, Chunk) == stored
    assert get(drive, alice, "/big.bin") == get(drive, alice, "/big.bin", version=1)
    assert not drive.fsck(verify=True).damaged


def test_bad_patches_are_refused_before_anything_is_stored(drive: Drive, alice: UserInfo) -> None:
    put(drive, alice, "/p.txt", b"0123456789")
    target = _target(drive, alice, "/p.txt")
    chunks = _count(drive, Chunk)
    for patch in (
        Patch(10, [(5, b"ab"), (4, b"c")]),  # out of order
        Patch(10, [(2, b"abc"), (4, b"d")]),  # overlapping
        Patch(10, [(9, b"ab")]),  # past the size
        Patch(10, [(3, b"")]),  # empty
        Patch(-1, []),
    ):
        with pytest.raises(InvalidRequest):
            drive.patch(target, patch)
    stale = WriteTarget(user_id=alice.id, node_id=target.node_id, base_version_id=VersionId(10**9))
    with pytest.raises(VersionConflict):
        drive.patch(stale, Patch(10, [(0, b"x")]))
    assert _count(drive, Chunk) == chunks
    assert get(drive, alice, "/p.txt") == b"0123456789"
    assert len(drive.versions(alice.id, "/p.txt")) == 1


def test_a_patch_that_grows_a_file_too_far_is_refused_before_any_cut(
    drive: Drive, alice: UserInfo
) -> None:
    """A declared size is cut by the server (zeros past the base's end): a huge one
    kept a worker busy for minutes before the quota refused it."""
    put(drive, alice, "/p.txt", b"0123456789")
    target = _target(drive, alice, "/p.txt")
    chunks = _count(drive, Chunk)
    with pytest.raises(InvalidRequest, match="grows a file by at most"):
        drive.patch(target, Patch(2**40, [(0, b"x")]))
    drive.set_quota("alice", 1024)
    with pytest.raises(QuotaExceeded):
        drive.patch(target, Patch(core.patch.MAX_PATCH_GROWTH, [(0, b"x")]))
    assert _count(drive, Chunk) == chunks
    assert get(drive, alice, "/p.txt") == b"0123456789"
    drive.patch(target, Patch(1000, [(0, b"x")]))  # within the quota: fine
    assert get(drive, alice, "/p.txt") == b"x123456789" + bytes(990)


def _file(api: httpx.Client, http: httpx.Client, name: str, data: bytes) -> dict[str, int]:
    assert http.put(f"/{name}", content=data).status_code in (201, 204)
    node = next(n for n in whole_tree(api).values() if n["name"] == name)
    return {"id": node["id"], "base": node["version"]["id"]}


def test_a_patch_over_the_api_edits_in_place_and_bad_ones_change_nothing(
    api: httpx.Client, http: httpx.Client, dav_url: str
) -> None:
    data = random.Random(5).randbytes(6 * MiB)
    node = _file(api, http, "doc.bin", data)

    def patch(node_id: int, body: bytes, **params: str | int) -> httpx.Response:
        return api.post(f"/nodes/{node_id}/patch", params=params, content=body, headers=OCTETS)

    with unchanged(api):
        for params, body, status, code in (
            ({"size": len(data), "ranges": "10:3"}, b"ab", 400, "bad_request"),  # short body
            ({"size": len(data), "ranges": "10:3,11:2"}, b"abcde", 400, "bad_request"),
            ({"size": len(data), "ranges": f"{len(data) - 1}:2"}, b"ab", 400, "bad_request"),
            ({"size": len(data), "ranges": "1-2"}, b"ab", 400, "bad_request"),
            ({"size": -5}, b"", 400, "bad_request"),
            ({"size": len(data), "ranges": "0:1", "extra": 1}, b"a", 400, "bad_request"),
            ({"size": len(data), "ranges": f"0:{17 * MiB}"}, bytes(17 * MiB), 413, "too_large"),
        ):
            answer = patch(node["id"], body, base_version_id=node["base"], **params)
            assert (answer.status_code, error_code(answer)) == (status, code), params
        stale = patch(node["id"], b"z", base_version_id=node["base"] + 1000, size=len(data),
                      ranges="0:1")  # fmt: skip
        assert (stale.status_code, error_code(stale)) == (409, "version_conflict")
        bobs = ("bob", "bob-password")
        with httpx.Client(base_url=dav_url + ".drivegate/api/v1", auth=bobs) as bob:
            query: dict[str, int | str] = {
                "base_version_id": node["base"],
                "size": 1,
                "ranges": "0:1",
            }
            other = bob.post(
                f"/nodes/{node['id']}/patch", content=b"z", params=query, headers=OCTETS
            )
            assert (other.status_code, error_code(other)) == (404, "not_found")
    assert http.get("/doc.bin").content == data

    edited = bytearray(data) + b"tail"
    edited[3 * MiB] ^= 1
    body = bytes(edited[3 * MiB : 3 * MiB + 1]) + b"tail"
    mtime_ns = 1_700_000_000_000_000_000
    ranges = f"{3 * MiB}:1,{len(data)}:4"
    answer = patch(node["id"], body, base_version_id=node["base"], size=len(edited),
                   ranges=ranges, mtime_ns=mtime_ns)  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert answer.json()["version"]["number"] == 2
    assert answer.json()["mtime_ns"] == mtime_ns
    assert http.get("/doc.bin").content == bytes(edited)

    locked = http.request("LOCK", "/doc.bin", content=exclusive_lock(), headers={"Depth": "0"})
    assert locked.status_code == 200
    token = locked.headers["Lock-Token"].strip("<>")
    base = answer.json()["version"]["id"]
    with unchanged(api):
        refused = patch(node["id"], b"Q", base_version_id=base, size=len(edited), ranges="0:1")
        assert (refused.status_code, error_code(refused)) == (423, "locked")
    allowed = patch(node["id"], b"Q", base_version_id=base, size=len(edited), ranges="0:1",
                    lock_token=token)  # fmt: skip
    assert allowed.status_code == 200, allowed.text
    assert http.get("/doc.bin", headers={"Range": "bytes=0-1"}).content == b"Q" + edited[1:2]
    assert NodeId(node["id"]) == allowed.json()["id"]
