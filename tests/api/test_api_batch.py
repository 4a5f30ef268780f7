"""``POST /batch``: tree operations done in order, each as its own request, until
one is refused; against a real server process, on both backends."""

from __future__ import annotations

import httpx

from tests.api.test_api_ids import reserve, root_of
from tests.support.apiclient import Json, error_code, put_chunks, unchanged, whole_tree


def batch(api: httpx.Client, *ops: Json) -> Json:
    answer = api.post("/batch", json={"ops": list(ops)})
    assert answer.status_code == 200, answer.text
    body: Json = answer.json()
    return body


def test_operations_are_done_in_order_and_answered_as_their_own_requests(
    api: httpx.Client,
) -> None:
    root = root_of(api)
    folder_id, file_id, empty_id = reserve(api, 3)
    entries = put_chunks(api, b"content in the batch")
    ops = [
        {"op": "mkdir", "parent_id": root, "name": "made", "id": folder_id},
        {"op": "commit", "parent_id": folder_id, "name": "a.txt", "id": file_id,
         "size": 20, "chunks": entries, "mtime_ns": 1_000_000_000},
        {"op": "commit", "parent_id": folder_id, "name": "scratch", "id": empty_id,
         "size": 0, "chunks": []},
        {"op": "move", "node_id": file_id, "parent_id": root, "name": "b.txt"},
        {"op": "patch", "node_id": folder_id, "mtime_ns": 2_000_000_000},
        {"op": "delete", "node_id": empty_id},
    ]  # fmt: skip
    answer = batch(api, *ops)
    assert answer["error"] is None
    assert [r["status"] for r in answer["results"]] == [201, 201, 201, 200, 200, 204]
    moved = answer["results"][3]["node"]
    assert (moved["id"], moved["parent_id"], moved["name"]) == (file_id, root, "b.txt")
    assert answer["results"][5]["node"] is None
    tree = whole_tree(api)
    assert tree[file_id]["size"] == 20 and tree[file_id]["version"]["number"] == 1
    assert tree[folder_id]["mtime_ns"] == 2_000_000_000 and empty_id not in tree
    assert api.get(f"/nodes/{file_id}/versions").json()["versions"][0]["size"] == 20

    # Sent again (an answer lost on the way): creates answer their node, nothing changes
    # twice; the delete of a node already gone is the first refusal.
    with unchanged(api):
        again = batch(api, *ops[:2])
    assert [r["status"] for r in again["results"]] == [200, 200]


def test_the_first_refusal_stops_the_batch_and_says_why(api: httpx.Client) -> None:
    root = root_of(api)
    first, second, third = reserve(api, 3)
    assert api.post("/mkdir", json={"parent_id": root, "name": "taken"}).status_code == 201
    answer = batch(
        api,
        {"op": "mkdir", "parent_id": root, "name": "fine", "id": first},
        {"op": "mkdir", "parent_id": root, "name": "taken", "id": second},
        {"op": "mkdir", "parent_id": root, "name": "never", "id": third},
    )
    assert [r["node"]["id"] for r in answer["results"]] == [first]
    error = answer["error"]
    assert (error["status"], error["code"]) == (409, "name_taken") and "taken" in error["message"]
    names = {node["name"] for node in whole_tree(api).values()}
    assert "fine" in names and "never" not in names

    stale = batch(api, {"op": "commit", "node_id": first, "base_version_id": 1, "size": 0,
                        "chunks": []})  # fmt: skip
    assert stale["results"] == [] and stale["error"]["code"] == "not_a_file"
    gone = batch(api, {"op": "delete", "node_id": 999_999})
    assert (gone["error"]["status"], gone["error"]["code"]) == (404, "not_found")


def test_a_malformed_batch_is_refused_whole_and_changes_nothing(api: httpx.Client) -> None:
    root = root_of(api)
    good = {"op": "mkdir", "parent_id": root, "name": "would be made"}
    bad_batches: list[object] = [
        {"ops": []},
        {"ops": [good, {"op": "format", "node_id": 1}]},
        {"ops": [good, {"op": "mkdir", "parent_id": root}]},
        {"ops": [good, {"op": "move", "node_id": "1", "parent_id": root, "name": "x"}]},
        {"ops": [good] * 1001},
        {"ops": good},
        [good],
    ]
    with unchanged(api):
        for body in bad_batches:
            answer = api.post("/batch", json=body)
            assert answer.status_code == 400, (body, answer.text)
            assert error_code(answer) == "bad_request"
        too_big = api.post("/batch", content=b"{" + b" " * (17 * 1024 * 1024) + b"}",
                           headers={"Content-Type": "application/json"})  # fmt: skip
        assert too_big.status_code == 413 and error_code(too_big) == "too_large"
