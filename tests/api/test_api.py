"""The sync API (``/.drivegate/api/v1``) against a real server process, on both backends."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from cdc.chunking import cut_bytes
from core import Drive, LockRecord, UserInfo
from davserver.api.models import ManifestOut
from tests.conftest import ALICE, BackendSetup
from tests.support.apiclient import Json, commit, error_code, put_chunks, unchanged, whole_tree
from tests.support.davbodies import exclusive_lock
from tests.support.servers import drivegate_server

BOB = ("bob", "bob-password")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def me(api: httpx.Client) -> Json:
    answer: Json = api.get("/me").json()
    return answer


def node_named(api: httpx.Client, name: str) -> Json:
    return next(node for node in whole_tree(api).values() if node["name"] == name)


def lock(http: httpx.Client, path: str, **headers: str) -> str:
    answer = http.request("LOCK", path, content=exclusive_lock("tester"), headers=headers)
    assert answer.status_code in (200, 201), answer.text
    return answer.headers["Lock-Token"].strip("<>")


@contextmanager
def api_client(url: str, auth: tuple[str, str] = ALICE) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url + ".drivegate/api/v1", auth=auth, timeout=60) as client:
        yield client


# who am I --------------------------------------------------------------------


def test_me_names_the_user_the_root_the_cursor_and_the_usage(
    api: httpx.Client, http: httpx.Client
) -> None:
    first = me(api)
    assert (first["user"], first["server"], first["api_version"]) == ("alice", "drivegate", 1)
    assert (first["quota"], first["used"]) == (None, 0)
    http.put("/a.txt", content=b"abc")
    second = me(api)
    assert (second["cursor"], second["used"]) == (first["cursor"] + 1, 3)
    root = api.get(f"/nodes/{first['root_id']}").json()
    assert (root["kind"], root["parent_id"], root["version"]) == ("folder", None, None)


def test_an_app_token_logs_in_too(drive: Drive, dav_url: str) -> None:
    token = drive.create_token("alice", "laptop")
    with api_client(dav_url, ("alice", token)) as client:
        assert client.get("/me").json()["user"] == "alice"


# the tree and the change feed ------------------------------------------------


def _remove(replica: dict[int, Json], node_id: int) -> None:
    """Drop a node and everything the replica holds below it."""
    doomed = {node_id}
    while True:
        below = {i for i, node in replica.items() if node["parent_id"] in doomed} - doomed
        if not below:
            break
        doomed |= below
    for gone in doomed:
        replica.pop(gone, None)


def _catch_up(api: httpx.Client, replica: dict[int, Json], cursor: int) -> int:
    """Apply the changes after ``cursor`` as a sync client does; return the new cursor."""
    while True:
        page = api.get("/changes", params={"cursor": cursor, "limit": 4}).json()
        for change in page["changes"]:
            if change["node"] is None:
                _remove(replica, change["node_id"])
            else:
                replica[change["node_id"]] = change["node"]
        cursor = page["cursor"]
        if not page["more"]:
            return cursor


def test_paging_the_tree_then_applying_changes_from_the_first_cursor_is_exact(
    api: httpx.Client, http: httpx.Client, drive: Drive, alice: UserInfo
) -> None:
    for folder in ("/a", "/a/b", "/c", "/d"):
        assert http.request("MKCOL", folder).status_code == 201
    for path in ("/a/1.txt", "/a/b/2.txt", "/c/3.txt", "/d/4.txt", "/5.txt"):
        assert http.put(path, content=path.encode()).status_code == 201
    replica: dict[int, Json] = {}
    page = api.get("/tree", params={"limit": 3}).json()
    first_cursor = page["cursor"]
    # The drive moves on while the client pages through it.
    http.put("/a/1.txt", content=b"new content")
    http.request("MOVE", "/d/4.txt", headers={"Destination": str(http.base_url.join("/a/4.txt"))})
    http.delete("/c")
    http.put("/6.txt", content=b"six")
    pages = 1
    while True:
        replica.update({node["id"]: node for node in page["nodes"]})
        if page["next_after"] is None:
            break
        page = api.get("/tree", params={"after": page["next_after"], "limit": 3}).json()
        pages += 1
        if pages == 2:
            http.delete("/5.txt")
            http.request("MKCOL", "/e")
            http.put("/e/7.txt", content=b"seven")
    assert pages > 2
    (entry,) = [e for e in drive.trash(alice.id) if e.name == "c"]
    drive.restore_trash(alice.id, entry.id)  # back with its file: a change per node
    cursor = _catch_up(api, replica, first_cursor)
    assert replica == whole_tree(api)
    assert cursor == me(api)["cursor"]
    assert {node["name"] for node in replica.values()} == {
        "a", "b", "c", "d", "e", "1.txt", "2.txt", "3.txt", "4.txt", "6.txt", "7.txt",
    }  # fmt: skip


def test_the_change_feed_reports_each_kind_of_change(api: httpx.Client, http: httpx.Client) -> None:
    start, root = me(api)["cursor"], me(api)["root_id"]
    folder = api.post("/mkdir", json={"parent_id": root, "name": "docs"}).json()
    created = commit(api, b"first", parent_id=folder["id"], name="f.txt").json()
    base = created["version"]["id"]
    assert commit(api, b"second", node_id=created["id"], base_version_id=base).status_code == 200
    moved = api.post("/move", json={"node_id": created["id"], "parent_id": root, "name": "g.txt"})
    assert moved.status_code == 200
    assert api.patch(f"/nodes/{created['id']}", json={"mtime_ns": 1_600_000_000 * 10**9}).is_success
    token = lock(http, "/g.txt")
    locked = api.get("/changes", params={"cursor": start}).json()["changes"][-1]
    assert (locked["kind"], locked["node"]["locked"]) == ("lock", True)
    http.request("UNLOCK", "/g.txt", headers={"Lock-Token": f"<{token}>"})
    assert api.delete(f"/nodes/{folder['id']}").status_code == 204
    changes = api.get("/changes", params={"cursor": start}).json()["changes"]
    file_id, folder_id = created["id"], folder["id"]
    assert [(c["kind"], c["node_id"]) for c in changes] == [
        ("create", folder_id), ("create", file_id), ("update", file_id), ("move", file_id),
        ("meta", file_id), ("lock", file_id), ("lock", file_id), ("trash", folder_id),
    ]  # fmt: skip
    assert [c["seq"] for c in changes] == list(range(start + 1, start + 9))
    now = changes[1]["node"]  # every change carries the node's current state
    assert (now["name"], now["parent_id"], now["locked"]) == ("g.txt", root, False)
    assert (now["version"]["number"], now["mtime_ns"]) == (2, 1_600_000_000 * 10**9)
    assert changes[0]["node"] is None and changes[-1]["node"] is None  # in the trash now


def test_a_lock_shows_on_the_node_and_below_a_deep_locked_folder(
    api: httpx.Client, http: httpx.Client
) -> None:
    http.request("MKCOL", "/box")
    http.put("/box/in.txt", content=b"in")
    http.put("/out.txt", content=b"out")
    token = lock(http, "/box", Depth="infinity")
    flags = {node["name"]: node["locked"] for node in whole_tree(api).values()}
    assert flags == {"box": True, "in.txt": True, "out.txt": False}
    box = node_named(api, "box")
    children = api.get(f"/nodes/{box['id']}/children").json()["nodes"]
    assert [(n["name"], n["locked"]) for n in children] == [("in.txt", True)]
    http.request("UNLOCK", "/box", headers={"Lock-Token": f"<{token}>"})
    assert not any(node["locked"] for node in whole_tree(api).values())


def test_an_expired_lock_is_swept_into_the_journal(
    api: httpx.Client, http: httpx.Client, drive: Drive, alice: UserInfo
) -> None:
    http.put("/x.txt", content=b"x")
    start = me(api)["cursor"]
    record = LockRecord(token="opaquelocktoken:expired-test", root=f"/~{alice.id}/x.txt",
                        principal="alice", scope="exclusive", type="write", depth="0",
                        owner="", timeout=1, expire=time.time() - 1)  # fmt: skip
    drive.locks.create(record, user_id=alice.id, path="/x.txt")
    drive.locks.purge_expired()  # the server's sweeper may have been first: same outcome
    changes = api.get("/changes", params={"cursor": start}).json()["changes"]
    assert [change["kind"] for change in changes] == ["lock", "lock"]
    assert changes[-1]["node"]["locked"] is False


def _long_poll(url: str, cursor: int) -> Json:
    """A client's long-poll: retried while every slot is taken (by the probe)."""
    with api_client(url) as client:
        while True:
            answer = client.get("/changes", params={"cursor": cursor, "wait": 30})
            if answer.status_code != 503:
                assert answer.status_code == 200, answer.text
                result: Json = answer.json()
                return result


def _until_held(api: httpx.Client, cursor: int) -> None:
    """Return once the server holds a long-poll: its only slot is taken (503)."""
    while True:
        probe = api.get("/changes", params={"cursor": cursor, "wait": 0.01})
        if probe.status_code == 503:
            return
        assert probe.json()["changes"] == []


def test_a_long_poll_is_woken_by_a_webdav_put(
    backend: BackendSetup, drive: Drive, alice: UserInfo, tmp_path: Path
) -> None:
    with (
        drivegate_server(backend.env, tmp_path, "--threads", "4", "--long-polls", "1") as url,
        api_client(url) as api,
        ThreadPoolExecutor(1) as pool,
    ):
        start = me(api)["cursor"]
        waiting = pool.submit(_long_poll, url, start)
        _until_held(api, start)
        assert httpx.put(url + "woke.txt", content=b"x", auth=ALICE).status_code == 201
        answer = waiting.result()
    assert [(c["kind"], c["node"]["name"]) for c in answer["changes"]] == [("create", "woke.txt")]
    assert answer["cursor"] == start + 1


def test_a_long_poll_is_woken_by_a_write_through_another_process(
    backend: BackendSetup, drive: Drive, alice: UserInfo, tmp_path: Path
) -> None:
    """PostgreSQL: LISTEN/NOTIFY; SQLite: the journal poll."""
    with (
        drivegate_server(backend.env, tmp_path, "--threads", "4", "--long-polls", "1") as first,
        drivegate_server(backend.env, tmp_path) as second,
        api_client(first) as api,
        ThreadPoolExecutor(1) as pool,
    ):
        start = me(api)["cursor"]
        waiting = pool.submit(_long_poll, first, start)
        _until_held(api, start)
        with api_client(second) as other:
            made = other.post("/mkdir", json={"parent_id": me(other)["root_id"], "name": "far"})
            assert made.status_code == 201
        answer = waiting.result()
    assert [(c["kind"], c["node"]["name"]) for c in answer["changes"]] == [("create", "far")]


def test_one_user_cannot_take_every_long_poll_slot(
    backend: BackendSetup, drive: Drive, alice: UserInfo, bob: UserInfo, tmp_path: Path
) -> None:
    """Four held long-polls per user: alice's fifth is 503, bob still gets one."""
    with (
        drivegate_server(backend.env, tmp_path, "--threads", "16", "--long-polls", "8") as url,
        api_client(url) as api,
        api_client(url, BOB) as bob_api,
        ThreadPoolExecutor(4) as pool,
    ):
        start = me(api)["cursor"]
        waiting = [pool.submit(_long_poll, url, start) for _ in range(4)]
        _until_held(api, start)  # alice's fifth is refused: her four are held
        fifth = api.get("/changes", params={"cursor": start, "wait": 0.01})
        assert fifth.headers["Retry-After"].isdigit()
        bobs = bob_api.get("/changes", params={"cursor": me(bob_api)["cursor"], "wait": 0.2})
        assert bobs.status_code == 200, bobs.text
        assert httpx.put(url + "woke.txt", content=b"x", auth=ALICE).status_code == 201
        for held in waiting:
            assert [c["node"]["name"] for c in held.result()["changes"]] == ["woke.txt"]


def test_a_long_poll_with_nothing_to_say_returns_the_same_cursor(api: httpx.Client) -> None:
    start = me(api)["cursor"]
    answer = api.get("/changes", params={"cursor": start, "wait": 0.05}).json()
    assert answer == {"cursor": start, "changes": [], "more": False}


# content ---------------------------------------------------------------------


def test_the_manifest_matches_what_was_put_over_webdav(
    api: httpx.Client, http: httpx.Client
) -> None:
    data = os.urandom(5 * 1024 * 1024) + b"tail" * 1000  # over the 4 MiB maximum: 2+ chunks
    assert http.put("/big.bin", content=data).status_code == 201
    node = node_named(api, "big.bin")
    answer = api.get(f"/nodes/{node['id']}/manifest")
    manifest = answer.json()
    # The body is written by hand (speed): it must still be exactly what the spec says.
    assert ManifestOut.model_validate_json(answer.content).model_dump() == manifest
    assert answer.headers["content-type"].startswith("application/json")
    assert manifest["node_id"] == node["id"]
    assert manifest["version"] == {
        "id": node["version"]["id"], "number": 1, "size": len(data), "sha256": sha256(data),
    }  # fmt: skip
    expected, offset = [], 0
    for chunk in cut_bytes(data):
        expected.append({"offset": offset, "length": len(chunk), "hash": sha256(chunk)})
        offset += len(chunk)
    assert manifest["chunks"] == expected and len(expected) > 1
    parts = []
    for chunk in manifest["chunks"]:
        answer = api.get(f"/chunks/{chunk['hash']}")
        assert answer.status_code == 200
        assert "immutable" in answer.headers["Cache-Control"]
        assert answer.headers["ETag"] == f'"{chunk["hash"]}"'
        parts.append(answer.content)
    assert b"".join(parts) == data
    # A client with the file open can go on reading after it is deleted elsewhere.
    assert http.delete("/big.bin").status_code == 204
    assert api.get(f"/nodes/{node['id']}/manifest").json()["chunks"] == expected
    assert api.get(f"/nodes/{node['id']}").status_code == 404


def test_other_users_chunks_and_nodes_are_not_found(
    api: httpx.Client, http: httpx.Client, dav_url: str
) -> None:
    secret = b"alice's secret"
    http.put("/secret.txt", content=secret)
    node = node_named(api, "secret.txt")
    key, nid = sha256(secret), node["id"]
    with api_client(dav_url, BOB) as bob:
        bob_root = me(bob)["root_id"]
        with unchanged(api):
            assert bob.get(f"/chunks/{key}").status_code == 404
            for path in (f"/nodes/{nid}", f"/nodes/{nid}/children", f"/nodes/{nid}/manifest",
                         f"/nodes/{nid}/versions", f"/nodes/{me(api)['root_id']}"):  # fmt: skip
                assert error_code(bob.get(path)) == "not_found", path
            assert error_code(bob.delete(f"/nodes/{nid}")) == "not_found"
            assert error_code(bob.patch(f"/nodes/{nid}", json={"mtime_ns": 1})) == "not_found"
            assert error_code(bob.post(f"/nodes/{nid}/versions/1/restore")) == "not_found"
            stolen = {"node_id": nid, "parent_id": bob_root, "name": "mine"}
            assert error_code(bob.post("/move", json=stolen)) == "not_found"
            into = {"parent_id": me(api)["root_id"], "name": "x"}
            assert error_code(bob.post("/mkdir", json=into)) == "not_found"
            overwrite = commit(bob, b"bob was here", node_id=nid, base_version_id=1)
            assert error_code(overwrite) == "not_found"
        assert commit(bob, secret, parent_id=bob_root, name="mine.txt").status_code == 201
        assert bob.get(f"/chunks/{key}").content == secret


def test_a_chunk_another_user_stores_is_answered_as_if_nobody_did(
    api: httpx.Client, http: httpx.Client, dav_url: str
) -> None:
    """Dedup is across users, but knowing a hash proves nothing: until bob uploads
    the bytes himself, every answer about alice's chunk is the one for a chunk
    nobody stores (the hole: bob committed alice's hash and read her file)."""
    secret = b"alice's secret, one chunk"
    http.put("/secret.txt", content=secret)
    key, nobodys = sha256(secret), sha256(b"a chunk nobody stores")
    with api_client(dav_url, BOB) as bob:
        bob_root = me(bob)["root_id"]
        with unchanged(api), unchanged(bob):
            asked = {"hashes": [key, nobodys]}
            assert bob.post("/chunks/missing", json=asked).json() == {"missing": [key, nobodys]}
            for length in (len(secret), 5):  # a wrong length is not answered with the true one
                for name in (key, nobodys):
                    stolen = {"parent_id": bob_root, "name": "stolen.txt", "size": length,
                              "chunks": [{"hash": name, "length": length}]}  # fmt: skip
                    answer = bob.post("/commit", json=stolen)
                    assert answer.status_code == 409, answer.text
                    assert answer.json()["error"]["missing"] == [name]
                    assert str(len(secret)) not in answer.text
            assert bob.get(f"/chunks/{key}").status_code == 404
            assert bob.get(f"/chunks/{nobodys}").status_code == 404
        # Uploading the bytes proves possession: answered as a new chunk (201), then his.
        assert bob.put(f"/chunks/{key}", content=secret).status_code == 201
        assert bob.post("/chunks/missing", json={"hashes": [key]}).json() == {"missing": []}
        assert bob.put(f"/chunks/{key}", content=secret).status_code == 200
        assert bob.get(f"/chunks/{key}").content == secret
        mine = {"parent_id": bob_root, "name": "mine.txt", "size": len(secret),
                "chunks": [{"hash": key, "length": len(secret)}]}  # fmt: skip
        answer = bob.post("/commit", json=mine)
        assert answer.status_code == 201, answer.text
    # alice's own answers are unchanged: her chunk is hers.
    assert api.post("/chunks/missing", json={"hashes": [key]}).json() == {"missing": []}
    assert api.put(f"/chunks/{key}", content=secret).status_code == 200


def test_a_patch_names_no_chunk_of_another_user(
    api: httpx.Client, http: httpx.Client, dav_url: str
) -> None:
    """The patch path takes bytes, and its base must be the user's own version."""
    http.put("/secret.txt", content=b"alice's secret")
    node = node_named(api, "secret.txt")
    with api_client(dav_url, BOB) as bob, unchanged(api):
        answer = bob.post(
            f"/nodes/{node['id']}/patch",
            params={"base_version_id": node["version"]["id"], "size": 14, "ranges": "0:1"},
            content=b"A",
            headers={"Content-Type": "application/octet-stream"},
        )
        assert error_code(answer) == "not_found"


def test_missing_lists_the_hashes_the_server_lacks(api: httpx.Client, http: httpx.Client) -> None:
    http.put("/known.bin", content=b"known content")
    known, unknown = sha256(b"known content"), sha256(b"nobody has this")
    asked = {"hashes": [unknown, known, unknown]}
    assert api.post("/chunks/missing", json=asked).json() == {"missing": [unknown]}
    assert api.put(f"/chunks/{unknown}", content=b"nobody has this").status_code == 201
    assert api.put(f"/chunks/{unknown}", content=b"nobody has this").status_code == 200
    assert api.post("/chunks/missing", json=asked).json() == {"missing": []}


def test_chunks_put_then_committed_make_a_file_webdav_reads_byte_for_byte(
    api: httpx.Client, http: httpx.Client
) -> None:
    data = os.urandom(2 * 1024 * 1024) + bytes(range(256)) * 8000
    root = me(api)["root_id"]
    made = commit(api, data, parent_id=root, name="синий.bin", mtime_ns=1_700_000_000 * 10**9,
                  sha256=sha256(data))  # fmt: skip
    assert made.status_code == 201, made.text
    node = made.json()
    assert (node["kind"], node["size"], node["parent_id"]) == ("file", len(data), root)
    assert (node["version"]["number"], node["version"]["sha256"]) == (1, sha256(data))
    assert node["mtime_ns"] == 1_700_000_000 * 10**9
    assert http.get("/синий.bin").content == data
    again = commit(api, data[:1000], node_id=node["id"], base_version_id=node["version"]["id"])
    assert again.status_code == 200 and again.json()["version"]["number"] == 2
    assert http.get("/синий.bin").content == data[:1000]
    assert me(api)["used"] == 1000
    empty = api.post("/commit", json={"parent_id": root, "name": "empty", "size": 0, "chunks": []})
    assert empty.status_code == 201 and http.get("/empty").content == b""


def test_a_splice_commit_replaces_a_range_of_the_base_versions_chunks(
    api: httpx.Client, http: httpx.Client
) -> None:
    parts = [os.urandom(200_000) for _ in range(4)]
    root = me(api)["root_id"]
    pieces = [put_chunks(api, part)[0] for part in parts]  # one chunk each (under MIN_CHUNK)
    made = api.post("/commit", json={"parent_id": root, "name": "s.bin", "chunks": pieces,
                                     "size": sum(map(len, parts))})  # fmt: skip
    assert made.status_code == 201, made.text
    node = made.json()
    new = os.urandom(5000)
    (entry,) = put_chunks(api, new)
    edited = api.post("/commit", json={
        "node_id": node["id"], "base_version_id": node["version"]["id"],
        "size": len(parts[0]) + len(new) + len(parts[3]), "chunks": [entry],
        "splice": {"start": 1, "end": 3},
    })  # fmt: skip
    assert edited.status_code == 200, edited.text
    assert http.get("/s.bin").content == parts[0] + new + parts[3]
    manifest = api.get(f"/nodes/{node['id']}/manifest").json()
    assert [c["hash"] for c in manifest["chunks"]] == [pieces[0]["hash"], entry["hash"],
                                                      pieces[3]["hash"]]  # fmt: skip
    assert [c["offset"] for c in manifest["chunks"]] == [0, 200_000, 205_000]


def test_a_commit_without_a_sum_leaves_it_unknown_and_etags_do_not_need_it(
    api: httpx.Client, http: httpx.Client
) -> None:
    data = os.urandom(3 * 1024 * 1024)
    made = commit(api, data, parent_id=me(api)["root_id"], name="nosum.bin")
    assert made.status_code == 201, made.text
    node = made.json()
    assert node["version"]["sha256"] is None
    assert node_named(api, "nosum.bin")["version"]["sha256"] is None
    versions = api.get(f"/nodes/{node['id']}/versions").json()["versions"]
    assert [v["sha256"] for v in versions] == [None]
    assert api.get(f"/nodes/{node['id']}/manifest").json()["version"]["sha256"] is None
    etag = http.get("/nosum.bin").headers["ETag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    assert http.get("/nosum.bin", headers={"If-None-Match": etag}).status_code == 304
    again = commit(api, data[:-1], node_id=node["id"], base_version_id=node["version"]["id"])
    assert again.status_code == 200, again.text
    fresh = http.get("/nosum.bin")
    assert fresh.content == data[:-1] and fresh.headers["ETag"] != etag
    same = http.put("/nosum.bin", content=data[:-1])
    assert same.status_code == 204 and same.headers["ETag"] != fresh.headers["ETag"]
    assert node_named(api, "nosum.bin")["version"]["sha256"] == sha256(data[:-1])


def test_versions_are_listed_and_restored(api: httpx.Client, http: httpx.Client) -> None:
    http.put("/v.txt", content=b"one")
    http.put("/v.txt", content=b"two")
    node = node_named(api, "v.txt")
    versions = api.get(f"/nodes/{node['id']}/versions").json()["versions"]
    assert [(v["number"], v["sha256"], v["is_current"], v["origin"], v["author"])
            for v in versions] == [(1, sha256(b"one"), False, "webdav", "alice"),
                                   (2, sha256(b"two"), True, "webdav", "alice")]  # fmt: skip
    old = api.get(f"/nodes/{node['id']}/manifest", params={"version": 1}).json()
    assert old["chunks"][0]["hash"] == sha256(b"one")
    restored = api.post(f"/nodes/{node['id']}/versions/1/restore")
    assert restored.status_code == 200 and restored.json()["version"]["number"] == 3
    assert http.get("/v.txt").content == b"one"


def test_delete_moves_to_the_trash(
    api: httpx.Client, http: httpx.Client, drive: Drive, alice: UserInfo
) -> None:
    http.request("MKCOL", "/old")
    http.put("/old/f.txt", content=b"f")
    http.put("/keep.txt", content=b"k")
    folder, inner, kept = (node_named(api, n) for n in ("old", "f.txt", "keep.txt"))
    assert api.delete(f"/nodes/{folder['id']}").status_code == 204
    assert error_code(api.get(f"/nodes/{folder['id']}")) == "not_found"
    assert error_code(api.get(f"/nodes/{inner['id']}")) == "not_found"
    assert [entry.name for entry in drive.trash(alice.id)] == ["old"]
    assert http.get("/old/f.txt").status_code == 404
    base = kept["version"]["id"]
    assert api.delete(f"/nodes/{kept['id']}", params={"base_version_id": base}).status_code == 204


def test_a_webdav_lock_refuses_writes_unless_the_commit_names_it(
    api: httpx.Client, http: httpx.Client
) -> None:
    http.put("/locked.odt", content=b"v1")
    node = node_named(api, "locked.odt")
    token = lock(http, "/locked.odt")
    assert api.get(f"/nodes/{node['id']}").json()["locked"] is True
    target = {"node_id": node["id"], "base_version_id": node["version"]["id"]}
    root = me(api)["root_id"]
    with unchanged(api):
        assert error_code(commit(api, b"v2", **target)) == "locked"
        assert commit(api, b"v2", **target).status_code == 423
        assert error_code(api.delete(f"/nodes/{node['id']}")) == "locked"
        renamed = api.post("/move", json={"node_id": node["id"], "parent_id": root, "name": "n"})
        assert error_code(renamed) == "locked"
        assert error_code(api.patch(f"/nodes/{node['id']}", json={"mtime_ns": 5})) == "locked"
        assert error_code(commit(api, b"v2", **target, lock_token="opaquelocktoken:x")) == "locked"
    allowed = commit(api, b"v2", **target, lock_token=token)
    assert allowed.status_code == 200, allowed.text
    assert http.get("/locked.odt").content == b"v2"
    # A folder locked with depth infinity keeps new files out, unless named.
    http.request("MKCOL", "/box")
    box_token = lock(http, "/box", Depth="infinity")
    box = node_named(api, "box")
    with unchanged(api):
        assert error_code(commit(api, b"n", parent_id=box["id"], name="new.txt")) == "locked"
    named = commit(api, b"n", parent_id=box["id"], name="new.txt", lock_token=box_token)
    assert named.status_code == 201


# the document ----------------------------------------------------------------

PATHS = {
    "/me", "/tree", "/changes", "/nodes/{node_id}", "/nodes/{node_id}/children",
    "/nodes/{node_id}/manifest", "/nodes/{node_id}/patch", "/nodes/{node_id}/versions",
    "/nodes/{node_id}/versions/{number}/restore", "/ids", "/mkdir", "/move", "/chunks/missing",
    "/chunks/{hash}", "/commit", "/batch", "/openapi.json",
    "/users", "/groups", "/groups/{group}", "/groups/{group}/members",
    "/groups/{group}/members/{user}",
    "/shares", "/shares/received", "/shares/{share_id}", "/nodes/{node_id}/shares",
}  # fmt: skip


def test_the_openapi_document_validates_and_describes_the_answers(
    api: httpx.Client, http: httpx.Client, dav_url: str
) -> None:
    document = httpx.get(dav_url + ".drivegate/api/v1/openapi.json").json()  # no login needed
    validate(document)
    assert document["openapi"].startswith("3.1") and set(document["paths"]) == PATHS

    def fits(answer: httpx.Response, schema: str) -> None:
        wrapped: dict[str, Any] = {
            "$ref": f"#/components/schemas/{schema}",
            "components": document["components"],
        }
        Draft202012Validator(wrapped).validate(answer.json())

    http.put("/doc.txt", content=b"doc")
    node = node_named(api, "doc.txt")
    fits(api.get("/me"), "MeOut")
    fits(api.get("/tree"), "TreeOut")
    fits(api.get("/changes", params={"cursor": 0}), "ChangesOut")
    fits(api.get(f"/nodes/{node['id']}"), "NodeOut")
    fits(api.get(f"/nodes/{node['id']}/manifest"), "ManifestOut")
    fits(api.get(f"/nodes/{node['id']}/versions"), "VersionsOut")
    fits(api.get(f"/nodes/{me(api)['root_id']}/children"), "NodesOut")
    fits(api.get("/nodes/999999"), "ErrorOut")
    fits(api.post("/ids", json={"count": 2}), "IdsOut")
