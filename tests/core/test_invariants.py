"""The invariants of shared/DESIGN.md that need concurrency, crashes or the database to show."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError as SQLIntegrityError

from cdc.chunking import cut_bytes
from core import Drive, IncompleteUpload, QuotaExceeded, UserInfo, VersionConflict
from core.commit import PendingWrite, WriteTarget
from core.db.models import Segment, SegmentChunk, UploadSession
from core.gc import run_gc
from tests.conftest import BackendSetup, get, put

MiB = 1024 * 1024


def test_database_refuses_a_manifest_naming_an_unknown_chunk(drive: Drive) -> None:
    """Invariant 1, enforced by the schema itself (foreign key on both dialects)."""
    with pytest.raises(SQLIntegrityError), drive.db.write() as session:
        segment = Segment(chunk_count=1, size=1)
        session.add(segment)
        session.flush()
        session.execute(
            insert(SegmentChunk).values(
                segment_id=segment.id, idx=0, offset=0, length=1, chunk_hash="f" * 64
            )
        )


class _Gate(io.RawIOBase):
    """A stream that pauses after ``pause_at`` bytes until released."""

    def __init__(self, data: bytes, pause_at: int) -> None:
        self.data, self.pos, self.pause_at = data, 0, pause_at
        self.paused, self.release = threading.Event(), threading.Event()

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self.pos >= self.pause_at and not self.release.is_set():
            self.paused.set()
            self.release.wait(30)
        chunk = self.data[self.pos : self.pos + n]
        self.pos += len(chunk)
        return chunk


def test_gc_while_an_upload_runs_keeps_what_it_relies_on(drive: Drive, alice: UserInfo) -> None:
    """Invariant 3: the upload reuses chunks that are garbage when it starts
    (their file was purged), and gc runs (grace 0) in the middle of it."""
    data = os.urandom(40 * MiB)
    put(drive, alice, "/old", data)
    drive.delete(alice.id, "/old")
    drive.purge_trash(alice.id, drive.trash(alice.id)[0].id)
    gate = _Gate(data, pause_at=20 * MiB)
    with ThreadPoolExecutor(1) as pool:
        upload = pool.submit(drive.write, alice.id, "/new", gate)
        assert gate.paused.wait(30)
        report = drive.gc()
        gate.release.set()
        upload.result(60)
    assert report.chunks > 0  # chunks not yet touched by the upload were collected…
    assert get(drive, alice, "/new") == data  # …and the upload stored them again
    check = drive.fsck(verify=True)
    assert not check.damaged and check.chunks_checked > 0


def test_gc_dry_run_changes_nothing(drive: Drive, alice: UserInfo) -> None:
    put(drive, alice, "/f", os.urandom(3 * MiB))
    drive.delete(alice.id, "/f")
    drive.purge_trash(alice.id, drive.trash(alice.id)[0].id)
    blobs = sorted(drive.backend.store.list_all())
    report = drive.gc(dry_run=True)
    assert report.dry_run and report.chunks == len(blobs) and report.chunk_bytes > 0
    assert sorted(drive.backend.store.list_all()) == blobs
    assert drive.gc().chunks == len(blobs)


def test_concurrent_uploads_never_overrun_the_quota(drive: Drive) -> None:
    """Invariant 5: eight 1 MiB uploads race for 4.5 MiB of quota."""
    user = drive.add_user("quota", "quota-password", quota=9 * MiB // 2)
    payloads = [os.urandom(MiB) for _ in range(8)]

    def upload(i: int) -> bool:
        try:
            put(drive, user, f"/f{i}", payloads[i])
            return True
        except QuotaExceeded:
            return False

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(upload, range(8)))
    assert sum(results) == 4
    info = drive.user("quota")
    assert info.used_bytes == 4 * MiB and info.reserved_bytes == 0
    assert len(drive.listdir(user.id, "/")) == 4


def test_a_dead_uploads_reservation_is_reclaimed_when_its_quota_is_needed(drive: Drive) -> None:
    """Invariant 5 after a crash: a server killed mid-upload left its reservation
    behind, and the user got 507 for quota they did not use until gc ran (15 min)."""
    user = drive.add_user("quota", "quota-password", quota=10 * MiB)
    dead = PendingWrite(drive.backend, WriteTarget(user.id, path="/dead.bin"))
    with drive.db.write() as session:  # its process died two minutes ago
        dead.open(session, time.time() - 120, size=8 * MiB)
    live = PendingWrite(drive.backend, WriteTarget(user.id, path="/slow.bin"))
    with drive.db.write() as session:  # a live upload's reservation is never taken
        live.open(session, time.time(), size=MiB)

    put(drive, user, "/a.bin", os.urandom(5 * MiB))  # a streamed write (reserve)
    with pytest.raises(QuotaExceeded):
        put(drive, user, "/b.bin", os.urandom(5 * MiB))
    data = os.urandom(3 * MiB)  # a manifest commit (charge)
    with drive.db.write() as session:
        again = PendingWrite(drive.backend, WriteTarget(user.id, path="/dead2.bin"))
        again.open(session, time.time() - 120, size=4 * MiB)
    chunks = [(hashlib.sha256(c).hexdigest(), c) for c in cut_bytes(data)]
    for key, chunk in chunks:
        drive.put_chunk(user.id, key, chunk)
    drive.commit(WriteTarget(user.id, path="/c.bin"), [(k, len(c)) for k, c in chunks], len(data))

    for ended in (dead, again):  # its late steps fail and release nothing twice
        with pytest.raises(IncompleteUpload), drive.db.write() as session:
            ended.reserve(session, ended.reserved + MiB, time.time())
        ended.abort()
    live.abort()
    info = drive.user("quota")
    assert (info.used_bytes, info.reserved_bytes) == (8 * MiB, 0)


def test_concurrent_creates_of_one_path_have_one_winner(drive: Drive, alice: UserInfo) -> None:
    """Invariant 4: compare-and-set on 'must not exist yet'."""

    def create(i: int) -> str:
        try:
            drive.write(alice.id, "/race.txt", io.BytesIO(b"%d" % i), create_only=True)
            return "won"
        except VersionConflict:
            return "lost"

    with ThreadPoolExecutor(6) as pool:
        outcomes = list(pool.map(create, range(6)))
    assert outcomes.count("won") == 1
    assert len(drive.versions(alice.id, "/race.txt")) == 1


_CRASHING_UPLOAD = textwrap.dedent("""
    import os, sys, time
    from core import Drive, load_settings
    class Endless:
        sent = 0
        def read(self, n):
            # Past every arena of the upload: the writer has waited for the first
            # batch to be stored and registered before reading this far.
            if self.sent > 48 * 1024 * 1024:
                print("stalled", flush=True)
                time.sleep(3600)
            self.sent += n
            return os.urandom(n)
    with Drive.open(load_settings()) as drive:
        user = drive.user("alice")
        drive.write(user.id, "/doc.bin", Endless())
""")


def test_a_killed_upload_leaves_the_previous_version_and_gc_cleans_up(
    backend: BackendSetup, drive: Drive, alice: UserInfo
) -> None:
    """Invariant 2, with a real crash: kill -9 of a process in the middle of an upload."""
    put(drive, alice, "/doc.bin", b"version one")
    env = {**os.environ, **backend.env, "DRIVEGATE_GC_GRACE_SECONDS": "0"}
    proc = subprocess.Popen(
        [sys.executable, "-c", _CRASHING_UPLOAD], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "stalled"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert get(drive, alice, "/doc.bin") == b"version one"
    assert len(drive.versions(alice.id, "/doc.bin")) == 1
    assert drive.user("alice").reserved_bytes > 0  # the dead upload still holds quota
    assert drive.gc().dead_uploads == 0  # still within its timeout: left alone
    report = run_gc(drive.backend, now=time.time() + drive.backend.settings.upload_timeout_seconds)
    assert report.dead_uploads == 1 and report.chunks > 0
    assert drive.user("alice").reserved_bytes == 0
    with drive.db.read() as session:
        assert session.execute(select(func.count()).select_from(UploadSession)).scalar_one() == 0
    assert not drive.fsck(verify=True).damaged
