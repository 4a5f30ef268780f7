"""SQLite's write-ahead log is checkpointed by the database's own thread, soon
after commits, and never by the committing transaction; a write lock held by
another process makes writes fail fast, not hang."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from core.db import checkpoint
from core.db.engine import Database
from tests.support.servers import drivegate_server


def test_writes_fsync_their_commits_unless_told_they_need_not(tmp_path: Path) -> None:
    """synchronous=FULL (2): a committed version survives a power cut, not only
    a crash of the process (NORMAL, 1, syncs only at checkpoints in WAL mode).
    Bookkeeping (``durable=False``) commits with NORMAL, on the same pooled
    connection, and the next write is FULL again."""
    database = Database(f"sqlite:///{tmp_path}/d.db")
    try:
        for durable, expected in ((True, 2), (False, 1), (True, 2), (False, 1), (True, 2)):
            with database.write(durable=durable) as session:
                assert session.execute(text("PRAGMA synchronous")).scalar_one() == expected
                assert session.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
    finally:
        database.dispose()


def _rows_in_file_alone(db_file: Path, copy: Path) -> int:
    """The rows of ``t`` that the database file holds without its WAL."""
    shutil.copyfile(db_file, copy)
    with sqlite3.connect(copy) as connection:
        try:
            return int(connection.execute("SELECT count(*) FROM t").fetchone()[0])
        except sqlite3.OperationalError:  # the table itself is still only in the WAL
            return 0


def test_commits_reach_the_database_file_through_the_checkpoint_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(checkpoint, "DELAY", 3.0)  # time to look before it runs
    db_file = tmp_path / "meta.db"
    database = Database(f"sqlite:///{db_file}")
    try:
        # 2,000 pages: SQLite on its own would checkpoint inside this commit.
        with database.write() as session:
            session.execute(text("CREATE TABLE t (x BLOB)"))
            session.execute(text("INSERT INTO t VALUES (:x)"), [{"x": b"x" * 4000}] * 2000)
        assert db_file.with_name("meta.db-wal").stat().st_size > 2000 * 4096
        assert _rows_in_file_alone(db_file, tmp_path / "now.db") == 0
        deadline = time.monotonic() + checkpoint.DELAY + 10
        while _rows_in_file_alone(db_file, tmp_path / "later.db") != 2000:
            assert time.monotonic() < deadline, "the WAL was never checkpointed"
            time.sleep(0.1)
    finally:
        database.dispose()


def test_a_write_lock_held_by_another_process_fails_requests_fast_and_healthz_says_so(
    tmp_path: Path,
) -> None:
    """A stuck ``sqlite3`` shell (or backup tool) holding the write lock made every
    write wait 30 s per transaction, queued requests paying it again one after
    another (60-120 s), while /healthz said 200. Now each write gives up after the
    busy timeout (503 + Retry-After), /healthz is 503, reads and logins go on, and
    everything works again once the lock is released."""
    data = tmp_path / "data"
    env = {"DRIVEGATE_DATA_DIR": str(data), "DRIVEGATE_DB_BUSY_TIMEOUT_SECONDS": "1"}
    subprocess.run(
        [sys.executable, "-m", "drivegate", "user", "add", "alice", "--password-stdin"],
        input="alice-password", env={**os.environ, **env}, check=True, capture_output=True,
        text=True, cwd=tmp_path,
    )  # fmt: skip
    token = subprocess.run(
        [sys.executable, "-m", "drivegate", "token", "create", "laptop", "--user", "alice"],
        env={**os.environ, **env}, check=True, capture_output=True, text=True, cwd=tmp_path,
    ).stdout.split()[-1]  # fmt: skip
    with drivegate_server(env, cwd=tmp_path) as url, httpx.Client(base_url=url, timeout=60) as http:
        http.auth = ("alice", "alice-password")
        assert http.put("/before.txt", content=b"before").status_code == 201
        holder = sqlite3.connect(data / "drivegate.db", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            assert http.get("/healthz").status_code == 503
            with ThreadPoolExecutor(4) as pool:
                puts = list(pool.map(lambda i: http.put(f"/f{i}.txt", content=b"x"), range(4)))
            for answer in puts:
                assert answer.status_code == 503, answer.text
                assert answer.headers["Retry-After"].isdigit()
            assert http.get("/before.txt").content == b"before"  # reads go on
            # A first login is a read (its bookkeeping is written later): not stuck.
            assert httpx.get(url, auth=("alice", token), timeout=60).status_code == 200
            assert httpx.get(url, auth=("bob", "nobody"), timeout=60).status_code == 401
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert http.get("/healthz").status_code == 200
        assert http.put("/after.txt", content=b"after").status_code == 201
