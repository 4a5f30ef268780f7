"""Restoring an old version makes the file look changed now, through every face that
restores (the drive service, ``drivegate restore``, the sync API, a WebDAV COPY out
of ``/.versions``), on both backends: the restored file's new version is modified
now and the old versions keep their own times in the list."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from email.utils import parsedate_to_datetime
from pathlib import Path

import httpx

from core import Drive, UserInfo
from core.cli.common import when
from tests.conftest import BackendSetup, get, put
from tests.support.davbodies import multistatus

OLD = 1_600_000_000 * 10**9  # 2020-09-13
NEWER = 1_650_000_000 * 10**9  # 2022-04-15


def _two_versions(drive: Drive, user: UserInfo, path: str = "/report.txt") -> None:
    put(drive, user, path, b"first draft", mtime_ns=OLD)
    put(drive, user, path, b"second draft", mtime_ns=NEWER)


def _check_restored(drive: Drive, user: UserInfo, started_ns: int, number: int = 3) -> None:
    """Version ``number`` is the restore of version 1: modified at or after
    ``started_ns`` (whole seconds: WebDAV's dates have no fraction), the others as
    they were."""
    node = drive.stat(user.id, "/report.txt")
    assert get(drive, user, "/report.txt") == b"first draft"
    assert node.version_number == number
    assert node.mtime_ns >= started_ns // 10**9 * 10**9, "the restored file keeps an old time"
    history = drive.versions(user.id, "/report.txt")
    assert [(v.number, v.origin) for v in history][-1] == (number, "restore")
    assert [v.mtime_ns for v in history] == [OLD, NEWER, node.mtime_ns]


def test_restoring_through_the_drive_service_is_a_change_made_now(
    drive: Drive, alice: UserInfo
) -> None:
    _two_versions(drive, alice)
    started = time.time_ns()
    restored = drive.restore_version(alice.id, "/report.txt", 1)
    assert restored.mtime_ns >= started
    _check_restored(drive, alice, started)
    again = drive.copy_version(alice.id, "/report.txt", 2, "/report.txt", overwrite=True)
    assert again.mtime_ns >= started and again.version_number == 4


def test_a_copy_of_an_old_version_elsewhere_keeps_that_versions_time(
    drive: Drive, alice: UserInfo
) -> None:
    _two_versions(drive, alice)
    put(drive, alice, "/other.txt", b"other")
    copied = drive.copy_version(alice.id, "/report.txt", 1, "/copy.txt")
    assert copied.mtime_ns == OLD
    over = drive.copy_version(alice.id, "/report.txt", 1, "/other.txt", overwrite=True)
    assert over.mtime_ns == OLD
    assert drive.versions(alice.id, "/other.txt")[-1].origin == "copy"


def test_drivegate_restore_is_a_change_made_now(
    backend: BackendSetup, drive: Drive, alice: UserInfo, tmp_path: Path
) -> None:
    _two_versions(drive, alice)
    started = time.time_ns()
    done = subprocess.run(
        [sys.executable, "-m", "drivegate", "restore", "/report.txt", "--version", "1",
         "--user", "alice"],
        env={**os.environ, **backend.env}, cwd=tmp_path, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "as version 3" in done.stdout
    _check_restored(drive, alice, started)
    listed = subprocess.run(
        [sys.executable, "-m", "drivegate", "versions", "/report.txt", "--user", "alice"],
        env={**os.environ, **backend.env}, cwd=tmp_path, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    rows = listed.stdout.splitlines()
    assert "MODIFIED" in rows[0]
    assert when(OLD / 1e9) in rows[1] and "restore" in rows[3], listed.stdout
    assert when(OLD / 1e9) not in rows[3]


def test_the_sync_apis_restore_is_a_change_made_now(
    api: httpx.Client, drive: Drive, alice: UserInfo
) -> None:
    _two_versions(drive, alice)
    node_id = drive.stat(alice.id, "/report.txt").id
    started = time.time_ns()
    restored = api.post(f"/nodes/{node_id}/versions/1/restore")
    assert restored.status_code == 200, restored.text
    assert restored.json()["mtime_ns"] >= started
    listed = api.get(f"/nodes/{node_id}/versions").json()["versions"]
    assert [v["mtime_ns"] for v in listed][:2] == [OLD, NEWER]
    assert listed[2]["mtime_ns"] == restored.json()["mtime_ns"]
    _check_restored(drive, alice, started)


def _modified(http: httpx.Client, path: str) -> dict[str, int]:
    """Depth 1 listing of the folder ``path``: each member's ``getlastmodified`` in
    seconds (the folder itself left out)."""
    listing = http.request("PROPFIND", path, headers={"Depth": "1"})
    assert listing.status_code == 207, listing.text
    return {
        href.rstrip("/").rsplit("/", 1)[-1]: int(parsedate_to_datetime(props[key]).timestamp())
        for href, props in multistatus(listing.content).items()
        if href != path and (key := "{DAV:}getlastmodified") in props
    }


def test_a_webdav_copy_out_of_versions_is_a_change_made_now(
    http: httpx.Client, drive: Drive, alice: UserInfo
) -> None:
    _two_versions(drive, alice)
    versions = _modified(http, "/.versions/report.txt/")
    first = next(name for name in versions if "(v1," in name)
    assert sorted(versions.values()) == [OLD // 10**9, NEWER // 10**9]
    started = time.time_ns()
    restored = http.request(
        "COPY", f"/.versions/report.txt/{first}",
        headers={"Destination": str(http.base_url.join("/report.txt"))},
    )  # fmt: skip
    assert restored.status_code == 204, restored.text
    assert _modified(http, "/")["report.txt"] >= started // 10**9
    after = _modified(http, "/.versions/report.txt/")
    assert after[first] == OLD // 10**9, "the old version lost its time"
    assert len(after) == 3
    _check_restored(drive, alice, started)


def test_a_webdav_restore_honours_x_oc_mtime(
    http: httpx.Client, drive: Drive, alice: UserInfo
) -> None:
    _two_versions(drive, alice)
    first = next(name for name in _modified(http, "/.versions/report.txt/") if "(v1," in name)
    restored = http.request(
        "COPY", f"/.versions/report.txt/{first}",
        headers={"Destination": str(http.base_url.join("/report.txt")), "X-OC-Mtime": "1700000000"},
    )  # fmt: skip
    assert restored.status_code == 204, restored.text
    assert restored.headers["X-OC-MTime"] == "accepted"
    assert drive.stat(alice.id, "/report.txt").mtime_ns == 1_700_000_000 * 10**9
