"""The change feed behind the API's long-poll: waits end on commits made through
another drive instance (another process, as far as the feed can tell), and on
PostgreSQL every journal commit notifies listeners."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from sqlalchemy.engine import make_url

from core import Drive, UserInfo
from core.changefeed import CHANNEL
from tests.conftest import BackendSetup


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
