"""Bad WebDAV input gets a clear 4xx and changes nothing (real server process)."""

from __future__ import annotations

import base64
import re
import socket
from urllib.parse import urlsplit

import httpx
import pytest

from core import Drive, UserInfo
from davserver.dav.locks import SqlLockStorage
from tests.support.davbodies import exclusive_lock, multistatus

ALICE = ("alice", "alice-password")
AUTH = base64.b64encode(b"alice:alice-password").decode()


def test_depth_infinity_propfind_is_refused(http: httpx.Client) -> None:
    for headers in ({"Depth": "infinity"}, {}):
        response = http.request("PROPFIND", "/", headers=headers)
        assert response.status_code == 403
        assert "propfind-finite-depth" in response.text


def test_xml_bodies_over_the_cap_are_refused(http: httpx.Client) -> None:
    huge = b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>'
    huge += b" " * (2 * 1024 * 1024)
    assert http.request("PROPFIND", "/", content=huge, headers={"Depth": "0"}).status_code == 413


def test_external_entities_do_not_leak_server_files(http: httpx.Client, drive: Drive,
                                                    alice: UserInfo) -> None:  # fmt: skip
    http.put("/target.txt", content=b"t")
    body = (
        '<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        '<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:x"><D:set><D:prop>'
        "<Z:leak>&xxe;</Z:leak></D:prop></D:set></D:propertyupdate>"
    )
    response = http.request("PROPPATCH", "/target.txt", content=body)
    assert response.status_code == 400
    assert "root:" not in response.text
    assert drive.properties(alice.id, [drive.stat(alice.id, "/target.txt").id]) == {
        drive.stat(alice.id, "/target.txt").id: {}
    }


def test_billion_laughs_is_refused_quickly(http: httpx.Client) -> None:
    entities = '<!ENTITY a0 "lol">' + "".join(
        f'<!ENTITY a{i} "&a{i - 1};&a{i - 1};">' for i in range(1, 20)
    )
    body = (
        f'<?xml version="1.0"?><!DOCTYPE d [{entities}]>'
        '<D:propfind xmlns:D="DAV:"><D:prop><D:getetag>&a19;</D:getetag></D:prop></D:propfind>'
    )
    response = http.request("PROPFIND", "/", content=body, headers={"Depth": "0"})
    assert response.status_code == 400


def _raw_request(url: str, method: str, target: str, headers: str = "") -> str:
    """Send a request line exactly as given (no client-side path cleanup); return the reply."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(
            f"{method} {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: Basic "
            f"{AUTH}\r\nConnection: close\r\n{headers}Content-Length: 0\r\n\r\n".encode()
        )
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    return reply.decode("latin-1")


def test_path_traversal_stays_inside_the_drive(http: httpx.Client, dav_url: str) -> None:
    for target in ("/../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/a/..%2f..%2fetc%2fpasswd"):
        reply = _raw_request(dav_url, "GET", target)
        assert reply.split()[1] in ("400", "403", "404"), (target, reply[:200])
        assert "root:" not in reply
    http.put("/mine.txt", content=b"x")
    for destination in ("http://elsewhere.example/mine.txt", dav_url + "../../outside.txt"):
        reply = _raw_request(dav_url, "MOVE", "/mine.txt", f"Destination: {destination}\r\n")
        assert reply.split()[1] in ("400", "403", "502"), (destination, reply[:200])
    assert http.get("/mine.txt").content == b"x"
    listing = http.request("PROPFIND", "/", headers={"Depth": "1"}).text
    assert re.findall(r"<D:href>/([^<]+)</D:href>", listing) == ["mine.txt"]


def test_copy_and_move_to_a_new_name_answer_201(http: httpx.Client, dav_url: str) -> None:
    http.put("/a.txt", content=b"a")
    copied = http.request("COPY", "/a.txt", headers={"Destination": dav_url + "b.txt"})
    assert copied.status_code == 201
    moved = http.request("MOVE", "/b.txt", headers={"Destination": dav_url + "c.txt"})
    assert moved.status_code == 201
    again = http.request("COPY", "/a.txt", headers={"Destination": dav_url + "c.txt"})
    assert again.status_code == 204


def test_a_put_interrupted_mid_body_keeps_the_previous_version(
    http: httpx.Client, dav_url: str, drive: Drive, alice: UserInfo
) -> None:
    http.put("/doc.bin", content=b"previous")
    parts = urlsplit(dav_url)
    with socket.create_connection((parts.hostname, parts.port)) as sock:
        sock.sendall(
            f"PUT /doc.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {AUTH}\r\n".encode()
            + b"Content-Length: 10000000\r\n\r\n"
            + b"z" * 3_000_000
        )
    with httpx.Client(base_url=dav_url, auth=ALICE) as fresh:
        assert fresh.get("/doc.bin").content == b"previous"
    assert len(drive.versions(alice.id, "/doc.bin")) == 1


@pytest.mark.parametrize(
    "owner",
    ["<D:href>unclosed", "<bad:prefix>x</bad:prefix>", "\x00nul"],
)
def test_a_lock_with_a_broken_owner_leaves_nothing_behind(
    http: httpx.Client, drive: Drive, owner: str
) -> None:
    body = exclusive_lock(owner)
    response = http.request("LOCK", "/never.txt", content=body.encode())
    assert response.status_code == 400
    assert http.get("/never.txt").status_code == 404
    assert drive.locks.all_live() == []


def test_other_users_files_cannot_be_locked_or_listed(
    http: httpx.Client, dav_url: str, drive: Drive, bob: UserInfo
) -> None:
    http.put("/alice-only.txt", content=b"a")
    body = exclusive_lock()
    with httpx.Client(base_url=dav_url, auth=("bob", "bob-password")) as as_bob:
        assert (
            as_bob.request("PROPFIND", "/alice-only.txt", headers={"Depth": "0"}).status_code == 404
        )
        locked = as_bob.request("LOCK", "/alice-only.txt", content=body)
        assert locked.status_code == 201  # a lock-null file in bob's own drive, not alice's
    assert http.put("/alice-only.txt", content=b"still alice's").status_code == 204
    assert [n.name for n in drive.listdir(bob.id, "/")] == ["alice-only.txt"]


# Every encoding libxml2 detects, with and without a byte order mark: a byte search
# for "<!DOCTYPE" finds none of them but UTF-8.
WIDE_ENCODINGS = [
    ("UTF-16", "utf-16"),  # BOM, native order
    ("UTF-16LE", "utf-16-le"),
    ("UTF-16BE", "utf-16-be"),
    ("UTF-32", "utf-32"),  # BOM
    ("UTF-32LE", "utf-32-le"),
    ("UTF-32BE", "utf-32-be"),
]
ENTITY_DTD = '<!DOCTYPE d [<!ENTITY x "unresolved">]>'


def _encoded(declared: str, codec: str, body: str) -> bytes:
    return f'<?xml version="1.0" encoding="{declared}"?>{body}'.encode(codec)


def _stored_properties(drive: Drive, alice: UserInfo, path: str) -> dict[str, bytes]:
    node = drive.stat(alice.id, path).id
    return drive.properties(alice.id, [node])[node]


def test_wide_encoded_dtds_are_refused_and_change_nothing(
    http: httpx.Client, drive: Drive, alice: UserInfo
) -> None:
    http.put("/doc.txt", content=b"d")
    proppatch = (
        f'{ENTITY_DTD}<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:x"><D:set><D:prop>'
        "<Z:note>&x;</Z:note></D:prop></D:set></D:propertyupdate>"
    )
    lock = ENTITY_DTD + exclusive_lock("<D:href>&x;</D:href>").split("?>", 1)[1]
    propfind = (
        f'{ENTITY_DTD}<D:propfind xmlns:D="DAV:"><D:prop><D:getetag>&x;</D:getetag>'
        "</D:prop></D:propfind>"
    )
    for declared, codec in WIDE_ENCODINGS:
        for method, path, body in (
            ("PROPPATCH", "/doc.txt", proppatch),
            ("LOCK", "/doc.txt", lock),
            ("LOCK", "/new.txt", lock),
            ("PROPFIND", "/doc.txt", propfind),
        ):
            response = http.request(
                method, path, content=_encoded(declared, codec, body), headers={"Depth": "0"}
            )
            assert response.status_code == 400, (codec, method, path, response.text)
            assert "DTD" in response.text, (codec, method)
    assert _stored_properties(drive, alice, "/doc.txt") == {}
    assert drive.locks.all_live() == []
    assert http.get("/new.txt").status_code == 404
    assert http.put("/doc.txt", content=b"still writable").status_code == 204


def test_a_refused_entity_leaves_allprop_listings_well_formed(
    http: httpx.Client, drive: Drive, alice: UserInfo
) -> None:
    http.request("MKCOL", "/box")
    http.put("/box/doc.txt", content=b"d")
    body = (
        f'{ENTITY_DTD}<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:x"><D:set><D:prop>'
        "<Z:note>&x;</Z:note></D:prop></D:set></D:propertyupdate>"
    )
    response = http.request("PROPPATCH", "/box/doc.txt", content=_encoded("UTF-16", "utf-16", body))
    assert response.status_code == 400
    assert _stored_properties(drive, alice, "/box/doc.txt") == {}
    for path, depth in (("/box/doc.txt", "0"), ("/box", "1")):
        listing = http.request("PROPFIND", path, headers={"Depth": depth})
        assert listing.status_code == 207
        found = multistatus(listing.content)  # raises on malformed XML
        assert "{urn:x}note" not in found[path if depth == "0" else "/box/doc.txt"]


def test_a_lock_whose_owner_holds_an_entity_leaves_no_lock(
    http: httpx.Client, drive: Drive
) -> None:
    http.put("/held.txt", content=b"h")
    for declared, codec in WIDE_ENCODINGS[:2]:
        body = ENTITY_DTD + exclusive_lock("<D:href>&x;</D:href>").split("?>", 1)[1]
        response = http.request("LOCK", "/held.txt", content=_encoded(declared, codec, body))
        assert 400 <= response.status_code < 500, response.text
        assert "Lock-Token" not in response.headers
    assert drive.locks.all_live() == []
    assert http.put("/held.txt", content=b"not locked").status_code == 204


def test_plain_utf16_bodies_without_a_dtd_still_work(
    http: httpx.Client, drive: Drive, alice: UserInfo
) -> None:
    http.put("/doc.txt", content=b"d")
    body = (
        '<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:x"><D:set><D:prop>'
        "<Z:note>h\u00e9llo</Z:note></D:prop></D:set></D:propertyupdate>"
    )
    response = http.request("PROPPATCH", "/doc.txt", content=_encoded("UTF-16", "utf-16", body))
    assert response.status_code == 207
    listing = http.request("PROPFIND", "/doc.txt", headers={"Depth": "0"})
    assert multistatus(listing.content)["/doc.txt"]["{urn:x}note"] == "h\u00e9llo"
    lockinfo = exclusive_lock("me").split("?>", 1)[1]
    lock = http.request("LOCK", "/doc.txt", content=_encoded("UTF-16", "utf-16", lockinfo))
    assert lock.status_code == 200
    assert "me" in lock.text


def test_a_failing_lock_request_removes_the_lock_it_created(drive: Drive, alice: UserInfo) -> None:
    """The all-or-nothing seam itself: no request body reaches it with a bad owner
    any more (the body check comes first), so it is driven directly."""
    storage = SqlLockStorage(drive.locks, 60)
    lock = {"type": "write", "scope": "exclusive", "depth": "0", "owner": b"<o/>",
            "timeout": 60, "principal": "alice"}  # fmt: skip
    with pytest.raises(RuntimeError), storage.all_or_nothing():
        storage.create(f"/~{alice.id}/doc.txt", dict(lock))
        assert len(drive.locks.all_live()) == 1
        raise RuntimeError("the answer could not be built")
    assert drive.locks.all_live() == []
    with storage.all_or_nothing():
        kept = storage.create(f"/~{alice.id}/doc.txt", dict(lock))
    assert [r.token for r in drive.locks.all_live()] == [kept["token"]]


def test_a_bad_oc_mtime_is_refused_and_changes_nothing(
    http: httpx.Client, dav_url: str, drive: Drive, alice: UserInfo
) -> None:
    http.put("/a.txt", content=b"a")
    before = drive.stat(alice.id, "/a.txt")
    for value in ("99999999999999999999", "-1e30", "nan", "inf", "-1", "1e400", "soon"):
        bad = {"X-OC-Mtime": value}
        moved = {**bad, "Destination": dav_url + "b.txt"}
        for response in (
            http.put("/a.txt", content=b"changed", headers=bad),
            http.put("/new.txt", content=b"new", headers=bad),
            http.request("MKCOL", "/dir", headers=bad),
            http.request("MOVE", "/a.txt", headers=moved),
        ):
            assert response.status_code == 400, (value, response.request.method)
            assert "X-OC-Mtime" in response.text
    after = drive.stat(alice.id, "/a.txt")
    assert (after.version_id, after.mtime_ns) == (before.version_id, before.mtime_ns)
    assert [n.name for n in drive.listdir(alice.id, "/")] == ["a.txt"]
    good = http.put("/a.txt", content=b"later", headers={"X-OC-Mtime": "1700000000"})
    assert good.status_code == 204 and good.headers["X-OC-MTime"] == "accepted"
    assert drive.stat(alice.id, "/a.txt").mtime_ns == 1_700_000_000 * 10**9
