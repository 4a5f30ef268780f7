"""Node ids reserved in advance (``POST /ids``) and creates that name them (mkdir and
commit with ``id``): against a real server process, on both backends."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from core import Drive, LimitReached, NodeRef, UserInfo, nodeids
from tests.api.test_api import BOB, api_client
from tests.support.apiclient import Json, commit, error_code, unchanged, whole_tree


def reserve(api: httpx.Client, count: int) -> list[int]:
    answer = api.post("/ids", json={"count": count})
    assert answer.status_code == 200, answer.text
    ids: list[int] = answer.json()["ids"]
    assert len(ids) == count and ids == sorted(set(ids))
    return ids


def root_of(api: httpx.Client) -> int:
    root: int = api.get("/me").json()["root_id"]
    return root


def mkdir(api: httpx.Client, name: str, parent: int | None = None, **extra: int) -> httpx.Response:
    return api.post("/mkdir", json={"parent_id": parent or root_of(api), "name": name, **extra})


def created(answer: httpx.Response) -> Json:
    assert answer.status_code == 201, answer.text
    node: Json = answer.json()
    return node


@pytest.fixture
def bob_api(dav_url: str) -> Iterator[httpx.Client]:
    with api_client(dav_url, BOB) as client:
        yield client


def test_a_folder_and_a_file_get_the_ids_reserved_for_them(api: httpx.Client) -> None:
    cursor = api.get("/me").json()["cursor"]
    folder_id, file_id, spare = reserve(api, 3)
    folder = created(mkdir(api, "offline", id=folder_id))
    assert (folder["id"], folder["kind"], folder["name"]) == (folder_id, "folder", "offline")
    made = created(commit(api, b"made offline", parent_id=folder_id, name="a.txt", id=file_id))
    assert (made["id"], made["parent_id"], made["size"]) == (file_id, folder_id, 12)
    tree = whole_tree(api)
    assert tree[folder_id]["name"] == "offline" and tree[file_id]["name"] == "a.txt"
    changes = api.get("/changes", params={"cursor": cursor}).json()["changes"]
    assert [(c["kind"], c["node_id"]) for c in changes] == [
        ("create", folder_id), ("create", file_id),
    ]  # fmt: skip
    assert spare not in tree
    assert created(mkdir(api, "later", id=spare))["id"] == spare


def test_reserved_ids_never_go_to_nodes_created_without_one(
    api: httpx.Client, bob_api: httpx.Client, http: httpx.Client
) -> None:
    mine = reserve(api, 5)
    theirs = reserve(bob_api, 3)
    assert not set(mine) & set(theirs)
    others = [
        created(mkdir(api, "plain"))["id"],
        created(commit(api, b"plain", parent_id=root_of(api), name="plain.txt"))["id"],
        created(mkdir(bob_api, "bobs"))["id"],
    ]
    assert http.request("MKCOL", "/dav-folder").status_code == 201
    assert http.put("/dav-folder/dav.txt", content=b"dav").status_code == 201
    assert http.request("COPY", "/dav-folder", headers={
        "Destination": str(http.base_url.join("/dav-copy")),
    }).status_code == 201  # fmt: skip
    more = reserve(api, 2)
    tree = whole_tree(api)
    others += [node["id"] for node in tree.values()]
    reserved = set(mine) | set(theirs) | set(more)
    assert not reserved & set(others)
    assert len(reserved) == 10
    for number, node_id in enumerate([*mine, *more]):
        assert created(mkdir(api, f"reserved-{number}", id=node_id))["id"] == node_id
    for number, node_id in enumerate(theirs):
        assert created(mkdir(bob_api, f"reserved-{number}", id=node_id))["id"] == node_id
    assert created(mkdir(api, "after"))["id"] not in reserved


def test_another_users_reserved_id_is_refused(api: httpx.Client, bob_api: httpx.Client) -> None:
    (mine,) = reserve(api, 1)
    bob_root = root_of(bob_api)
    with unchanged(bob_api), unchanged(api):
        refused = mkdir(bob_api, "stolen", bob_root, id=mine)
        assert (refused.status_code, error_code(refused)) == (400, "bad_request")
        assert f"id {mine} is not reserved for you" in refused.json()["error"]["message"]
        stolen = commit(bob_api, b"x", parent_id=bob_root, name="stolen.txt", id=mine)
        assert (stolen.status_code, error_code(stolen)) == (400, "bad_request")
        # Nor can anyone name an id their own live node does not have: alice's root.
        assert error_code(mkdir(bob_api, "root", bob_root, id=root_of(api))) == "bad_request"
    assert created(mkdir(api, "mine", id=mine))["id"] == mine


def test_a_replayed_create_answers_the_node_and_changes_nothing(
    api: httpx.Client, http: httpx.Client
) -> None:
    folder_id, file_id = reserve(api, 2)
    folder = created(mkdir(api, "box", id=folder_id))
    made = created(commit(api, b"v1", parent_id=folder_id, name="f.txt", id=file_id))
    with unchanged(api):
        again = mkdir(api, "box", id=folder_id)
        assert (again.status_code, again.json()) == (200, folder)
        renamed = mkdir(api, "other name", id=folder_id)  # whatever it says now
        assert (renamed.status_code, renamed.json()) == (200, folder)
        replay = commit(api, b"different", parent_id=folder_id, name="f.txt", id=file_id)
        assert (replay.status_code, replay.json()) == (200, made)
        # Any kind: an id names the node, whatever the request would have made.
        assert mkdir(api, "f.txt", folder_id, id=file_id).json() == made
    assert len(api.get(f"/nodes/{file_id}/versions").json()["versions"]) == 1
    assert http.get("/box/f.txt").content == b"v1"
    # The node as it is now, wherever it went since.
    moved = api.post("/move", json={"node_id": file_id, "parent_id": root_of(api), "name": "g"})
    assert moved.status_code == 200, moved.text
    with unchanged(api):
        replay = commit(api, b"v1", parent_id=folder_id, name="f.txt", id=file_id)
        assert (replay.status_code, replay.json()) == (200, moved.json())


def test_the_id_of_a_node_in_the_trash_is_used_up(api: httpx.Client) -> None:
    folder_id, file_id, lone_id = reserve(api, 3)
    created(mkdir(api, "doomed", id=folder_id))
    created(commit(api, b"x", parent_id=folder_id, name="inside.txt", id=file_id))
    created(commit(api, b"y", parent_id=root_of(api), name="lone.txt", id=lone_id))
    assert api.delete(f"/nodes/{folder_id}").status_code == 204
    assert api.delete(f"/nodes/{lone_id}").status_code == 204
    with unchanged(api):
        for answer in (
            mkdir(api, "doomed", id=folder_id),
            commit(api, b"x", parent_id=root_of(api), name="inside.txt", id=file_id),
            commit(api, b"y", parent_id=root_of(api), name="lone.txt", id=lone_id),
        ):
            assert (answer.status_code, error_code(answer)) == (409, "id_used")
            assert answer.json()["error"]["message"]


def test_a_create_with_an_id_never_overwrites(api: httpx.Client, http: httpx.Client) -> None:
    file_id, folder_id = reserve(api, 2)
    existing = created(commit(api, b"server", parent_id=root_of(api), name="same.txt"))
    created(mkdir(api, "same"))
    with unchanged(api):
        clash = commit(api, b"client", parent_id=root_of(api), name="same.txt", id=file_id)
        assert (clash.status_code, error_code(clash)) == (409, "name_taken")
        assert error_code(mkdir(api, "same", id=folder_id)) == "name_taken"
    assert http.get("/same.txt").content == b"server"
    assert api.get(f"/nodes/{existing['id']}/versions").json()["versions"][0]["number"] == 1
    # The reservations were not consumed by the refused creates.
    assert created(commit(api, b"c", parent_id=root_of(api), name="b.txt", id=file_id))
    assert created(mkdir(api, "other", id=folder_id))["id"] == folder_id


def test_a_new_users_root_and_copies_skip_reserved_ids(drive: Drive, alice: UserInfo) -> None:
    reserved = set(drive.reserve_ids(alice.id, 3))
    carol = drive.add_user("carol", "carol-password")
    drive.mkdir(alice.id, "/a")
    drive.copy(alice.id, "/a", "/b")
    drive.makedirs(alice.id, "/c/d/e")
    made = {carol.root_id, *(node.id for node in drive.listdir(alice.id, "/"))}
    made |= {drive.stat(alice.id, path).id for path in ("/c/d", "/c/d/e")}
    assert len(made) == 6 and not made & reserved
    if drive.db.dialect == "sqlite":  # every insert takes an id above the reservations
        assert min(made) > max(reserved)


def test_reservations_held_at_once_are_bounded_per_user(
    drive: Drive, alice: UserInfo, bob: UserInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client leaking reserved ids fills a table: each user holds at most MAX_HELD."""
    monkeypatch.setattr(nodeids, "MAX_HELD", 25)
    ids = drive.reserve_ids(alice.id, 20)
    with pytest.raises(LimitReached, match="at most 25"):
        drive.reserve_ids(alice.id, 10)
    assert len(drive.reserve_ids(bob.id, 20)) == 20  # bob's own bound
    drive.mkdir(alice.id, NodeRef.child(drive.stat(alice.id, "/").id, "used"), new_id=ids[0])
    assert len(drive.reserve_ids(alice.id, 6)) == 6  # a used id frees its place
