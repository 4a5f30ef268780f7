"""Depth:1 PROPFIND: constant SQL cost whatever the folder size, and a streamed body."""

from __future__ import annotations

import hashlib
import io
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core import Drive, UserInfo
from tests.conftest import ALICE, BackendSetup
from tests.support.apiclient import commit
from tests.support.davbodies import exclusive_lock, multistatus
from tests.support.servers import drivegate_server

PROPPATCH = (
    '<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:test">'
    "<D:set><D:prop><Z:colour>blue</Z:colour></D:prop></D:set></D:propertyupdate>"
)


@pytest.fixture
def logged_server(
    backend: BackendSetup, drive: Drive, alice: UserInfo, tmp_path: Path
) -> Iterator[tuple[str, Path]]:
    log = tmp_path / "server.log"
    with drivegate_server(backend.env, cwd=tmp_path, log=log) as url:
        yield url, log


def statements_of(log: Path, method: str, path: str) -> int:
    """The ``sql=N`` of the last logged request ``method path`` (waits for the line)."""
    line = rf" {method} {re.escape(path)} \d+ \d+ \S+ \S+ sql=(\d+) in=\d+$"
    pattern = re.compile(line, re.MULTILINE)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = pattern.findall(log.read_text())
        if found:
            return int(found[-1])
        time.sleep(0.05)
    raise AssertionError(f"no log line for {method} {path}:\n{log.read_text()[-2000:]}")


def fill(drive: Drive, user: UserInfo, folder: str, count: int) -> None:
    drive.mkdir(user.id, folder)
    for i in range(count):
        drive.write(user.id, f"{folder}/f{i:04d}.txt", io.BytesIO(b"x" * i))
        if i % 10 == 0:
            drive.mkdir(user.id, f"{folder}/d{i:04d}")


def test_a_listing_costs_the_same_queries_for_5_or_300_members(
    logged_server: tuple[str, Path], drive: Drive, alice: UserInfo
) -> None:
    url, log = logged_server
    fill(drive, alice, "/small", 5)
    fill(drive, alice, "/big", 300)
    with httpx.Client(base_url=url, auth=ALICE, timeout=60) as http:
        for folder in ("/small", "/big"):
            # Some members locked and some with dead properties: those are batched too.
            for name in ("f0001.txt", "f0003.txt", "d0000"):
                assert http.request("PROPPATCH", f"{folder}/{name}", content=PROPPATCH).is_success
                assert http.request("LOCK", f"{folder}/{name}", content=exclusive_lock()).is_success
        cost = {}
        for folder, members in (("/small", 5 + 1), ("/big", 300 + 30)):
            response = http.request("PROPFIND", folder + "/", headers={"Depth": "1"})
            assert response.status_code == 207
            listed = multistatus(response.content)
            assert len(listed) == members + 1
            locked = listed[f"{folder}/f0003.txt"]["{DAV:}lockdiscovery"]
            assert "opaquelocktoken:" in locked
            assert listed[f"{folder}/d0000/"]["{urn:test}colour"] == "blue"
            assert "opaquelocktoken:" not in listed[f"{folder}/f0002.txt"]["{DAV:}lockdiscovery"]
            cost[folder] = statements_of(log, "PROPFIND", folder + "/")
    assert cost["/small"] == cost["/big"]


def test_a_large_listing_is_streamed_not_built_whole(
    logged_server: tuple[str, Path], drive: Drive, alice: UserInfo
) -> None:
    url, _ = logged_server
    fill(drive, alice, "/many", 400)
    with (
        httpx.Client(base_url=url, auth=ALICE, timeout=60) as http,
        http.stream("PROPFIND", "/many/", headers={"Depth": "1"}) as response,
    ):
        assert response.status_code == 207
        assert response.headers.get("transfer-encoding") == "chunked"
        assert "content-length" not in response.headers
        body = response.read()
    assert len(multistatus(body)) == 1 + 400 + 40


def test_propfind_variants_still_answer_correctly(http: httpx.Client) -> None:
    http.put("/a.txt", content=b"abc")
    names = http.request(
        "PROPFIND",
        "/a.txt",
        headers={"Depth": "0"},
        content='<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:propname/></D:propfind>',
    )
    assert names.status_code == 207 and "<D:getcontentlength/>" in names.text
    named = http.request(
        "PROPFIND",
        "/a.txt",
        headers={"Depth": "0"},
        content='<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop>'
        "<D:getcontentlength/><D:nosuchprop/></D:prop></D:propfind>",
    )
    props = multistatus(named.content)["/a.txt"]
    assert props == {"{DAV:}getcontentlength": "3"}
    assert "404 Not Found" in named.text
    bad = http.request(
        "PROPFIND", "/a.txt", headers={"Depth": "0"}, content="<D:lockinfo xmlns:D='DAV:'/>"
    )
    assert bad.status_code == 400
    assert http.request("PROPFIND", "/missing", headers={"Depth": "1"}).status_code == 404


def test_allprop_of_a_listing_matches_wsgidav_for_locked_and_propped_members(
    http: httpx.Client,
) -> None:
    """The templated allprop answers what WsgiDAV's own PROPFIND (taken when a
    conditional header is sent) answers, member by member."""
    assert http.request("MKCOL", "/w").status_code == 201
    assert http.request("MKCOL", "/w/sub").status_code == 201
    for name in ("plain.txt", "a & b <c>.txt", "locked.txt"):
        assert http.put(f"/w/{name}", content=b"hello").is_success
    for name in ("locked.txt", "sub"):
        assert http.request("PROPPATCH", f"/w/{name}", content=PROPPATCH).is_success
    assert http.request("LOCK", "/w/locked.txt", content=exclusive_lock()).is_success
    fast = http.request("PROPFIND", "/w/", headers={"Depth": "1"})
    generic = http.request(
        "PROPFIND",
        "/w/",
        headers={"Depth": "1", "If-Unmodified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"},
    )
    assert fast.status_code == generic.status_code == 207
    listed = multistatus(fast.content)
    assert listed == multistatus(generic.content)
    assert len(listed) == 5
    assert listed["/w/locked.txt"]["{urn:test}colour"] == "blue"
    assert "opaquelocktoken:" in listed["/w/locked.txt"]["{DAV:}lockdiscovery"]
    assert listed["/w/plain.txt"]["{DAV:}lockdiscovery"] == ""
    assert listed["/w/sub/"]["{urn:test}colour"] == "blue"


CHECKSUMS = "{http://owncloud.org/ns}checksums"
ASK_CHECKSUMS = (
    '<d:propfind xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns">'
    "<d:prop><oc:checksums/><d:getcontentlength/></d:prop></d:propfind>"
)


def test_files_offer_the_sha256_the_server_keeps_as_oc_checksums(
    http: httpx.Client, api: httpx.Client
) -> None:
    """``oc:checksums`` (what ownCloud servers answer) holds ``SHA256:<hex>`` when the
    server knows the file's sum, in named PROPFINDs, allprop and WsgiDAV's own path;
    folders and files whose sum is unknown have none; it cannot be set."""
    data = os.urandom(3 * 1024 * 1024 + 5)
    assert http.request("MKCOL", "/s").status_code == 201
    assert http.put("/s/put.bin", content=data).status_code == 201
    assert http.put("/s/empty.txt", content=b"").status_code == 201
    folder_id = next(n["id"] for n in api.get("/tree").json()["nodes"] if n["name"] == "s")
    assert commit(api, data[::-1], parent_id=folder_id, name="nosum.bin").status_code == 201
    named = multistatus(
        http.request("PROPFIND", "/s/", headers={"Depth": "1"}, content=ASK_CHECKSUMS).content
    )
    assert named["/s/put.bin"][CHECKSUMS] == f"SHA256:{hashlib.sha256(data).hexdigest()}"
    assert named["/s/empty.txt"][CHECKSUMS] == f"SHA256:{hashlib.sha256(b'').hexdigest()}"
    assert CHECKSUMS not in named["/s/nosum.bin"] and CHECKSUMS not in named["/s/"]
    assert named["/s/nosum.bin"]["{DAV:}getcontentlength"] == str(len(data))
    fast = multistatus(http.request("PROPFIND", "/s/", headers={"Depth": "1"}).content)
    generic = http.request(
        "PROPFIND", "/s/put.bin",
        headers={"Depth": "0", "If-Unmodified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"},
    )  # fmt: skip
    assert fast["/s/put.bin"][CHECKSUMS] == named["/s/put.bin"][CHECKSUMS]
    assert multistatus(generic.content)["/s/put.bin"] == fast["/s/put.bin"]
    assert CHECKSUMS not in fast["/s/nosum.bin"]
    forged = http.request(
        "PROPPATCH", "/s/put.bin",
        content='<?xml version="1.0"?><d:propertyupdate xmlns:d="DAV:" '
        'xmlns:oc="http://owncloud.org/ns"><d:set><d:prop><oc:checksums>'
        "<oc:checksum>SHA1:0000</oc:checksum></oc:checksums></d:prop></d:set>"
        "</d:propertyupdate>",
    )  # fmt: skip
    assert forged.status_code == 207 and "403 Forbidden" in forged.text, forged.text
    again = http.request("PROPFIND", "/s/put.bin", headers={"Depth": "0"}, content=ASK_CHECKSUMS)
    assert multistatus(again.content)["/s/put.bin"][CHECKSUMS] == named["/s/put.bin"][CHECKSUMS]
