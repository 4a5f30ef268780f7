"""The permission matrix: every kind of principal against every WebDAV method and
every sync-API route on a shared folder, over a real server (both backends).

alice owns ``/shared`` (files and a subfolder) and grants it: bob as an editor,
carol as a viewer, dave as a viewer who may reshare, the group ``team`` as an
editor (erin stays a member; frank was one and was taken out); hank had a
grant that was revoked; gina never had anything. Each principal runs every
operation on its own target (so no operation depends on another's effect) and
the test reports every cell that differs from the expected outcome.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest

from core import Drive, NodeRef, UserInfo

PASSWORD = "matrix-password"
API = ".drivegate/api/v1"
OPS = ("put", "mkcol", "delete", "move", "copy", "proppatch", "lock", "restore", "mkdir",
       "api_move", "api_delete", "api_mtime", "commit")  # fmt: skip
READS = ("propfind", "get", "head", "api_node", "api_children", "api_manifest", "api_versions",
         "chunk")  # fmt: skip


@dataclass(frozen=True)
class Principal:
    name: str
    reads: bool  # may it read the share?
    writes: bool  # may it change it?


PRINCIPALS = [
    Principal("alice", reads=True, writes=True),  # the owner
    Principal("bob", reads=True, writes=True),  # editor
    Principal("carol", reads=True, writes=False),  # viewer
    Principal("dave", reads=True, writes=False),  # viewer with reshare
    Principal("erin", reads=True, writes=True),  # editor through the group
    Principal("frank", reads=False, writes=False),  # taken out of the group
    Principal("gina", reads=False, writes=False),  # a stranger
    Principal("hank", reads=False, writes=False),  # revoked
]


def _setup(drive: Drive, alice: UserInfo) -> dict[str, int]:
    """The share, and the node ids every principal's operations aim at."""
    for name in ("carol", "dave", "erin", "frank", "gina", "hank"):
        drive.add_user(name, PASSWORD)
    drive.set_password("bob", PASSWORD)
    drive.set_password("alice", PASSWORD)
    drive.mkdir(alice.id, "/shared")
    ids: dict[str, int] = {"shared": drive.stat(alice.id, "/shared").id}
    for name in ("read", *OPS):
        info = drive.write(alice.id, f"/shared/{name}.txt", io.BytesIO(name.encode()))
        ids[name] = info.id
    drive.write(alice.id, "/shared/restore.txt", io.BytesIO(b"second"))
    drive.add_group("team")
    drive.add_group_members("team", ["erin", "frank"])
    for user, role, reshare in (("bob", "editor", False), ("carol", "viewer", False),
                                ("dave", "viewer", True), ("hank", "editor", False)):  # fmt: skip
        drive.share(alice.id, "/shared", user=user, role=role, reshare=reshare)
    drive.share(alice.id, "/shared", group="team", role="editor")
    drive.remove_group_members("team", ["frank"])
    drive.unshare(alice.id, "/shared", user="hank")
    return ids


def _operations(
    dav: httpx.Client, api: httpx.Client, ids: dict[str, int]
) -> dict[str, Callable[[], httpx.Response]]:
    """Each operation on its own target (paths as a recipient sees them: the share
    is at ``/shared`` for everyone who has it)."""
    read_hash = hashlib.sha256(b"read").hexdigest()
    return {
        "propfind": lambda: dav.request("PROPFIND", "/shared/", headers={"Depth": "1"}),
        "get": lambda: dav.get("/shared/read.txt"),
        "head": lambda: dav.head("/shared/read.txt"),
        "api_node": lambda: api.get(f"/nodes/{ids['read']}"),
        "api_children": lambda: api.get(f"/nodes/{ids['shared']}/children"),
        "api_manifest": lambda: api.get(f"/nodes/{ids['read']}/manifest"),
        "api_versions": lambda: api.get(f"/nodes/{ids['read']}/versions"),
        "chunk": lambda: api.get(f"/chunks/{read_hash}"),
        "put": lambda: dav.put("/shared/put.txt", content=b"changed"),
        "mkcol": lambda: dav.request("MKCOL", "/shared/mkcol-new"),
        "delete": lambda: dav.delete("/shared/delete.txt"),
        "move": lambda: dav.request(
            "MOVE",
            "/shared/move.txt",
            headers={"Destination": str(dav.base_url.join("/shared/m2"))},
        ),
        "copy": lambda: dav.request(
            "COPY",
            "/shared/copy.txt",
            headers={"Destination": str(dav.base_url.join("/shared/c2"))},
        ),
        "proppatch": lambda: dav.request(
            "PROPPATCH",
            "/shared/proppatch.txt",
            content=b'<?xml version="1.0"?><d:propertyupdate xmlns:d="DAV:" xmlns:x="urn:x">'
            b"<d:set><d:prop><x:k>v</x:k></d:prop></d:set></d:propertyupdate>",
        ),
        "lock": lambda: dav.request(
            "LOCK",
            "/shared/lock.txt",
            content=b'<?xml version="1.0"?><d:lockinfo xmlns:d="DAV:"><d:lockscope>'
            b"<d:exclusive/></d:lockscope><d:locktype><d:write/></d:locktype></d:lockinfo>",
        ),
        "restore": lambda: api.post(f"/nodes/{ids['restore']}/versions/1/restore"),
        "mkdir": lambda: api.post("/mkdir", json={"parent_id": ids["shared"], "name": "api-new"}),
        "api_move": lambda: api.post(
            "/move", json={"node_id": ids["api_move"], "parent_id": ids["shared"], "name": "am2"}
        ),
        "api_delete": lambda: api.delete(f"/nodes/{ids['api_delete']}"),
        "api_mtime": lambda: api.patch(f"/nodes/{ids['api_mtime']}", json={"mtime_ns": 10**18}),
        "commit": lambda: api.post(
            "/commit",
            json={
                "parent_id": ids["shared"],
                "name": "commit-new",
                "size": 4,
                "chunks": [{"hash": read_hash, "length": 4}],
            },
        ),
    }


def _to(dav: httpx.Client, name: str) -> dict[str, str]:
    return {"Destination": str(dav.base_url.join(f"/shared/{name}"))}


def _outcome(status: int) -> str:
    if status < 300:
        return "ok"
    return {403: "forbidden", 404: "not found", 409: "not found"}.get(status, str(status))


@pytest.mark.parametrize("who", PRINCIPALS, ids=lambda p: p.name)
def test_each_principal_gets_exactly_its_rights_in_every_face(
    drive: Drive, alice: UserInfo, bob: UserInfo, dav_url: str, who: Principal
) -> None:
    ids = _setup(drive, alice)
    auth = (who.name, PASSWORD)
    with (
        httpx.Client(base_url=dav_url, auth=auth, timeout=60) as dav,
        httpx.Client(base_url=dav_url + API, auth=auth, timeout=60) as api,
    ):
        operations = _operations(dav, api, ids)
        wrong = []
        for name, run in operations.items():
            if name in READS:
                expected = "ok" if who.reads else "not found"
            else:
                expected = "ok" if who.writes else "forbidden" if who.reads else "not found"
            got = run()
            outcome = _outcome(got.status_code)
            if name == "proppatch" and got.status_code == 207 and " 403 " in got.text:
                outcome = "forbidden"  # PROPPATCH answers per property
            if outcome != expected:
                wrong.append(f"{name}: expected {expected}, got {got.status_code} {got.text[:120]}")
    assert not wrong, f"{who.name}:\n" + "\n".join(wrong)
    if not who.writes:  # nothing a refused principal tried changed the share
        names = sorted(info.name for info in drive.listdir(alice.id, "/shared"))
        assert names == sorted(f"{name}.txt" for name in ("read", *OPS))
        assert drive.stat(alice.id, NodeRef.by_id(ids["put"])).size == len(b"put")
