"""Shares through the sync API (``/shares``, ``/nodes/{id}/shares``) against a real
server process, as alice and bob, on both backends."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from core import Drive, UserInfo
from tests.support.apiclient import Json, commit, error_code

BOB = ("bob", "bob-password")


@pytest.fixture
def bob_api(dav_url: str, bob: UserInfo) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=dav_url + ".drivegate/api/v1", auth=BOB, timeout=60) as client:
        yield client


@pytest.fixture
def team(api: httpx.Client, drive: Drive) -> Json:
    """alice's folder /team holding plan.txt, the user carol and the group sales."""
    drive.add_user("carol", "carol-password")
    drive.add_group("sales")
    drive.add_group_members("sales", ["carol"])
    root = api.get("/me").json()["root_id"]
    folder: Json = api.post("/mkdir", json={"parent_id": root, "name": "team"}).json()
    assert commit(api, b"the plan", parent_id=folder["id"], name="plan.txt").status_code == 201
    return folder


def _share(api: httpx.Client, status: int = 201, **body: Any) -> Json:
    answer = api.post("/shares", json=body)
    assert answer.status_code == status, answer.text
    found: Json = answer.json()
    return found


def _shares(api: httpx.Client, path: str = "/shares") -> list[Json]:
    answer = api.get(path)
    assert answer.status_code == 200, answer.text
    found: list[Json] = answer.json()["shares"]
    return found


def test_alice_shares_bob_reads_by_id_and_loses_it_when_she_revokes(
    api: httpx.Client, bob_api: httpx.Client, team: Json
) -> None:
    grant = _share(api, node_id=team["id"], user="bob", role="editor")
    assert grant.items() >= {
        "node_id": team["id"], "path": "/team", "owner": "alice", "granted_by": "alice",
        "user": "bob", "group": None, "role": "editor", "reshare": False,
    }.items()  # fmt: skip
    assert _shares(api) == [grant]
    assert api.get(f"/shares/{grant['id']}").json() == grant
    (received,) = _shares(bob_api, "/shares/received")
    assert received == {**grant, "path": None}  # bob learns nothing of where it sits
    assert _shares(bob_api) == []
    assert bob_api.get(f"/nodes/{team['id']}").json()["name"] == "team"
    (plan,) = bob_api.get(f"/nodes/{team['id']}/children").json()["nodes"]
    assert plan["name"] == "plan.txt"
    assert bob_api.get(f"/nodes/{plan['id']}/manifest").status_code == 200
    assert _shares(bob_api, f"/nodes/{plan['id']}/shares") == [{**grant, "path": None}]
    assert _shares(api, f"/nodes/{plan['id']}/shares") == [grant]

    assert api.delete(f"/shares/{grant['id']}").status_code == 204
    assert _shares(bob_api, "/shares/received") == []
    for path in (f"/nodes/{team['id']}", f"/nodes/{plan['id']}/manifest"):
        assert error_code(bob_api.get(path)) == "not_found", path
    assert error_code(api.get(f"/shares/{grant['id']}")) == "not_found"


def test_update_a_grant_and_reshare_within_it(
    api: httpx.Client, bob_api: httpx.Client, team: Json, drive: Drive
) -> None:
    grant = _share(api, node_id=team["id"], user="bob")
    assert error_code(_patch(bob_api, grant["id"], reshare=True)) == "not_found"
    updated = _patch(api, grant["id"], role="editor", reshare=True).json()
    assert (updated["role"], updated["reshare"]) == ("editor", True)
    assert _patch(api, grant["id"]).json() == updated  # nothing asked, nothing changed
    onward = _share(bob_api, node_id=team["id"], group="sales", role="editor")
    assert (onward["granted_by"], onward["path"]) == ("bob", None)
    assert _shares(bob_api) == [onward]
    assert [share["id"] for share in _shares(api)] == [grant["id"], onward["id"]]
    carol = drive.user("carol").id
    assert [info.role for info in drive.shares_received(carol)] == ["editor"]
    _patch(api, grant["id"], role="viewer", reshare=True)  # bob's own grant shrinks
    assert error_code(_patch(bob_api, onward["id"], role="editor")) == "forbidden"
    assert _patch(bob_api, onward["id"], role="viewer").status_code == 200
    assert bob_api.delete(f"/shares/{onward['id']}").status_code == 204
    assert drive.shares_received(carol) == []


def _patch(api: httpx.Client, share_id: int, **body: Any) -> httpx.Response:
    return api.patch(f"/shares/{share_id}", json=body)


def test_bad_input_is_a_clear_4xx_and_changes_nothing(
    api: httpx.Client, bob_api: httpx.Client, team: Json, dav_url: str
) -> None:
    grant = _share(api, node_id=team["id"], user="bob")
    root = api.get("/me").json()["root_id"]
    trashed = api.post("/mkdir", json={"parent_id": root, "name": "old"}).json()
    assert api.delete(f"/nodes/{trashed['id']}").status_code == 204
    before = (_shares(api), _shares(bob_api, "/shares/received"))
    refused: list[tuple[str, Json]] = [
        ("not_found", {"node_id": team["id"], "user": "nobody"}),
        ("not_found", {"node_id": team["id"], "group": "nope"}),
        ("not_found", {"node_id": trashed["id"], "user": "carol"}),
        ("not_found", {"node_id": 2**63 - 1, "user": "carol"}),
        ("bad_request", {"node_id": team["id"], "user": "alice"}),  # oneself
        ("bad_request", {"node_id": root, "user": "carol"}),  # the root
        ("bad_request", {"node_id": team["id"], "user": "carol", "role": "owner"}),
        ("bad_request", {"node_id": team["id"]}),
        ("bad_request", {"node_id": team["id"], "user": "carol", "group": "sales"}),
        ("bad_request", {"node_id": team["id"], "user": "x" * 65}),
        ("bad_request", {"node_id": team["id"], "user": "carol", "extra": 1}),
        ("bad_request", {"node_id": "1", "user": "carol"}),
        ("bad_request", {"node_id": 0, "user": "carol"}),
        ("conflict", {"node_id": team["id"], "user": "bob"}),
    ]
    for code, body in refused:
        assert error_code(api.post("/shares", json=body)) == code, body
    for code, body in [
        ("forbidden", {"node_id": team["id"], "user": "carol"}),  # bob has no reshare
        ("not_found", {"node_id": trashed["id"], "user": "carol"}),  # alice's: bob sees nothing
    ]:
        assert error_code(bob_api.post("/shares", json=body)) == code, body
    assert api.post("/shares", content=b"{}", headers={"Content-Type": "text/plain"}).status_code \
        == 415  # fmt: skip
    for method in ("get", "delete"):  # another user's grant: 404, as no grant at all
        assert error_code(bob_api.request(method, f"/shares/{grant['id']}")) == "not_found"
    for body in ({"role": "owner"}, {"reshare": "yes"}, {"colour": "red"}):
        assert error_code(_patch(api, grant["id"], **body)) == "bad_request", body
    assert error_code(_patch(bob_api, grant["id"], role="viewer")) == "not_found"
    for missing in (grant["id"] + 1000, 2**63 - 1):
        assert error_code(api.get(f"/shares/{missing}")) == "not_found"
        assert error_code(api.delete(f"/shares/{missing}")) == "not_found"
    for bad in ("0", "-1", str(2**63), "x"):
        assert api.get(f"/shares/{bad}").status_code == 404
    assert error_code(bob_api.get(f"/nodes/{trashed['id']}/shares")) == "not_found"
    assert (_shares(api), _shares(bob_api, "/shares/received")) == before


def test_a_grant_on_a_node_in_the_trash_stays_until_deleted_and_cannot_change(
    api: httpx.Client, team: Json
) -> None:
    grant = _share(api, node_id=team["id"], group="sales")
    assert api.delete(f"/nodes/{team['id']}").status_code == 204
    kept = api.get(f"/shares/{grant['id']}").json()
    assert kept == {**grant, "path": kept["path"]}  # (a trashed node's path is its own)
    assert error_code(_patch(api, grant["id"], role="editor")) == "conflict"
    assert api.get(f"/shares/{grant['id']}").json() == kept
    assert api.delete(f"/shares/{grant['id']}").status_code == 204
    assert _shares(api) == []
