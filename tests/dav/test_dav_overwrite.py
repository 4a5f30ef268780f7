"""``Overwrite: F`` holds under concurrency: of N parallel MOVEs (or COPYs) of
different files onto one new name, exactly one wins (201) and the others get 412,
with the winner's content at the destination and the losers' sources untouched;
the drive checks in the transaction that moves or copies, not before it."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from core import Drive, UserInfo
from tests.conftest import ALICE

PARALLEL = 6


@pytest.mark.parametrize("method", ["MOVE", "COPY"])
def test_parallel_no_overwrite_moves_and_copies_onto_one_name_have_one_winner(
    dav_url: str, http: httpx.Client, drive: Drive, alice: UserInfo, method: str
) -> None:
    for i in range(PARALLEL):
        assert http.put(f"/src{i}.txt", content=f"content {i}".encode()).status_code == 201
    start = threading.Barrier(PARALLEL)

    def send(i: int) -> int:
        with httpx.Client(base_url=dav_url, auth=ALICE, timeout=60) as client:
            client.options("/")  # connected and logged in before the race starts
            start.wait()
            headers = {"Destination": "/target.txt", "Overwrite": "F"}
            answer = client.request(method, f"/src{i}.txt", headers=headers)
            assert answer.status_code == 201 or "412 Precondition Failed" in answer.text
            return answer.status_code

    with ThreadPoolExecutor(PARALLEL) as pool:
        statuses = list(pool.map(send, range(PARALLEL)))
    assert sorted(statuses) == [201] + [412] * (PARALLEL - 1), statuses
    winner = statuses.index(201)
    assert http.get("/target.txt").content == f"content {winner}".encode()
    for i in range(PARALLEL):
        source = http.get(f"/src{i}.txt")
        if i == winner and method == "MOVE":
            assert source.status_code == 404
        else:
            assert source.content == f"content {i}".encode()
    assert len(drive.versions(alice.id, "/target.txt")) == 1  # never overwritten
