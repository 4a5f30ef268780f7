"""``/.versions`` and ``/.trash``: old versions and deleted items as read-only WebDAV
collections, against the real server process on both backends."""

from __future__ import annotations

import re

import httpx

from core import Drive, UserInfo
from tests.support.davbodies import exclusive_lock, multistatus

BOB = ("bob", "bob-password")
ORIGINAL = "{urn:drivegate}original-location"


def listing(http: httpx.Client, path: str) -> dict[str, dict[str, str]]:
    response = http.request("PROPFIND", path, headers={"Depth": "1"})
    assert response.status_code == 207, response.text
    return multistatus(response.content)


def member_names(http: httpx.Client, path: str) -> list[str]:
    """The names listed in a Depth:1 PROPFIND of ``path`` (the folder itself left out)."""
    prefix = path.rstrip("/") + "/"
    return sorted(href[len(prefix) :].rstrip("/") for href in listing(http, path) if href != prefix)


def test_the_root_listing_hides_both_and_neither_name_can_be_taken(http: httpx.Client) -> None:
    http.put("/a.txt", content=b"a")
    assert member_names(http, "/") == ["a.txt"]
    assert http.put("/.trash", content=b"x").status_code in (403, 405)
    assert http.request("MKCOL", "/.versions").status_code in (403, 405)
    assert http.request("MKCOL", "/.versions/new").status_code == 403
    assert http.put("/.versions/b.txt", content=b"x").status_code == 403
    moved = http.request(
        "MOVE", "/a.txt", headers={"Destination": str(http.base_url.join("/.trash/a.txt"))}
    )
    assert moved.status_code == 403
    assert http.get("/a.txt").content == b"a"


def test_versions_are_listed_readable_and_copied_back_as_a_restore(
    http: httpx.Client, drive: Drive, alice: UserInfo
) -> None:
    http.request("MKCOL", "/docs")
    for text in (b"first", b"second", b"third"):
        assert http.put("/docs/report.odt", content=text).status_code in (201, 204)
    assert member_names(http, "/.versions/") == ["docs"]
    assert member_names(http, "/.versions/docs/") == ["report.odt"]
    names = member_names(http, "/.versions/docs/report.odt/")
    assert len(names) == 3
    pattern = r"report \(v(\d), \d{4}-\d\d-\d\d \d\d-\d\d-\d\d\)\.odt"
    assert [re.fullmatch(pattern, n).group(1) for n in names] == ["1", "2", "3"]  # type: ignore[union-attr]
    first = f"/.versions/docs/report.odt/{names[0]}"
    assert http.get(first).content == b"first"
    assert http.get(first, headers={"Range": "bytes=1-3"}).content == b"irs"

    restored = http.request(
        "COPY", first, headers={"Destination": str(http.base_url.join("/docs/report.odt"))}
    )
    assert restored.status_code == 204
    assert http.get("/docs/report.odt").content == b"first"
    history = drive.versions(alice.id, "/docs/report.odt")
    assert [v.number for v in history] == [1, 2, 3, 4]  # history kept: a new version
    assert history[-1].origin == "restore"

    second = f"/.versions/docs/report.odt/{names[1]}"
    copied = http.request(
        "COPY", second, headers={"Destination": str(http.base_url.join("/second.odt"))}
    )
    assert copied.status_code == 201
    assert http.get("/second.odt").content == b"second"


def test_versions_cannot_be_changed(http: httpx.Client) -> None:
    http.put("/a.txt", content=b"v1")
    (name,) = member_names(http, "/.versions/a.txt/")
    version = f"/.versions/a.txt/{name}"
    assert http.put(version, content=b"changed").status_code == 403
    assert http.delete(version).status_code == 403
    assert http.request("LOCK", version, content=exclusive_lock()).status_code == 403
    proppatch = (
        '<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:x">'
        "<D:set><D:prop><Z:p>v</Z:p></D:prop></D:set></D:propertyupdate>"
    )
    assert http.request("PROPPATCH", version, content=proppatch).status_code in (403, 207)
    assert "urn:x" not in http.request("PROPFIND", version, headers={"Depth": "0"}).text
    assert http.get(version).content == b"v1"
    assert http.get("/.versions/a.txt/a (v9, 2000-01-01 00-00-00).txt").status_code == 404


def test_trash_lists_reads_restores_and_purges(
    http: httpx.Client, drive: Drive, alice: UserInfo
) -> None:
    http.request("MKCOL", "/docs")
    http.request("MKCOL", "/docs/sub")
    http.put("/docs/a.txt", content=b"alpha")
    http.put("/docs/sub/deep.txt", content=b"deep")
    assert http.delete("/docs/a.txt").status_code == 204
    assert http.delete("/docs/sub").status_code == 204

    entries = listing(http, "/.trash/")
    assert entries["/.trash/a.txt"][ORIGINAL] == "/docs/a.txt"
    assert entries["/.trash/sub/"][ORIGINAL] == "/docs/sub"
    assert http.get("/.trash/a.txt").content == b"alpha"
    assert member_names(http, "/.trash/sub/") == ["deep.txt"]
    assert http.get("/.trash/sub/deep.txt").content == b"deep"

    restored = http.request(
        "MOVE", "/.trash/a.txt", headers={"Destination": str(http.base_url.join("/back.txt"))}
    )
    assert restored.status_code == 201
    assert http.get("/back.txt").content == b"alpha"
    assert member_names(http, "/.trash/") == ["sub"]

    assert http.delete("/.trash/sub/deep.txt").status_code == 403  # purge whole items only
    assert http.delete("/.trash/sub").status_code == 204
    assert member_names(http, "/.trash/") == []
    assert drive.trash(alice.id) == []


def test_trash_names_stay_unique_and_other_users_see_nothing(
    http: httpx.Client, dav_url: str
) -> None:
    for text in (b"one", b"two"):
        http.put("/same.txt", content=text)
        http.delete("/same.txt")
    names = member_names(http, "/.trash/")
    assert len(names) == 2 and all(n.startswith("same (deleted ") for n in names)
    assert sorted(http.get(f"/.trash/{n}").content for n in names) == [b"one", b"two"]
    with httpx.Client(base_url=dav_url, auth=BOB) as bob:
        assert member_names(bob, "/.trash/") == []
        assert bob.get(f"/.trash/{names[0]}").status_code == 404
    assert http.delete("/.trash/").status_code == 204  # empties the trash
    assert member_names(http, "/.trash/") == []


def test_restoring_over_an_existing_file_needs_overwrite(http: httpx.Client) -> None:
    http.put("/a.txt", content=b"old")
    http.delete("/a.txt")
    http.put("/a.txt", content=b"new")
    refused = http.request(
        "MOVE",
        "/.trash/a.txt",
        headers={"Destination": str(http.base_url.join("/a.txt")), "Overwrite": "F"},
    )
    assert refused.status_code == 412
    assert http.get("/a.txt").content == b"new"
    replaced = http.request(
        "MOVE", "/.trash/a.txt", headers={"Destination": str(http.base_url.join("/a.txt"))}
    )
    assert replaced.status_code == 204
    assert http.get("/a.txt").content == b"old"
    assert len(member_names(http, "/.versions/a.txt/")) == 2  # the live file kept its history
