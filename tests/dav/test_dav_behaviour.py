"""What WebDAV clients rely on, checked against the real server process."""

from __future__ import annotations

import os
import unicodedata
from email.utils import parsedate_to_datetime
from urllib.parse import quote

import httpx
import pytest

from core import Drive, UserInfo
from tests.support.davbodies import exclusive_lock

ALICE = ("alice", "alice-password")
BOB = ("bob", "bob-password")


def test_unauthenticated_requests_get_a_basic_challenge(dav_url: str) -> None:
    response = httpx.request("PROPFIND", dav_url, headers={"Depth": "0"})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic ")
    assert "location" not in response.headers


def test_repeated_failed_logins_are_throttled(dav_url: str) -> None:
    statuses = [httpx.get(dav_url, auth=("alice", f"wrong-{i}")).status_code for i in range(12)]
    assert statuses[0] == 401 and statuses[-1] == 429
    assert statuses.count(401) == 6  # six tries, then this name waits at this address
    assert httpx.get(dav_url, auth=ALICE).status_code == 429  # even with the right password


def test_options_advertise_class_2_and_ms_author_via(http: httpx.Client) -> None:
    response = http.request("OPTIONS", "/")
    assert response.headers["DAV"].replace(" ", "").startswith("1,2")
    assert response.headers["MS-Author-Via"] == "DAV"


def test_put_get_range_and_strong_etags(http: httpx.Client, drive: Drive, alice: UserInfo) -> None:
    data = os.urandom(3 * 1024 * 1024)
    created = http.put("/blob.bin", content=data)
    assert created.status_code == 201
    etag = created.headers["ETag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    ranged = http.get("/blob.bin", headers={"Range": "bytes=2000000-2000099"})
    assert ranged.status_code == 206 and ranged.content == data[2000000:2000100]
    assert http.get("/blob.bin").headers["ETag"] == etag
    stale = http.put("/blob.bin", content=b"lost update", headers={"If-Match": '"1-0000"'})
    assert stale.status_code == 412
    assert http.put("/blob.bin", content=b"new", headers={"If-None-Match": "*"}).status_code == 412
    fresh = http.put("/blob.bin", content=b"won", headers={"If-Match": etag})
    assert fresh.status_code == 204 and fresh.headers["ETag"] != etag
    assert http.get("/blob.bin").content == b"won"
    assert len(drive.versions(alice.id, "/blob.bin")) == 2


def test_lock_and_unlock_leave_etag_and_mtime_alone(http: httpx.Client) -> None:
    http.put("/doc.txt", content=b"text")
    before = http.head("/doc.txt").headers
    body = exclusive_lock(owner="me")
    locked = http.request("LOCK", "/doc.txt", content=body, headers={"Timeout": "Second-60"})
    assert locked.status_code == 200
    token = locked.headers["Lock-Token"]
    during = http.head("/doc.txt").headers
    http.request("UNLOCK", "/doc.txt", headers={"Lock-Token": token})
    after = http.head("/doc.txt").headers
    for headers in (during, after):
        assert headers["ETag"] == before["ETag"]
        assert headers["Last-Modified"] == before["Last-Modified"]


def test_office_save_by_overwriting_move_keeps_one_node_and_its_history(
    http: httpx.Client, drive: Drive, alice: UserInfo
) -> None:
    http.put("/report.docx", content=b"version one")
    node = drive.stat(alice.id, "/report.docx")
    http.put("/~WRL0001.tmp", content=b"version two")
    moved = http.request(
        "MOVE", "/~WRL0001.tmp",
        headers={"Destination": http.base_url.join("/report.docx").__str__(), "Overwrite": "T"},
    )  # fmt: skip
    assert moved.status_code in (201, 204)
    assert drive.stat(alice.id, "/report.docx").id == node.id
    assert [v.number for v in drive.versions(alice.id, "/report.docx")] == [1, 2]
    assert http.get("/report.docx").content == b"version two"
    assert http.get("/~WRL0001.tmp").status_code == 404


def test_explorer_zero_byte_put_then_lock_then_put_leaves_one_version(
    http: httpx.Client, drive: Drive, alice: UserInfo
) -> None:
    assert http.put("/new.txt", content=b"").status_code == 201
    body = exclusive_lock()
    token = http.request("LOCK", "/new.txt", content=body).headers["Lock-Token"]
    put = http.put("/new.txt", content=b"the content", headers={"If": f"({token})"})
    assert put.status_code == 204
    versions = drive.versions(alice.id, "/new.txt")
    assert [(v.number, v.size) for v in versions] == [(1, len(b"the content"))]


def test_lock_on_an_unmapped_url_creates_an_empty_file(http: httpx.Client) -> None:
    body = exclusive_lock()
    assert http.request("LOCK", "/fresh.odt", content=body).status_code == 201
    assert http.get("/fresh.odt").content == b""


def test_x_oc_mtime_is_honoured_and_acknowledged(http: httpx.Client, drive: Drive,
                                                 alice: UserInfo) -> None:  # fmt: skip
    put = http.put("/m.txt", content=b"m", headers={"X-OC-Mtime": "1600000000.5"})
    assert put.headers.get("X-OC-MTime") == "accepted"
    assert drive.stat(alice.id, "/m.txt").mtime_ns == 1_600_000_000_500_000_000
    stamp = parsedate_to_datetime(http.head("/m.txt").headers["Last-Modified"]).timestamp()
    assert stamp == 1_600_000_000
    made = http.request("MKCOL", "/dir", headers={"X-OC-Mtime": "1500000000"})
    assert made.headers.get("X-OC-MTime") == "accepted"
    assert drive.stat(alice.id, "/dir").mtime_ns == 1_500_000_000 * 10**9


def test_users_see_only_their_own_drive(http: httpx.Client, dav_url: str) -> None:
    http.put("/private.txt", content=b"alice only")
    with httpx.Client(base_url=dav_url, auth=BOB) as bob:
        assert bob.get("/private.txt").status_code == 404
        assert bob.put("/private.txt", content=b"bob's own").status_code == 201
        listing = bob.request("PROPFIND", "/", headers={"Depth": "1"}).text
    assert "private.txt" in listing
    assert http.get("/private.txt").content == b"alice only"


def test_healthz_needs_no_login(dav_url: str) -> None:
    response = httpx.get(dav_url + "healthz")
    assert response.status_code == 200 and response.text == "ok\n"


def test_quota_properties_follow_the_users_quota(http: httpx.Client, drive: Drive) -> None:
    drive.set_quota("alice", 10 * 1024 * 1024)
    http.put("/q.bin", content=b"x" * 1000)
    body = (
        '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:quota-used-bytes/>'
        "<D:quota-available-bytes/></D:prop></D:propfind>"
    )
    text = http.request("PROPFIND", "/", content=body, headers={"Depth": "0"}).text
    assert "<D:quota-used-bytes>1000</D:quota-used-bytes>" in text
    assert f"<D:quota-available-bytes>{10 * 1024 * 1024 - 1000}</D:quota-available-bytes>" in text
    too_big = http.put("/big.bin", content=b"y" * (11 * 1024 * 1024))
    assert too_big.status_code == 507


@pytest.mark.parametrize("name", ["._report.docx", ".DS_Store", "~$report.docx",
                                  ".~lock.report.odt#", "Thumbs.db"])  # fmt: skip
def test_file_manager_and_office_side_files_are_accepted(http: httpx.Client, name: str) -> None:
    url = "/" + quote(name)
    assert http.put(url, content=b"side file").status_code == 201
    assert http.get(url).content == b"side file"


def test_finder_nfd_names_land_on_the_nfc_node(http: httpx.Client, drive: Drive,
                                               alice: UserInfo) -> None:  # fmt: skip
    nfd = unicodedata.normalize("NFD", "Café.txt")
    assert http.put("/" + quote(nfd), content=b"from finder").status_code == 201
    assert [n.name for n in drive.listdir(alice.id, "/")] == ["Café.txt"]
    assert http.get("/" + quote("Café.txt")).content == b"from finder"
    assert http.put("/" + quote(nfd), content=b"again").status_code == 204


def test_a_file_and_a_folder_cannot_share_a_name(http: httpx.Client) -> None:
    http.put("/thing", content=b"file")
    assert http.request("MKCOL", "/thing").status_code == 405
    http.request("MKCOL", "/folder")
    assert http.put("/folder", content=b"x").status_code == 405
    assert http.get("/thing").content == b"file"


def test_win32_last_modified_time_sets_the_mtime(http: httpx.Client, drive: Drive,
                                                 alice: UserInfo) -> None:  # fmt: skip
    http.put("/w.txt", content=b"w")
    body = (
        '<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" '
        'xmlns:Z="urn:schemas-microsoft-com:"><D:set><D:prop>'
        "<Z:Win32LastModifiedTime>Wed, 02 Jan 2019 03:04:05 GMT</Z:Win32LastModifiedTime>"
        "<Z:Win32FileAttributes>00000020</Z:Win32FileAttributes>"
        "</D:prop></D:set></D:propertyupdate>"
    )
    response = http.request(
        "PROPPATCH", "/w.txt", content=body,
        headers={"User-Agent": "Microsoft-WebDAV-MiniRedir/10.0.19045"},
    )  # fmt: skip
    assert response.status_code == 207 and "200 OK" in response.text
    assert drive.stat(alice.id, "/w.txt").mtime_ns == 1546398245 * 10**9


def _oc_lastmodified(value: str) -> str:
    """The PROPPATCH rclone's owncloud and nextcloud vendors send (rclone >= 1.63)."""
    return (
        '<?xml version="1.0" encoding="utf-8" ?>\n<D:propertyupdate xmlns:D="DAV:">\n'
        f' <D:set>\n  <D:prop>\n   <lastmodified xmlns="DAV:">{value}</lastmodified>\n'
        "  </D:prop>\n </D:set>\n</D:propertyupdate>\n"
    )


def test_owncloud_lastmodified_sets_the_mtime(http: httpx.Client, drive: Drive,
                                              alice: UserInfo) -> None:  # fmt: skip
    http.put("/oc.txt", content=b"oc")
    response = http.request("PROPPATCH", "/oc.txt", content=_oc_lastmodified("1600000000"))
    assert response.status_code == 207 and "200 OK" in response.text, response.text
    assert drive.stat(alice.id, "/oc.txt").mtime_ns == 1_600_000_000 * 10**9
    for bad in ("yesterday", "-5", "nan"):
        refused = http.request("PROPPATCH", "/oc.txt", content=_oc_lastmodified(bad))
        assert "200 OK" not in refused.text, (bad, refused.text)
    assert drive.stat(alice.id, "/oc.txt").mtime_ns == 1_600_000_000 * 10**9


def test_oversized_headers_are_refused(dav_url: str) -> None:
    response = httpx.get(dav_url, auth=ALICE, headers={"X-Filler": "a" * 100_000})
    assert response.status_code in (400, 413, 431)
