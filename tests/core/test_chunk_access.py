"""Who may use which chunk (core.chunkaccess): read through one's own nodes, or
uploaded oneself; a claim lasts until gc's cutoff (both backends, in process)."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import func, select

from core import Drive, NotFound, UserInfo
from core.commit import WriteTarget
from core.db.models import ChunkClaim
from tests.conftest import put


def _claims(drive: Drive) -> int:
    with drive.db.read() as session:
        return session.execute(select(func.count()).select_from(ChunkClaim)).scalar_one()


def test_an_upload_claims_a_chunk_until_gc_and_only_for_its_uploader(
    drive: Drive, alice: UserInfo, bob: UserInfo
) -> None:
    secret = b"alice's chunk"
    key = hashlib.sha256(secret).hexdigest()
    put(drive, alice, "/a.txt", secret)
    assert drive.missing_chunks(bob.id, [key]) == [key]
    with pytest.raises(NotFound):
        drive.read_chunk(bob.id, key)
    assert drive.put_chunk(bob.id, key, secret) is True  # as if it were new
    assert drive.missing_chunks(bob.id, [key]) == []
    assert drive.read_chunk(bob.id, key) == secret
    assert drive.put_chunk(bob.id, key, secret) is False
    assert _claims(drive) == 1

    drive.gc()  # the grace is 0 here: the claim has done its job
    assert _claims(drive) == 0
    assert drive.missing_chunks(bob.id, [key]) == [key]
    assert drive.missing_chunks(alice.id, [key]) == []  # hers through her file
    with pytest.raises(NotFound):
        drive.read_chunk(bob.id, key)


def test_a_claimed_chunk_commits_and_then_is_read_through_the_file(
    drive: Drive, bob: UserInfo
) -> None:
    data = b"bob's own chunk"
    key = hashlib.sha256(data).hexdigest()
    assert drive.put_chunk(bob.id, key, data) is True
    drive.commit(WriteTarget(bob.id, path="/b.txt"), [(key, len(data))], len(data))
    drive.gc()
    assert _claims(drive) == 0
    assert drive.missing_chunks(bob.id, [key]) == []
    assert drive.read_chunk(bob.id, key) == data
