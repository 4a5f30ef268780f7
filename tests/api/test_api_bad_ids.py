"""Node ids and version numbers outside 1..2^63-1 (the SQL BIGINT range) are refused
by the sync API before the database sees them: 404 in a path (no such route), 400 in
a JSON body or a query; nothing changes (it was a 500 before)."""

from __future__ import annotations

import httpx

from tests.support.apiclient import commit, error_code, unchanged

MAX_ID = 2**63 - 1
OUT_OF_RANGE = ["0", "-1", str(MAX_ID + 1), "99999999999999999999", "1e3", "%D9%A3"]


def test_ids_outside_the_range_in_paths_are_not_found(api: httpx.Client) -> None:
    made = commit(api, b"v1", parent_id=api.get("/me").json()["root_id"], name="f.txt")
    node = made.json()["id"]
    with unchanged(api):
        for bad in OUT_OF_RANGE:
            for method, path in (
                ("GET", f"/nodes/{bad}"),
                ("PATCH", f"/nodes/{bad}"),
                ("DELETE", f"/nodes/{bad}"),
                ("GET", f"/nodes/{bad}/children"),
                ("GET", f"/nodes/{bad}/manifest"),
                ("GET", f"/nodes/{bad}/versions"),
                ("POST", f"/nodes/{bad}/patch"),
                ("POST", f"/nodes/{bad}/versions/1/restore"),
                ("POST", f"/nodes/{node}/versions/{bad}/restore"),
            ):
                answer = api.request(method, path, json={"mtime_ns": 1})
                assert (answer.status_code, error_code(answer)) == (404, "not_found"), (
                    method, path, answer.text)  # fmt: skip
        assert api.get(f"/nodes/{MAX_ID}").status_code == 404  # in range: looked up, not there


def test_ids_outside_the_range_in_bodies_and_queries_are_bad_requests(api: httpx.Client) -> None:
    root = api.get("/me").json()["root_id"]
    made = commit(api, b"v1", parent_id=root, name="f.txt").json()
    node, version = made["id"], made["version"]["id"]
    with unchanged(api):
        for big in (MAX_ID + 1, 10**30):
            for method, path, body in (
                ("POST", "/move", {"node_id": big, "parent_id": root, "name": "x"}),
                ("POST", "/move", {"node_id": node, "parent_id": big, "name": "x"}),
                ("POST", "/mkdir", {"parent_id": big, "name": "x"}),
                ("POST", "/commit", {"node_id": big, "base_version_id": 1, "size": 0,
                                     "chunks": []}),
                ("POST", "/commit", {"node_id": node, "base_version_id": big, "size": 0,
                                     "chunks": []}),
                ("POST", "/batch", {"ops": [{"op": "delete", "node_id": big}]}),
                ("POST", "/batch", {"ops": [{"op": "patch", "node_id": big, "mtime_ns": 1}]}),
                ("GET", f"/nodes/{node}/manifest?version={big}", None),
                ("DELETE", f"/nodes/{node}?base_version_id={big}", None),
                ("GET", f"/tree?after={big}", None),
                ("POST", f"/nodes/{node}/patch?base_version_id={big}&size=0", None),
            ):  # fmt: skip
                typed = {} if body is not None else {"Content-Type": "application/octet-stream"}
                answer = api.request(method, path, json=body, headers=typed)
                assert (answer.status_code, error_code(answer)) == (400, "bad_request"), (
                    path, body, answer.text)  # fmt: skip
    assert api.get(f"/nodes/{node}").json()["version"]["id"] == version
