"""Bad input to the sync API gets the documented 4xx and changes nothing (each test
checks the journal cursor, the quota use and the whole tree before and after)."""

from __future__ import annotations

import hashlib
import socket

import httpx

from core import Drive, UserInfo
from tests.support.apiclient import Json, commit, error_code, put_chunks, unchanged, whole_tree
from tests.support.davbodies import exclusive_lock

JSON = {"Content-Type": "application/json"}

MiB = 1024 * 1024


def _file(api: httpx.Client, name: str, data: bytes = b"content") -> Json:
    made = commit(api, data, parent_id=api.get("/me").json()["root_id"], name=name)
    assert made.status_code == 201, made.text
    node: Json = made.json()
    return node


def _folder(api: httpx.Client, name: str, parent: int | None = None) -> Json:
    parent = parent or api.get("/me").json()["root_id"]
    made = api.post("/mkdir", json={"parent_id": parent, "name": name})
    assert made.status_code == 201, made.text
    node: Json = made.json()
    return node


def test_unauthenticated_requests_get_a_json_401_with_a_basic_challenge(
    api: httpx.Client, dav_url: str
) -> None:
    base = dav_url + ".drivegate/api/v1"
    root = api.get("/me").json()["root_id"]
    with unchanged(api):
        for auth in (None, ("alice", "wrong-password"), ("nobody", "x" * 10)):
            answer = httpx.get(base + "/me", auth=auth)
            assert answer.status_code == 401
            assert answer.headers["WWW-Authenticate"].startswith('Basic realm="drivegate"')
            assert error_code(answer) == "unauthorized"
        garbled = httpx.get(base + "/tree", headers={"Authorization": "Basic %%%"})
        assert error_code(garbled) == "unauthorized"
        anonymous = httpx.post(base + "/mkdir", json={"parent_id": root, "name": "x"})
        assert error_code(anonymous) == "unauthorized"


def test_failed_logins_are_throttled_as_for_webdav(
    dav_url: str, drive: Drive, alice: UserInfo
) -> None:
    base = dav_url + ".drivegate/api/v1"
    before = (drive.cursor(alice.id), drive.listdir(alice.id, "/"), drive.user("alice"))
    wrong = [httpx.get(base + "/me", auth=("alice", f"wrong-{i}")) for i in range(11)]
    assert [answer.status_code for answer in wrong].count(401) == 6
    assert wrong[-1].status_code == 429
    root = drive.user("alice").root_id
    throttled = httpx.post(base + "/mkdir", json={"parent_id": root, "name": "x"},
                           auth=("alice", "alice-password"))  # fmt: skip
    assert error_code(throttled) == "too_many_requests" and "Retry-After" in throttled.headers
    assert httpx.get(dav_url, auth=("alice", "alice-password")).status_code == 429  # WebDAV too
    assert (drive.cursor(alice.id), drive.listdir(alice.id, "/"), drive.user("alice")) == before


def test_malformed_and_ill_typed_bodies_are_bad_requests(api: httpx.Client) -> None:
    root = api.get("/me").json()["root_id"]
    with unchanged(api):
        for body in (b"{bad", b"", b"[]", b"null", '{"parent_id": 1, "name": "\udcff"}'.encode(
                "utf-8", "surrogatepass")):  # fmt: skip
            assert error_code(api.post("/mkdir", content=body, headers=JSON)) == "bad_request", body
        for sent in (
            {"parent_id": str(root), "name": "x"},  # no coercion
            {"parent_id": root},  # missing field
            {"parent_id": root, "name": "x", "colour": "red"},  # unknown field
            {"parent_id": root, "name": 7},
            {"parent_id": 0, "name": "x"},
            {"parent_id": 2**64, "name": "x"},
            {"parent_id": root, "name": "x", "mtime_ns": -1},
        ):
            answer = api.post("/mkdir", json=sent)
            assert error_code(answer) == "bad_request", sent
            assert answer.json()["error"]["message"]
        assert error_code(api.post("/move", json={"node_id": root})) == "bad_request"
        assert error_code(api.patch(f"/nodes/{root}", json={"mtime_ns": "soon"})) == "bad_request"
        assert error_code(api.post("/chunks/missing", json={"hashes": "abc"})) == "bad_request"
        assert error_code(api.post("/chunks/missing", json={"hashes": ["ABC"]})) == "bad_request"
        too_many = {"hashes": ["0" * 64] * 10_001}
        assert error_code(api.post("/chunks/missing", json=too_many)) == "bad_request"


def test_bad_id_reservations_and_ids_are_bad_requests(api: httpx.Client) -> None:
    root = api.get("/me").json()["root_id"]
    (reserved,) = api.post("/ids", json={"count": 1}).json()["ids"]
    node = _file(api, "f.txt")
    with unchanged(api):
        for body in ({"count": 0}, {"count": 10_001}, {"count": -1}, {}, {"count": "5"},
                     {"count": 2.5}, {"count": None}, {"count": 1, "colour": "red"}):  # fmt: skip
            answer = api.post("/ids", json=body)
            assert (answer.status_code, error_code(answer)) == (400, "bad_request"), body
            assert answer.json()["error"]["message"], body
        assert error_code(api.post("/ids", content=b"")) == "bad_request"
        never = reserved + 10**9
        for answer in (
            api.post("/mkdir", json={"parent_id": root, "name": "x", "id": never}),
            commit(api, b"x", parent_id=root, name="x.txt", id=never),
        ):
            assert (answer.status_code, error_code(answer)) == (400, "bad_request")
            assert answer.json()["error"]["message"] == f"id {never} is not reserved for you"
        for bad in (0, -1, "7", 2**64):
            answer = api.post("/mkdir", json={"parent_id": root, "name": "x", "id": bad})
            assert error_code(answer) == "bad_request", bad
        with_node = commit(api, b"y", node_id=node["id"], id=reserved,
                           base_version_id=node["version"]["id"])  # fmt: skip
        assert error_code(with_node) == "bad_request"


def test_bad_query_parameters_are_bad_requests(api: httpx.Client) -> None:
    cursor = api.get("/me").json()["cursor"]
    with unchanged(api):
        for params in ({"limit": 0}, {"limit": 10_001}, {"after": -1}, {"after": "x"},
                       {"colour": "red"}):  # fmt: skip
            assert error_code(api.get("/tree", params=params)) == "bad_request", params
        for params in ({}, {"cursor": -1}, {"cursor": cursor + 1}, {"cursor": 0, "wait": 61},
                       {"cursor": 0, "wait": -1}, {"cursor": 0, "limit": 0}):  # fmt: skip
            assert error_code(api.get("/changes", params=params)) == "bad_request", params
        assert error_code(api.get("/tree?limit=1&limit=2")) == "bad_request"
        assert error_code(api.get("/nodes/abc")) == "not_found"
        assert error_code(api.get("/nowhere")) == "not_found"
        assert error_code(api.put("/me")) == "method_not_allowed"


def test_names_are_checked(api: httpx.Client) -> None:
    root = api.get("/me").json()["root_id"]
    folder = _folder(api, "docs")
    with unchanged(api):
        for name in (
            "",
            ".",
            "..",
            "a/b",
            "nul\x00",
            "é" * 128,
            ".trash",
            ".versions",
            ".drivegate",
            "api",
        ):
            answer = api.post("/mkdir", json={"parent_id": root, "name": name})
            assert error_code(answer) == "name_invalid", name
            assert answer.status_code == 400
            assert error_code(commit(api, b"x", parent_id=root, name=name)) == "name_invalid"
        taken = api.post("/mkdir", json={"parent_id": root, "name": "docs"})
        assert (taken.status_code, error_code(taken)) == (409, "name_taken")
        file_as_folder = commit(api, b"x", parent_id=root, name="docs")
        assert error_code(file_as_folder) == "not_a_file"
    assert api.post("/mkdir", json={"parent_id": folder["id"], "name": ".trash"}).status_code == 201


def test_impossible_moves_are_refused(api: httpx.Client) -> None:
    root = api.get("/me").json()["root_id"]
    outer = _folder(api, "outer")
    inner = _folder(api, "inner", outer["id"])
    _file(api, "taken.txt")
    loose = _file(api, "loose.txt")
    with unchanged(api):
        for into in (outer["id"], inner["id"]):
            answer = api.post("/move", json={"node_id": outer["id"], "parent_id": into,
                                             "name": "outer"})  # fmt: skip
            assert (answer.status_code, error_code(answer)) == (409, "invalid_move")
        rooted = api.post("/move", json={"node_id": root, "parent_id": outer["id"], "name": "r"})
        assert error_code(rooted) == "invalid_move"
        assert error_code(api.delete(f"/nodes/{root}")) == "invalid_move"
        clash = api.post("/move", json={"node_id": loose["id"], "parent_id": root,
                                        "name": "taken.txt"})  # fmt: skip
        assert error_code(clash) == "name_taken"
        onto_file = api.post("/move", json={"node_id": loose["id"], "parent_id": loose["id"],
                                            "name": "x"})  # fmt: skip
        assert error_code(onto_file) == "not_a_folder"
        assert error_code(api.get(f"/nodes/{loose['id']}/children")) == "not_a_folder"
        assert error_code(api.get(f"/nodes/{outer['id']}/manifest")) == "not_a_file"
        assert error_code(api.get(f"/nodes/{loose['id']}/manifest?version=9")) == "not_found"
        restore = api.post(f"/nodes/{loose['id']}/versions/9/restore")
        assert error_code(restore) == "not_found"


def test_compare_and_set_conflicts_change_nothing(api: httpx.Client, http: httpx.Client) -> None:
    node = _file(api, "shared.txt", b"v1")
    stale = node["version"]["id"]
    http.put("/shared.txt", content=b"v2 from webdav")
    with unchanged(api):
        conflict = commit(api, b"v3", node_id=node["id"], base_version_id=stale)
        assert (conflict.status_code, error_code(conflict)) == (409, "version_conflict")
        current = conflict.json()["error"]["current"]
        assert current["id"] == node["id"] and current["version"]["number"] == 2
        assert current["size"] == len(b"v2 from webdav")
        gone = api.delete(f"/nodes/{node['id']}", params={"base_version_id": stale})
        assert error_code(gone) == "version_conflict"
        existing = commit(api, b"v3", parent_id=node["parent_id"], name="shared.txt",
                          create_only=True)  # fmt: skip
        assert (existing.status_code, error_code(existing)) == (409, "name_taken")
        for target in ({"node_id": node["id"]},
                       {"node_id": node["id"], "base_version_id": stale, "name": "x"},
                       {"node_id": node["id"], "base_version_id": stale, "create_only": True},
                       {"name": "orphan.txt"}):  # fmt: skip
            assert error_code(commit(api, b"v3", **target)) == "bad_request", target
    assert http.get("/shared.txt").content == b"v2 from webdav"


def test_commits_that_do_not_add_up_are_refused(api: httpx.Client) -> None:
    root = api.get("/me").json()["root_id"]
    data = b"some content"
    entries = put_chunks(api, data)
    absent = hashlib.sha256(b"never uploaded").hexdigest()
    target = {"parent_id": root, "name": "f.txt"}
    with unchanged(api):
        short = api.post("/commit", json={**target, "size": len(data) + 1, "chunks": entries})
        assert error_code(short) == "bad_request"
        wrong_length = [{"hash": entries[0]["hash"], "length": len(data) - 1}]
        lying = api.post("/commit", json={**target, "size": len(data) - 1, "chunks": wrong_length})
        assert error_code(lying) == "bad_request"
        missing = api.post("/commit", json={**target, "size": len(data) + 14,
                           "chunks": [*entries, {"hash": absent, "length": 14}]})  # fmt: skip
        assert (missing.status_code, error_code(missing)) == (409, "missing_chunks")
        assert missing.json()["error"]["missing"] == [absent]
        bad_hash = api.post("/commit", json={**target, "size": 1,
                            "chunks": [{"hash": "xyz", "length": 1}]})  # fmt: skip
        assert error_code(bad_hash) == "bad_request"
        bad_sum = api.post("/commit", json={**target, "size": len(data), "chunks": entries,
                                            "sha256": "A" * 64})  # fmt: skip
        assert error_code(bad_sum) == "bad_request"
        nowhere = {"parent_id": 999_999, "name": "f", "size": len(data), "chunks": entries}
        unknown_folder = api.post("/commit", json=nowhere)
        assert error_code(unknown_folder) == "not_found"


def test_splices_that_do_not_fit_their_base_are_refused(api: httpx.Client) -> None:
    root = api.get("/me").json()["root_id"]
    data = b"spliced content"
    entries = put_chunks(api, data)
    node = api.post("/commit", json={"parent_id": root, "name": "s.txt", "size": len(data),
                                     "chunks": entries}).json()  # fmt: skip
    base = {"node_id": node["id"], "base_version_id": node["version"]["id"]}
    with unchanged(api):
        for splice, size, target in (
            ({"start": 1, "end": 0}, len(data), base),  # backwards
            ({"start": 0, "end": 2}, 0, base),  # past the base's one entry
            ({"start": 0, "end": 1}, len(data) + 1, base),  # lengths do not add up
            ({"start": -1, "end": 1}, len(data), base),
            ({"start": 0, "end": 1}, len(data), {"parent_id": root, "name": "s.txt"}),
        ):
            answer = api.post("/commit", json={**target, "size": size, "chunks": entries,
                                               "splice": splice})  # fmt: skip
            assert error_code(answer) == "bad_request", (splice, size, target, answer.text)
            assert answer.status_code == 400


def test_chunk_uploads_are_verified_and_capped(api: httpx.Client) -> None:
    data = b"chunk bytes"
    name = hashlib.sha256(data).hexdigest()
    big = b"x" * (4 * MiB + 1)
    with unchanged(api):
        mismatch = api.put(f"/chunks/{name}", content=b"other bytes")
        assert (mismatch.status_code, error_code(mismatch)) == (400, "hash_mismatch")
        assert api.post("/chunks/missing", json={"hashes": [name]}).json()["missing"] == [name]
        too_big = api.put(f"/chunks/{hashlib.sha256(big).hexdigest()}", content=big)
        assert (too_big.status_code, error_code(too_big)) == (413, "too_large")
        assert error_code(api.put("/chunks/not-a-hash", content=data)) == "bad_request"
        assert error_code(api.put(f"/chunks/{name}", content=b"")) == "bad_request"
        assert error_code(api.get("/chunks/not-a-hash")) == "bad_request"
        assert error_code(api.get(f"/chunks/{name}")) == "not_found"
        huge_json = b'{"hashes": [' + b",".join([b'"' + b"0" * 64 + b'"'] * 20_000) + b"]}"
        assert error_code(api.post("/chunks/missing", content=huge_json)) == "too_large"
    assert api.post("/chunks/missing", json={"hashes": [name]}).json()["missing"] == [name]


def test_a_commit_over_quota_is_refused_and_changes_nothing(
    api: httpx.Client, drive: Drive
) -> None:
    node = _file(api, "small.txt", b"0123456789")
    drive.set_quota("alice", 100)
    root = api.get("/me").json()["root_id"]
    big = b"y" * 200
    with unchanged(api):
        new = commit(api, big, parent_id=root, name="big.bin")
        assert (new.status_code, error_code(new)) == (507, "quota_exceeded")
        grown = commit(api, big, node_id=node["id"], base_version_id=node["version"]["id"])
        assert error_code(grown) == "quota_exceeded"
    assert drive.user("alice").reserved_bytes == 0
    fits = commit(api, b"z" * 90, node_id=node["id"], base_version_id=node["version"]["id"])
    assert fits.status_code == 200
    assert api.get("/me").json()["used"] == 90


def test_locked_folders_refuse_new_members(api: httpx.Client, http: httpx.Client) -> None:
    box = _folder(api, "box")
    loose = _file(api, "loose.txt")
    locked = http.request("LOCK", "/box", content=exclusive_lock(), headers={"Depth": "0"})
    assert locked.status_code == 200
    with unchanged(api):
        made = api.post("/mkdir", json={"parent_id": box["id"], "name": "sub"})
        assert (made.status_code, error_code(made)) == (423, "locked")
        moved = api.post("/move", json={"node_id": loose["id"], "parent_id": box["id"],
                                        "name": "loose.txt"})  # fmt: skip
        assert error_code(moved) == "locked"
        assert error_code(commit(api, b"n", parent_id=box["id"], name="n.txt")) == "locked"
        assert error_code(api.delete(f"/nodes/{box['id']}")) == "locked"
    assert set(n["name"] for n in whole_tree(api).values()) == {"box", "loose.txt"}


# Found by the fuzzer (tests/api/test_api_fuzz.py) --------------------------------


def test_an_integer_may_be_written_with_a_zero_fraction_but_not_a_fraction(
    api: httpx.Client,
) -> None:
    # The document's `integer` is JSON Schema's: 2.0 is one. The server refused it.
    root = api.get("/me").json()["root_id"]
    reserved = api.post("/ids", json={"count": 2.0})
    assert reserved.status_code == 200 and len(reserved.json()["ids"]) == 2
    made = api.post("/mkdir", json={"parent_id": float(root), "name": "float parent"})
    assert made.status_code == 201 and made.json()["parent_id"] == root
    batched = api.post("/batch", json={"ops": [
        {"op": "patch", "node_id": made.json()["id"], "mtime_ns": 1.5e18}]})  # fmt: skip
    assert batched.json()["results"][0]["node"]["mtime_ns"] == 1_500_000_000_000_000_000
    with unchanged(api):
        for count in (2.5, 1e300, float(2**64), "2", True):
            answer = api.post("/ids", json={"count": count})
            assert (answer.status_code, error_code(answer)) == (400, "bad_request"), count
        answer = api.post("/mkdir", json={"parent_id": root + 0.5, "name": "half"})
        assert error_code(answer) == "bad_request"


def test_a_batch_holding_a_commit_of_neither_shape_is_refused_whole(api: httpx.Client) -> None:
    # A commit naming both node_id and id (or neither node_id nor parent_id and
    # name) is malformed, and a malformed op makes the batch malformed: it was
    # done up to that op and the commit refused as if it were a tree conflict.
    root = api.get("/me").json()["root_id"]
    node = _file(api, "shaped.txt")
    (reserved,) = api.post("/ids", json={"count": 1}).json()["ids"]
    good = {"op": "mkdir", "parent_id": root, "name": "would be made"}
    by_both = {"op": "commit", "node_id": node["id"], "base_version_id": node["version"]["id"],
               "id": reserved, "size": 0, "chunks": []}  # fmt: skip
    by_neither = {"op": "commit", "size": 0, "chunks": []}
    by_node_no_base = {"op": "commit", "node_id": node["id"], "size": 0, "chunks": []}
    spliced_by_name = {"op": "commit", "parent_id": root, "name": "s.txt", "size": 0,
                       "chunks": [], "splice": {"start": 0, "end": 0}}  # fmt: skip
    with unchanged(api):
        for bad in (by_both, by_neither, by_node_no_base, spliced_by_name):
            answer = api.post("/batch", json={"ops": [good, bad]})
            assert (answer.status_code, error_code(answer)) == (400, "bad_request"), bad
            assert "ops.1.commit" in answer.json()["error"]["message"]
            alone = api.post("/commit", json={k: v for k, v in bad.items() if k != "op"})
            assert (alone.status_code, error_code(alone)) == (400, "bad_request"), bad


def test_a_request_line_over_the_limit_gets_the_documented_414(
    api: httpx.Client, dav_url: str
) -> None:
    document = httpx.get(dav_url + ".drivegate/api/v1/openapi.json").json()
    too_long = document["components"]["responses"]["UriTooLong"]
    assert set(too_long["content"]) == {"text/plain"}
    for item in document["paths"].values():
        for described in item.values():
            assert described["responses"]["414"] == {"$ref": "#/components/responses/UriTooLong"}
    url = httpx.URL(dav_url)
    line = (
        f"GET /.drivegate/api/v1/tree?after=0&pad={'x' * 70_000} HTTP/1.1\r\n"
        f"Host: {url.host}\r\n\r\n"
    )
    with unchanged(api), socket.create_connection((url.host, url.port), timeout=30) as raw:
        raw.sendall(line.encode())  # httpx refuses to send a URL this long
        head = raw.recv(4096).split(b"\r\n\r\n")[0].decode().lower()
    assert head.startswith("http/1.1 414") and "content-type: text/plain" in head, head


def test_a_version_number_beyond_the_store_s_range_is_not_found(api: httpx.Client) -> None:
    # Version numbers are an INTEGER column: on PostgreSQL 2**31 overflowed (500).
    node = _file(api, "numbered.txt")
    with unchanged(api):
        for number in (0, 2**31, 2**63 - 1):
            restored = api.post(f"/nodes/{node['id']}/versions/{number}/restore")
            assert (restored.status_code, error_code(restored)) == (404, "not_found"), number
            if number:
                listed = api.get(f"/nodes/{node['id']}/manifest", params={"version": number})
                assert (listed.status_code, error_code(listed)) == (404, "not_found"), number
