"""Logins: the failure throttle (per user name and address, 429 with Retry-After
on both faces) and credentials that stop working at once when changed, in
every server process sharing the database. Real server processes; a second
client address comes from binding to another loopback address."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core import Drive, UserInfo
from tests.conftest import BackendSetup
from tests.support import ROOT
from tests.support.servers import drivegate_server
from tests.system.test_cli import Cli

ALICE = ("alice", "alice-password")
STRANGER = "127.0.0.2"


def _client(url: str, source: str = "127.0.0.1") -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=source)
    return httpx.Client(base_url=url, transport=transport, timeout=30)


def test_a_strangers_failures_do_not_lock_the_user_out(dav_url: str) -> None:
    with _client(dav_url, STRANGER) as stranger, _client(dav_url) as own:
        statuses = [stranger.get("/", auth=("alice", f"guess-{i}")).status_code for i in range(10)]
        assert statuses[:6] == [401] * 6 and set(statuses[6:]) == {429}
        # The stranger stays barred, right password or not, on both faces.
        me = "/.drivegate/api/v1/me"
        for answer in (stranger.get("/", auth=ALICE), stranger.get(me, auth=ALICE)):
            assert answer.status_code == 429
            assert int(answer.headers["Retry-After"]) >= 1
        # Alice, from her own address, is not: right password works, wrong is a plain 401.
        assert own.request("PROPFIND", "/", auth=ALICE, headers={"Depth": "0"}).status_code == 207
        assert own.get("/.drivegate/api/v1/me", auth=ALICE).json()["user"] == "alice"
        assert own.get("/", auth=("alice", "typo")).status_code == 401
        # Nor is anyone else from the stranger's address.
        assert stranger.get("/", auth=("bob", "bob-password")).status_code == 200


def test_repeated_failures_get_longer_waits(dav_url: str) -> None:
    with _client(dav_url) as client:
        waits = []
        for i in range(9):
            answer = client.get("/.drivegate/api/v1/me", auth=("nobody", f"guess-{i}"))
            if answer.status_code == 429:
                assert answer.json()["error"]["code"] == "too_many_requests"
                waits.append(int(answer.headers["Retry-After"]))
        assert waits and waits == sorted(waits) and waits[-1] > waits[0]


@pytest.fixture
def two_servers(
    backend: BackendSetup, drive: Drive, alice: UserInfo, tmp_path: Path
) -> Iterator[tuple[str, str]]:
    with (
        drivegate_server(backend.env, tmp_path) as first,
        drivegate_server(backend.env, tmp_path) as second,
    ):
        yield first, second


def _both_answer(urls: tuple[str, str], auth: tuple[str, str]) -> list[int]:
    return [httpx.get(url + ".drivegate/api/v1/me", auth=auth).status_code for url in urls]


def test_a_changed_password_stops_working_at_once_everywhere(
    two_servers: tuple[str, str], drive: Drive
) -> None:
    assert _both_answer(two_servers, ALICE) == [200, 200]  # both now remember the login
    drive.set_password("alice", "the-new-password")
    assert _both_answer(two_servers, ALICE) == [401, 401]
    assert _both_answer(two_servers, ("alice", "the-new-password")) == [200, 200]


def test_a_revoked_token_stops_working_at_once_everywhere(
    two_servers: tuple[str, str], drive: Drive, backend: BackendSetup, tmp_path: Path
) -> None:
    laptop = drive.create_token("alice", "laptop")
    phone = drive.create_token("alice", "phone")
    assert _both_answer(two_servers, ("alice", laptop)) == [200, 200]
    cli = Cli({**backend.env, "PYTHONPATH": str(ROOT)}, tmp_path)
    assert "revoked 1" in cli("token", "revoke", "laptop", "--user", "alice")
    assert _both_answer(two_servers, ("alice", laptop)) == [401, 401]
    assert _both_answer(two_servers, ("alice", phone)) == [200, 200]
    assert "no app token" in cli("token", "revoke", "laptop", "--user", "alice", code=1)


def test_forwarded_for_is_believed_only_from_a_trusted_proxy(
    backend: BackendSetup, alice: UserInfo, tmp_path: Path
) -> None:
    with (
        drivegate_server(backend.env, tmp_path, "--trusted-proxy", "127.0.0.1") as url,
        _client(url) as proxy,
        _client(url, STRANGER) as direct,
    ):
        guesser = {"X-Forwarded-For": "198.51.100.7"}
        for i in range(8):
            proxy.get("/", auth=("alice", f"guess-{i}"), headers=guesser)
        assert proxy.get("/", auth=ALICE, headers=guesser).status_code == 429
        # Alice's own request through the same proxy is not barred.
        assert proxy.get("/", auth=ALICE, headers={"X-Forwarded-For": "203.0.113.9"}).is_success
        # A client that is not the proxy cannot choose its address by the header.
        for i in range(8):
            direct.get(
                "/", auth=("alice", f"guess-{i}"), headers={"X-Forwarded-For": f"10.0.0.{i}"}
            )
        assert (
            direct.get("/", auth=ALICE, headers={"X-Forwarded-For": "10.9.9.9"}).status_code == 429
        )
