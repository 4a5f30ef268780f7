"""The change feed behind the API's long-poll: waits end on commits made through
another drive instance (another process, as far as the feed can tell), and on
PostgreSQL every journal commit notifies listeners."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from sqlalchemy.engine import make_url

from core import Drive, UserInfo
from core.changefeed import CHANNEL
from tests.conftest import BackendSetup
from tests.support.mounts import wait_for


def test_a_wait_ends_when_another_instance_commits(
    backend: BackendSetup, drive: Drive, alice: UserInfo
) -> None:
    start = drive.cursor(alice.id)
    with Drive.open(backend.settings) as other, ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(drive.wait_for_changes, alice.id, start, 30)
        other.mkdir(alice.id, "/from-elsewhere")
        assert waiting.result() == start + 1


def test_a_wait_with_nothing_to_wait_for_times_out_at_the_same_position(
    drive: Drive, alice: UserInfo
) -> None:
    start = drive.cursor(alice.id)
    assert drive.wait_for_changes(alice.id, start, 0.05) == start


def test_closing_the_feed_releases_held_waits(drive: Drive, alice: UserInfo) -> None:
    start = drive.cursor(alice.id)
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(drive.wait_for_changes, alice.id, start, 600)
        drive.feed.close()
        assert waiting.result() == start


def test_journal_commits_notify_postgres_listeners(
    backend: BackendSetup, drive: Drive, alice: UserInfo
) -> None:
    if backend.name != "postgres-s3":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    url = make_url(drive.db.url).set(drivername="postgresql")
    with psycopg.connect(url.render_as_string(hide_password=False), autocommit=True) as listener:
        listener.execute(f"LISTEN {CHANNEL}")
        drive.mkdir(alice.id, "/one")
        drive.mkdir(alice.id, "/two")
        seen = [note.payload for note in listener.notifies(timeout=30, stop_after=2)]
    cursor = drive.cursor(alice.id)
    assert seen == [f"{alice.id}:{cursor - 1}", f"{alice.id}:{cursor}"]


def test_a_request_holds_the_wake_ups_of_its_commits_until_it_ends(
    drive: Drive, alice: UserInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inside ``deferred_wakes`` (a server request), a commit wakes the long-polls
    when the hold ends, from the committing thread; outside, a timer wakes them."""
    calls: list[tuple[str, set[int]]] = []
    wake = drive.feed.wake

    def recording(user_ids: Iterable[int]) -> None:
        users = set(user_ids)
        calls.append((threading.current_thread().name, users))
        wake(users)

    monkeypatch.setattr(drive.feed, "wake", recording)

    def woken_by(thread: str | None) -> list[set[int]]:
        # The feed's own polling thread may wake waiters too: it is not the subject.
        return [users for name, users in calls if name != "change-feed" and thread in (None, name)]

    start = drive.cursor(alice.id)
    main = threading.current_thread().name
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(drive.wait_for_changes, alice.id, start, 30)
        wait_for(lambda: alice.id in drive.feed.waiting_users(), what="the long-poll")
        with drive.deferred_wakes():
            drive.mkdir(alice.id, "/held")
            time.sleep(0.05)  # ample for a timer, had one been started
            assert woken_by(None) == []
        assert woken_by(main) == [{alice.id}]
        assert waiting.result() == start + 1

        calls.clear()
        waiting = pool.submit(drive.wait_for_changes, alice.id, start + 1, 30)
        wait_for(lambda: alice.id in drive.feed.waiting_users(), what="the long-poll")
        drive.mkdir(alice.id, "/not-held")
        assert waiting.result() == start + 2
        wait_for(lambda: woken_by(None), what="the timer's wake-up")
        assert woken_by(main) == []
