"""What a browser gets at a folder's URL: drivegate's own read-only folder page
(names escaped, a way to log out), served by the real server on both backends."""

from __future__ import annotations

import re

import httpx


def test_a_folder_page_is_drivegates_and_lists_the_folder(http: httpx.Client) -> None:
    assert http.request("MKCOL", "/Reports").status_code == 201
    assert http.put("/Reports/q1.txt", content=b"x" * 2048).status_code == 201
    assert http.put("/Reports/big.bin", content=b"y" * (3 * 2**20 + 2**19)).status_code == 201
    assert http.put("/Reports/<i>&amp.txt", content=b"").status_code == 201

    page = http.get("/Reports/", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "drivegate" in html
    assert "WsgiDAV" not in html
    assert "<title>/Reports/ · drivegate</title>" in html
    assert re.search(r'q1\.txt</a></td>\s*<td class="num">2 KiB</td>', html)
    assert ">3.5 MiB<" in html  # sizes read as `drivegate user list` writes them
    assert "&lt;i&gt;&amp;amp.txt" in html  # a name is text, never markup
    assert "<i>" not in html
    assert "Signed in as <strong>alice</strong>" in html
    assert "?logout" in html
    assert 'href=".."' in html  # a way up

    root = http.get("/").text
    assert 'href=".."' not in root  # the top has no parent link
    assert "Reports" in root


def test_the_page_assets_need_no_login_and_the_logout_link_asks_again(
    dav_url: str, http: httpx.Client
) -> None:
    style = httpx.get(dav_url + ":dir_browser/style.css")
    assert style.status_code == 200
    assert "text/css" in style.headers["content-type"]
    logo = httpx.get(dav_url + ":dir_browser/logo.svg")
    assert logo.status_code == 200
    assert logo.content.startswith(b"<svg")
    # Following "Log out" with the cached login is answered 401, so the browser drops it.
    assert http.get("/?logout").status_code == 401
    assert http.get("/").status_code == 200
