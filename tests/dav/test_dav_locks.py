"""WebDAV locks live in SQL: shared by server processes, atomic, kept across restarts."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from core import Drive, LimitReached, LockRecord, UserInfo, davlocks
from tests.conftest import BackendSetup
from tests.support import ROOT
from tests.support.davbodies import exclusive_lock
from tests.support.servers import drivegate_server

ALICE = ("alice", "alice-password")


@pytest.fixture
def two_servers(backend: BackendSetup, drive: Drive, alice: UserInfo,
                tmp_path: Path) -> Iterator[tuple[str, str]]:  # fmt: skip
    with ExitStack() as stack:
        first = stack.enter_context(drivegate_server(backend.env, tmp_path))
        second = stack.enter_context(drivegate_server(backend.env, tmp_path))
        yield first, second


def _lock(url: str, path: str, owner: str = "tester", **headers: str) -> httpx.Response:
    return httpx.request("LOCK", url + path, auth=ALICE, timeout=60,
                         content=exclusive_lock(owner), headers=headers)  # fmt: skip


def test_a_lock_taken_through_one_process_binds_the_other(two_servers: tuple[str, str]) -> None:
    first, second = two_servers
    assert httpx.put(first + "doc.odt", content=b"v1", auth=ALICE).status_code == 201
    locked = _lock(first, "doc.odt")
    assert locked.status_code == 200, locked.text
    token = locked.headers["Lock-Token"]
    blocked = httpx.put(second + "doc.odt", content=b"sneaky", auth=ALICE)
    assert blocked.status_code == 423
    assert _lock(second, "doc.odt").status_code == 423
    allowed = httpx.put(second + "doc.odt", content=b"v2", auth=ALICE, headers={"If": f"({token})"})
    assert allowed.status_code == 204
    assert httpx.get(first + "doc.odt", auth=ALICE).content == b"v2"


def test_concurrent_lock_attempts_across_processes_have_one_winner(
    two_servers: tuple[str, str],
) -> None:
    httpx.put(two_servers[0] + "contended.docx", content=b"x", auth=ALICE)

    def attempt(i: int) -> int:
        return _lock(two_servers[i % 2], "contended.docx", owner=f"client-{i}").status_code

    with ThreadPoolExecutor(20) as pool:
        statuses = list(pool.map(attempt, range(20)))
    assert statuses.count(200) == 1, statuses
    assert set(statuses) == {200, 423}


def test_locks_survive_a_restart(backend: BackendSetup, drive: Drive, alice: UserInfo,
                                 tmp_path: Path) -> None:  # fmt: skip
    with drivegate_server(backend.env, tmp_path) as url:
        httpx.put(url + "kept.txt", content=b"a", auth=ALICE)
        token = _lock(url, "kept.txt").headers["Lock-Token"]
    with drivegate_server(backend.env, tmp_path) as url:
        assert httpx.put(url + "kept.txt", content=b"b", auth=ALICE).status_code == 423
        held = httpx.put(url + "kept.txt", content=b"b", auth=ALICE, headers={"If": f"({token})"})
        assert held.status_code == 204


def test_lock_timeouts_are_capped(two_servers: tuple[str, str], drive: Drive) -> None:
    first, _ = two_servers
    httpx.put(first + "t.txt", content=b"t", auth=ALICE)
    for asked in ("Infinite", "Second-999999", None):
        headers = {"Timeout": asked} if asked else {}
        response = _lock(first, "t.txt", **headers)
        assert response.status_code == 200
        (seconds,) = re.findall(r"<D:timeout>Second-(\d+)</D:timeout>", response.text)
        assert 3500 < int(seconds) <= 3600
        token = response.headers["Lock-Token"].strip("<>")
        record = drive.locks.get(token)
        assert record is not None and record.expire <= time.time() + 3601
        drive.locks.remove(token)


def test_an_admin_can_list_and_break_a_lock(two_servers: tuple[str, str],
                                            backend: BackendSetup) -> None:  # fmt: skip
    first, _ = two_servers
    httpx.put(first + "stuck.xlsx", content=b"s", auth=ALICE)
    token = _lock(first, "stuck.xlsx").headers["Lock-Token"].strip("<>")
    env = {**os.environ, **backend.env, "PYTHONPATH": str(ROOT)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "drivegate", "lock", *args], env=env,
                              capture_output=True, text=True, check=False)  # fmt: skip

    listed = cli("list")
    assert listed.returncode == 0 and "alice" in listed.stdout and "/stuck.xlsx" in listed.stdout
    assert token in listed.stdout
    assert cli("break", token).returncode == 0
    assert httpx.put(first + "stuck.xlsx", content=b"free", auth=ALICE).status_code == 204
    missing = cli("break", token)
    assert missing.returncode == 1 and "no lock" in missing.stderr


def test_a_lock_owner_over_its_bound_is_refused_and_leaves_no_lock(
    backend: BackendSetup, drive: Drive, alice: UserInfo, tmp_path: Path
) -> None:
    with drivegate_server(backend.env, tmp_path) as url:
        assert httpx.put(url + "f.txt", content=b"x", auth=ALICE).status_code == 201
        answer = _lock(url, "f.txt", owner="o" * (davlocks.MAX_OWNER + 1))
        assert answer.status_code == 400, answer.text
        assert httpx.put(url + "f.txt", content=b"y", auth=ALICE).status_code == 204
        assert drive.locks.all_live() == []


def test_locks_one_principal_may_hold_are_bounded(
    drive: Drive, alice: UserInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(davlocks, "MAX_PER_PRINCIPAL", 3)
    now = time.time()

    def record(token: str, principal: str, expire: float) -> LockRecord:
        return LockRecord(token=token, root=f"/{token}", principal=principal, scope="exclusive",
                          type="write", depth="0", owner="", timeout=60, expire=expire)  # fmt: skip

    drive.locks.create(record("old", "alice", now - 10))  # expired: does not count
    for n in range(3):
        drive.locks.create(record(f"t{n}", "alice", now + 60))
    with pytest.raises(LimitReached):
        drive.locks.create(record("t3", "alice", now + 60))
    drive.locks.create(record("b0", "bob", now + 60))
    assert drive.locks.get("t3") is None and drive.locks.get("b0") is not None
