"""Bad input gets a clear error and changes nothing (one test per case)."""

from __future__ import annotations

import io
import random
import unicodedata
from collections.abc import Iterator

import pytest

from core import (
    AuthError,
    ChunkCorrupt,
    ChunkMissing,
    Drive,
    DriveError,
    IncompleteUpload,
    InvalidName,
    MoveIntoItself,
    NameTaken,
    NotAFile,
    QuotaExceeded,
    UserInfo,
    UserNotFound,
)
from tests.conftest import get, put
from tests.support.blobs import flip_a_byte


@pytest.fixture
def unchanged(drive: Drive, alice: UserInfo) -> Iterator[None]:
    """Assert the test leaves alice's tree, journal and quota exactly as they were."""
    drive.makedirs(alice.id, "/docs/sub")
    put(drive, alice, "/docs/file.txt", b"original")
    before = (drive.cursor(alice.id), _tree(drive, alice), drive.user("alice"))
    yield
    assert (drive.cursor(alice.id), _tree(drive, alice), drive.user("alice")) == before


def _tree(drive: Drive, user: UserInfo, path: str = "/") -> list[tuple[str, int]]:
    out = []
    for node in drive.listdir(user.id, path):
        child = f"{path.rstrip('/')}/{node.name}"
        out.append((child, node.size))
        if node.is_folder:
            out.extend(_tree(drive, user, child))
    return out


@pytest.mark.parametrize("path", ["", "/", "//"])
def test_empty_name(drive: Drive, alice: UserInfo, unchanged: None, path: str) -> None:
    """A path whose last name is empty names the root, which cannot be made or written."""
    from core.names import normalize_name

    with pytest.raises(InvalidName):
        normalize_name("")
    with pytest.raises(DriveError):
        drive.mkdir(alice.id, path)
    with pytest.raises(DriveError):
        put(drive, alice, path, b"x")
    with pytest.raises(DriveError):
        drive.move(alice.id, "/docs/file.txt", path)


@pytest.mark.parametrize("bad", ["/docs/.", "/docs/..", "/../etc", "/docs/../../x"])
def test_dot_and_dotdot(drive: Drive, alice: UserInfo, unchanged: None, bad: str) -> None:
    with pytest.raises(InvalidName):
        drive.mkdir(alice.id, bad)
    with pytest.raises(InvalidName):
        put(drive, alice, bad, b"x")


def test_slash_inside_a_name(drive: Drive, alice: UserInfo, unchanged: None) -> None:
    from core.names import normalize_name

    with pytest.raises(InvalidName):
        normalize_name("a/b")
    with pytest.raises(DriveError):
        drive.move(alice.id, "/docs/file.txt", "/nowhere/x")


def test_nul_in_a_name(drive: Drive, alice: UserInfo, unchanged: None) -> None:
    with pytest.raises(InvalidName):
        put(drive, alice, "/docs/bad\x00name", b"x")
    with pytest.raises(InvalidName):
        drive.move(alice.id, "/docs/file.txt", "/docs/x\x00")


def test_name_over_255_bytes(drive: Drive, alice: UserInfo, unchanged: None) -> None:
    with pytest.raises(InvalidName):
        put(drive, alice, "/" + "é" * 128, b"x")  # 256 bytes in UTF-8
    with pytest.raises(InvalidName):
        drive.mkdir(alice.id, "/" + "a" * 256)


@pytest.mark.parametrize("name", [".versions", ".trash", "api"])
def test_reserved_names_at_the_root(
    drive: Drive, alice: UserInfo, unchanged: None, name: str
) -> None:
    with pytest.raises(InvalidName):
        drive.mkdir(alice.id, "/" + name)
    with pytest.raises(InvalidName):
        put(drive, alice, "/" + name, b"x")
    with pytest.raises(InvalidName):
        drive.move(alice.id, "/docs", "/" + name)


def test_reserved_names_are_fine_below_the_root(drive: Drive, alice: UserInfo) -> None:
    drive.mkdir(alice.id, "/sub")
    drive.mkdir(alice.id, "/sub/.versions")
    put(drive, alice, "/sub/.trash", b"only the top of a drive is reserved")
    assert [n.name for n in drive.listdir(alice.id, "/sub")] == [".trash", ".versions"]


def test_name_of_exactly_255_bytes_is_fine(drive: Drive, alice: UserInfo) -> None:
    name = "é" * 127 + "a"
    put(drive, alice, "/" + name, b"x")
    assert drive.listdir(alice.id, "/")[0].name == name


def test_non_nfc_names_are_stored_nfc(drive: Drive, alice: UserInfo) -> None:
    nfd = unicodedata.normalize("NFD", "Café.txt")
    assert nfd != "Café.txt"
    put(drive, alice, "/" + nfd, b"finder")
    assert [n.name for n in drive.listdir(alice.id, "/")] == ["Café.txt"]
    assert get(drive, alice, "/Café.txt") == b"finder"
    with pytest.raises(NameTaken):
        drive.mkdir(alice.id, "/" + nfd)


def test_name_taken_in_target_folder(drive: Drive, alice: UserInfo, unchanged: None) -> None:
    with pytest.raises(NameTaken):
        drive.mkdir(alice.id, "/docs/sub")
    with pytest.raises(NameTaken):
        drive.mkdir(alice.id, "/docs/file.txt")
    with pytest.raises(NameTaken):
        drive.move(alice.id, "/docs/sub", "/docs/file.txt")
    with pytest.raises(NameTaken):
        drive.copy(alice.id, "/docs/file.txt", "/docs/file.txt")
    with pytest.raises(NotAFile):
        put(drive, alice, "/docs/sub", b"a file cannot replace a folder")


def test_moving_a_folder_into_its_own_subtree(
    drive: Drive, alice: UserInfo, unchanged: None
) -> None:
    with pytest.raises(MoveIntoItself):
        drive.move(alice.id, "/docs", "/docs/sub/docs")
    with pytest.raises(MoveIntoItself):
        drive.move(alice.id, "/docs", "/docs/inside")
    with pytest.raises(MoveIntoItself):
        drive.copy(alice.id, "/docs", "/docs/sub/copy")


def test_quota_exceeded(drive: Drive) -> None:
    carol = drive.add_user("carol", "carol-password", quota=5 * 1024 * 1024 // 2)
    put(drive, carol, "/keep.bin", b"k" * 1024 * 1024)
    drive.copy(carol.id, "/keep.bin", "/copy1.bin")  # 2 MiB of 2.5 MiB used
    before = (drive.cursor(carol.id), drive.user("carol"), drive.listdir(carol.id, "/"))
    with pytest.raises(QuotaExceeded):
        put(drive, carol, "/big.bin", bytes(range(256)) * 4 * 1024)  # 1 MiB more
    with pytest.raises(QuotaExceeded):
        drive.copy(carol.id, "/keep.bin", "/copy2.bin")
    with pytest.raises(QuotaExceeded):
        put(drive, carol, "/keep.bin", b"g" * (1024 * 1024 + 600 * 1024))  # grows by 600 KiB
    assert (drive.cursor(carol.id), drive.user("carol"), drive.listdir(carol.id, "/")) == before
    assert drive.user("carol").reserved_bytes == 0
    assert get(drive, carol, "/keep.bin") == b"k" * 1024 * 1024


def test_overwrite_within_quota_counts_only_growth(drive: Drive) -> None:
    dave = drive.add_user("dave", "dave-password", quota=2 * 1024 * 1024)
    put(drive, dave, "/f", b"a" * (1536 * 1024))
    put(drive, dave, "/f", b"b" * (1800 * 1024))  # 1.8 MiB replaces 1.5 MiB: fits
    assert drive.user("dave").used_bytes == 1800 * 1024


def test_unknown_user(drive: Drive) -> None:
    with pytest.raises(UserNotFound):
        drive.user("nobody")
    with pytest.raises(AuthError):
        drive.authenticate("nobody", "whatever-password")


def test_wrong_password(drive: Drive, alice: UserInfo) -> None:
    with pytest.raises(AuthError) as wrong:
        drive.authenticate("alice", "not-her-password")
    assert "wrong user name or password" in str(wrong.value)
    assert drive.authenticate("alice", "alice-password").id == alice.id


def test_corrupted_chunk_on_read(drive: Drive, alice: UserInfo) -> None:
    data = bytes(range(256)) * 8192
    put(drive, alice, "/docs-corrupt.bin", data)
    refs = drive.manifest(alice.id, "/docs-corrupt.bin").chunks
    flip_a_byte(drive.backend.store, refs[0].hash)
    with (
        pytest.raises(ChunkCorrupt) as error,
        drive.open_read(alice.id, "/docs-corrupt.bin") as reader,
    ):
        reader.read()
    assert "/docs-corrupt.bin" in str(error.value)


def test_a_corrupted_chunk_is_refused_unless_its_reader_verifies_it_itself(
    drive: Drive, alice: UserInfo
) -> None:
    data = random.Random(7).randbytes(300_000)  # incompressible: stored raw
    put(drive, alice, "/raw.bin", data)
    refs = drive.manifest(alice.id, "/raw.bin").chunks
    key = refs[0].hash
    assert drive.read_chunk(alice.id, key, verify=False) == drive.read_chunk(alice.id, key)
    flip_a_byte(drive.backend.store, key)
    with pytest.raises(ChunkCorrupt):
        drive.read_chunk(alice.id, key)
    # The sync API's chunk GET: its client checks the hash (and refuses these bytes).
    sent = drive.read_chunk(alice.id, key, verify=False)
    assert len(sent) == len(data) and sent != data[: len(sent)]


def test_missing_chunk_on_read(drive: Drive, alice: UserInfo) -> None:
    put(drive, alice, "/gone.bin", b"z" * 1000)
    refs = drive.manifest(alice.id, "/gone.bin").chunks
    drive.backend.store.delete_many([refs[0].hash])
    with pytest.raises(ChunkMissing) as error, drive.open_read(alice.id, "/gone.bin") as reader:
        reader.read()
    assert "/gone.bin" in str(error.value)


class _BreaksAfter(io.RawIOBase):
    """A request body whose connection drops after ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        self.left = limit

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self.left <= 0:
            raise ConnectionResetError("client went away")
        n = min(n, self.left)
        self.left -= n
        return b"q" * n


def test_dropped_stream_mid_write_keeps_previous_version(
    drive: Drive, alice: UserInfo, unchanged: None
) -> None:
    with pytest.raises(IncompleteUpload):
        drive.write(alice.id, "/docs/file.txt", _BreaksAfter(6 * 1024 * 1024))
    with pytest.raises(IncompleteUpload):
        drive.write(alice.id, "/docs/new.txt", _BreaksAfter(3 * 1024 * 1024))
    with pytest.raises(IncompleteUpload):  # a body shorter than its Content-Length
        drive.write(alice.id, "/docs/file.txt", io.BytesIO(b"short"), expected_size=100)
    assert get(drive, alice, "/docs/file.txt") == b"original"
    assert len(drive.versions(alice.id, "/docs/file.txt")) == 1
