"""One rule for the URL space: a user's drive at ``/``, everything else under
``/.drivegate/``, the old paths as aliases, and the reserved names published by
the server (real server, both backends)."""

from __future__ import annotations

import httpx

from core import RESERVED_AT_ROOT

ALICE = ("alice", "alice-password")


def test_the_sync_api_and_the_health_check_live_under_the_service_root(dav_url: str) -> None:
    with httpx.Client(base_url=dav_url, auth=ALICE) as client:
        me = client.get(".drivegate/api/v1/me")
        assert me.status_code == 200
        assert me.json()["user"] == "alice"
        assert client.get("api/v1/me").json() == me.json()  # the alias mounts in the field use
        document = client.get(".drivegate/api/v1/openapi.json").json()
        assert document["servers"] == [{"url": "/.drivegate/api/v1"}]
    for health in (".drivegate/healthz", "healthz"):
        assert httpx.get(dav_url + health).text == "ok\n"


def test_the_server_publishes_the_names_it_reserves(api: httpx.Client) -> None:
    names = api.get("/me").json()["reserved_names"]
    assert names == sorted(RESERVED_AT_ROOT)
    assert {".drivegate", ".versions", ".trash", "api"} <= set(names)


def test_no_node_takes_a_reserved_name_at_the_top_of_a_drive(http: httpx.Client) -> None:
    for name in sorted(RESERVED_AT_ROOT - {".versions", ".trash", ":dir_browser"}):
        made = http.request("MKCOL", f"/{name}")
        assert made.status_code >= 400, name
        assert http.put(f"/{name}", content=b"x").status_code >= 400, name
    listing = http.request("PROPFIND", "/", headers={"Depth": "1"}).text
    assert ".drivegate" not in listing and "healthz" not in listing
    # Below the top these are ordinary names.
    assert http.request("MKCOL", "/docs").status_code == 201
    assert http.request("MKCOL", "/docs/.drivegate").status_code == 201
    assert http.put("/docs/api", content=b"x").status_code == 201


def test_only_the_exact_alias_paths_are_rewritten(http: httpx.Client) -> None:
    assert http.request("MKCOL", "/api-notes").status_code == 201  # not /api/…
    assert http.put("/api-notes/v1", content=b"mine").status_code == 201
    assert http.get("/api-notes/v1").content == b"mine"
    assert http.get("/healthz-report").status_code == 404  # a name in alice's drive
    assert http.get("/.drivegate/elsewhere").status_code == 404
