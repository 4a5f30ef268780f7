"""COPY/MOVE ``Destination`` headers as KDE's KIO (Dolphin, kioclient) and other
clients send them: with user info, with the default port spelled out or left
out, and pointing at another server (still refused), against the real server."""

from __future__ import annotations

import httpx
import pytest

from core import Drive, UserInfo
from davserver.dav.destination import own_destination


def _port(http: httpx.Client) -> int:
    port = http.base_url.port
    assert port is not None
    return port


@pytest.mark.parametrize("method", ["MOVE", "COPY"])
def test_a_destination_with_user_info_is_this_server(
    method: str, http: httpx.Client, drive: Drive, alice: UserInfo
) -> None:
    http.put("/a.txt", content=b"from dolphin")
    port = _port(http)
    # What KIO sends: the login in the Destination URL, the password percent-encoded.
    destination = f"http://alice:alice%2Dpassword@127.0.0.1:{port}/b%20c.txt"
    done = http.request(method, "/a.txt", headers={"Destination": destination})
    assert done.status_code == 201, done.text
    assert http.get("/b c.txt").content == b"from dolphin"
    assert (http.get("/a.txt").status_code == 200) == (method == "COPY")
    renamed = http.request(
        "MOVE", "/b%20c.txt", headers={"Destination": f"http://alice@127.0.0.1:{port}/d.txt"}
    )
    assert renamed.status_code == 201, renamed.text
    assert drive.stat(alice.id, "/d.txt").size == len(b"from dolphin")


def test_the_default_port_may_be_spelled_out_or_left_out(http: httpx.Client) -> None:
    """``Host: drive.test`` and ``http://drive.test:80/…`` name the same server (and the
    other way round): what a client behind a proxy on port 80 may send."""
    http.put("/a.txt", content=b"x")
    spelled = http.request(
        "MOVE", "/a.txt",
        headers={"Host": "drive.test", "Destination": "http://u:p@DRIVE.test:80/b.txt"},
    )  # fmt: skip
    assert spelled.status_code == 201, spelled.text
    omitted = http.request(
        "COPY", "/b.txt",
        headers={"Host": "drive.test:80", "Destination": "http://drive.test/c.txt"},
    )  # fmt: skip
    assert omitted.status_code == 201, omitted.text
    assert http.get("/c.txt").content == b"x"


ELSEWHERE = [
    "http://alice:alice-password@127.0.0.1:{other}/b.txt",  # another port
    "http://alice:alice-password@127.0.0.2:{port}/b.txt",  # another host
    "http://127.0.0.1:{other}/b.txt",
    "https://alice@127.0.0.1:{port}/b.txt",  # another scheme
    "http://127.0.0.1:{port}@evil.test/b.txt",  # the host is what follows the '@'
]


@pytest.mark.parametrize("method", ["MOVE", "COPY"])
def test_a_destination_on_another_server_is_still_refused(
    method: str, http: httpx.Client, drive: Drive, alice: UserInfo
) -> None:
    http.put("/a.txt", content=b"stay")
    port = _port(http)
    for destination in ELSEWHERE:
        url = destination.format(port=port, other=port + 1)
        refused = http.request(method, "/a.txt", headers={"Destination": url})
        assert refused.status_code == 502, (url, refused.text)
    assert http.get("/a.txt").content == b"stay"
    assert [child.name for child in drive.listdir(alice.id, "/")] == ["a.txt"]


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"HTTP_HOST": "h:8080", "HTTP_DESTINATION": "http://u:p@H:8080/a#b?c"},
         "http://h:8080/a#b?c"),  # a '#' stays in the path, as WsgiDAV reads it
        ({"HTTP_HOST": "h", "HTTP_DESTINATION": "http://h:80/a"}, "http://h/a"),
        ({"HTTP_HOST": "127.0.0.1:8080", "HTTP_X_FORWARDED_HOST": "drive.example.org",
          "HTTP_X_FORWARDED_PROTO": "https",
          "HTTP_DESTINATION": "https://me@drive.example.org:443/a"},
         "https://drive.example.org/a"),  # behind a proxy that keeps its own Host
        ({"HTTP_HOST": "[::1]:8080", "HTTP_DESTINATION": "http://u@[::1]:8080/a"},
         "http://[::1]:8080/a"),
        ({"HTTP_HOST": "h:8080", "HTTP_DESTINATION": "/relative"}, None),
        ({"HTTP_HOST": "h:8080", "HTTP_DESTINATION": "http://h:99999/a"}, None),
        ({"HTTP_HOST": "h:8080", "HTTP_DESTINATION": "ftp://h:8080/a"}, None),
        ({"HTTP_HOST": "h:8080"}, None),
    ],
)  # fmt: skip
def test_own_destination(environ: dict[str, str], expected: str | None) -> None:
    assert own_destination({"wsgi.url_scheme": "http", **environ}) == expected
