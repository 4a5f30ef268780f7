"""A received share over the wire: the recipient's sync API (tree, changes, nodes,
manifests, chunks) and WebDAV show it and serve it while the grant lasts, refuse
a viewer's writes (403) and forget it the moment it is revoked (both backends).
Shares are made in-process through ``Drive`` (the CLI and the ``/shares`` routes
have tests of their own)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from core import Drive, UserInfo
from tests.conftest import put
from tests.support.apiclient import whole_tree

BOB = ("bob", "bob-password")


@pytest.fixture
def bob_api(dav_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=dav_url + ".drivegate/api/v1", auth=BOB, timeout=60) as client:
        yield client


@pytest.fixture
def bob_dav(dav_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=dav_url, auth=BOB, timeout=60) as client:
        yield client


def test_a_recipient_syncs_reads_and_loses_a_share_over_the_api(
    drive: Drive, alice: UserInfo, bob: UserInfo, bob_api: httpx.Client
) -> None:
    drive.mkdir(alice.id, "/team")
    put(drive, alice, "/team/plan.txt", b"the plan")
    cursor = bob_api.get("/me").json()["cursor"]
    drive.share(alice.id, "/team", user="bob")
    tree = {node["name"]: node for node in whole_tree(bob_api).values()}
    assert set(tree) == {"team", "plan.txt"}
    entry, plan = tree["team"], tree["plan.txt"]
    assert entry["shared_from"] is not None and entry["read_only"]
    assert plan["parent_id"] == entry["id"] and plan["read_only"]
    changes = bob_api.get("/changes", params={"cursor": cursor}).json()["changes"]
    assert [(c["kind"], c["node"]["name"]) for c in changes] == [
        ("create", "team"), ("create", "plan.txt")]  # fmt: skip
    children = bob_api.get(f"/nodes/{entry['id']}/children").json()["nodes"]
    assert [child["name"] for child in children] == ["plan.txt"]
    manifest = bob_api.get(f"/nodes/{plan['id']}/manifest").json()
    (chunk,) = manifest["chunks"]
    assert bob_api.get(f"/chunks/{chunk['hash']}").content == b"the plan"
    refused = bob_api.post("/mkdir", json={"parent_id": entry["id"], "name": "x"})
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "forbidden"

    drive.unshare(alice.id, "/team", user="bob")
    assert whole_tree(bob_api) == {}
    for gone in (f"/nodes/{plan['id']}", f"/nodes/{plan['id']}/manifest",
                 f"/chunks/{chunk['hash']}", f"/nodes/{entry['id']}/children"):  # fmt: skip
        assert bob_api.get(gone).status_code == 404, gone


def test_a_recipient_sees_and_edits_a_share_over_webdav(
    drive: Drive, alice: UserInfo, bob: UserInfo, bob_dav: httpx.Client
) -> None:
    drive.mkdir(alice.id, "/team")
    drive.mkdir(alice.id, "/view")
    put(drive, alice, "/view/v.txt", b"v")
    drive.share(alice.id, "/team", user="bob", role="editor")
    drive.share(alice.id, "/view", user="bob")
    listing = bob_dav.request("PROPFIND", "/", headers={"Depth": "1"})
    assert listing.status_code == 207 and "team" in listing.text and "view" in listing.text
    assert bob_dav.put("/team/from-bob.txt", content=b"hello").status_code == 201
    assert drive.stat(alice.id, "/team/from-bob.txt").size == 5
    assert bob_dav.get("/view/v.txt").content == b"v"
    assert bob_dav.put("/view/v.txt", content=b"no").status_code == 403
    assert bob_dav.request("MKCOL", "/view/sub").status_code == 403
    assert bob_dav.delete("/view/v.txt").status_code == 403
    drive.unshare(alice.id, "/view", user="bob")
    assert bob_dav.get("/view/v.txt").status_code == 404
