"""Cross-site request forgery: a hostile page cannot change anything through a
browser that holds the user's credentials, on either face (real server)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import ALICE, BackendSetup
from tests.support.apiclient import error_code, unchanged, whole_tree
from tests.support.servers import drivegate_server

EVIL = "https://evil.example"


def _root(api: httpx.Client) -> int:
    root: int = api.get("/me").json()["root_id"]
    return root


def test_api_changes_from_another_site_are_refused(api: httpx.Client, dav_url: str) -> None:
    mkdir = {"parent_id": _root(api), "name": "made-by-evil"}
    with unchanged(api):
        for headers in (
            {"Origin": EVIL},
            {"Origin": "null"},  # sandboxed frames, file:// pages
            {"Origin": dav_url.rstrip("/").replace("127.0.0.1", "localhost")},  # another host
            {"Sec-Fetch-Site": "cross-site"},
            {"Sec-Fetch-Site": "same-site"},
        ):
            answer = api.post("/mkdir", json=mkdir, headers=headers)
            assert answer.status_code == 403, (headers, answer.text)
            assert "cross-site" in answer.text
    own = dav_url.rstrip("/")
    answer = api.post(
        "/mkdir", json=mkdir, headers={"Origin": own, "Sec-Fetch-Site": "same-origin"}
    )
    assert answer.status_code == 201, answer.text
    assert api.get("/me", headers={"Origin": EVIL}).status_code == 200  # reads are not changes


def test_api_json_is_only_taken_as_application_json(api: httpx.Client) -> None:
    """A form or a "simple" request cannot send application/json without a preflight."""
    body = f'{{"parent_id": {_root(api)}, "name": "x"}}'
    with unchanged(api):
        for content_type in (
            "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=b",
            None,
        ):  # fmt: skip
            headers = {"Content-Type": content_type} if content_type else {}
            answer = api.post("/mkdir", content=body, headers=headers)
            assert (answer.status_code, error_code(answer)) == (415, "unsupported_media_type")
    answer = api.post(
        "/mkdir", content=body, headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert answer.status_code == 201, answer.text


def test_a_patch_is_only_taken_as_octets(api: httpx.Client, http: httpx.Client) -> None:
    """An untyped POST is a simple request: it must not truncate a file."""
    http.put("/f.txt", content=b"keep me")
    node = next(n for n in whole_tree(api).values() if n["name"] == "f.txt")
    query = {"base_version_id": node["version"]["id"], "size": 0, "ranges": ""}
    with unchanged(api):
        for headers in ({}, {"Content-Type": "text/plain"}):
            answer = api.post(f"/nodes/{node['id']}/patch", params=query, headers=headers)
            assert (answer.status_code, error_code(answer)) == (415, "unsupported_media_type")
    assert http.get("/f.txt").content == b"keep me"


def test_webdav_changes_from_another_site_are_refused(http: httpx.Client) -> None:
    http.put("/keep.txt", content=b"kept")
    cross = {"Origin": EVIL}
    for method, path, extra in (
        ("PUT", "/evil.txt", {}),
        ("MKCOL", "/evil", {}),
        ("DELETE", "/keep.txt", {}),
        ("MOVE", "/keep.txt", {"Destination": "/moved.txt"}),
        ("PROPPATCH", "/keep.txt", {}),
        ("LOCK", "/keep.txt", {}),
    ):
        answer = http.request(method, path, headers={**cross, **extra}, content=b"x")
        assert answer.status_code == 403, (method, answer.text)
    assert http.get("/keep.txt", headers=cross).content == b"kept"
    listing = http.request("PROPFIND", "/", headers={"Depth": "1"})
    assert "evil" not in listing.text and "moved" not in listing.text


def test_origins_listed_in_the_settings_are_allowed(
    backend: BackendSetup, alice: object, tmp_path: Path
) -> None:
    app = "https://app.example:8443"
    env = {**backend.env, "DRIVEGATE_ALLOWED_ORIGINS": f'["{app}"]'}
    with (
        drivegate_server(env, cwd=tmp_path) as url,
        httpx.Client(base_url=url + ".drivegate/api/v1", auth=ALICE, timeout=60) as api,
    ):
        into = {"parent_id": _root(api), "name": "from-app"}
        assert api.post("/mkdir", json=into, headers={"Origin": app}).status_code == 201
        other = api.post("/mkdir", json=into, headers={"Origin": "https://app.example"})
        assert other.status_code == 403  # another port is another origin
    assert urlsplit(url).hostname == "127.0.0.1"


@pytest.mark.parametrize("host", ["127.0.0.1", "LOCALHOST"])
def test_the_servers_own_origin_follows_its_host_header(api: httpx.Client, host: str) -> None:
    """Behind a proxy the page's origin is the public name the proxy forwards as Host."""
    public = f"https://{host.lower()}.example"
    headers = {"Host": f"{host}.example", "Origin": public}
    into = {"parent_id": _root(api), "name": f"via-{host}"}
    answer = api.post("/mkdir", json=into, headers=headers)
    assert answer.status_code == 201, answer.text
