"""Shared fixtures. ``drive`` runs every test that uses it on both backends:
SQLite + local chunk dir, and PostgreSQL + S3 (real servers on loopback)."""

from __future__ import annotations

import io
import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest

from core import Drive, Settings, UserInfo, load_settings
from core.db.engine import Database
from core.db.migrate import upgrade
from tests.support.mounts import LoggedServer, logged_server
from tests.support.servers import PostgresCluster, drivegate_server, postgres_cluster, s3_endpoint

TEMPLATE_DB = "dg_template"

HOSTILE_MODULES = frozenset(
    {
        "test_api_bad_ids",  # ids outside 1..2^63-1
        "test_api_bad_input",  # the sync API: malformed, oversized, other users' ids
        "test_bounded_caches",  # caches keyed by what clients send
        "test_api_fuzz",  # Schemathesis over the OpenAPI document
        "test_api_groups",  # administrators' operations: anyone else, bad names and bodies
        "test_api_shares",  # grants: others' share ids, beyond one's rights, bad grantees
        "test_permission_matrix",  # every principal against every operation on a share
        "test_bad_input",  # the core and the CLI
        "test_chunk_access",  # chunks are per user although stored once
        "test_csrf",  # cross-site requests, both faces
        "test_dav_bad_input",  # WebDAV: XML (XXE, billion laughs, wide encodings), paths, headers
        "test_dav_overwrite",  # Overwrite: F races
        "test_dav_paths",  # deep and long paths, honest error lengths, the root
        "test_dav_ranges",  # Range headers
        "test_hostile_load",  # a burst of hostile requests while a normal client works
        "test_http_framing",  # request framing behind proxies, long headers, If headers
        "test_login_rules",  # the login throttle, credentials that change
        "test_mount_bad_input",  # the mount's CLI and a server that answers badly
        "test_slow_clients",  # slowloris: headers and bodies
        "test_storage_full",  # a full disk
    }
)
"""The hostile-input suite: every attack the project was shown, and the earlier
ones, against both faces and both backends (``pytest -m hostile``)."""
ALICE = ("alice", "alice-password")
_buckets = itertools.count(1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = getattr(item, "module", None)
        if module is not None and module.__name__.rsplit(".", 1)[-1] in HOSTILE_MODULES:
            item.add_marker(pytest.mark.hostile)


@pytest.fixture(scope="session", autouse=True)
def _no_real_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every fixture names its data dir; should a test forget, the default data dir
    (``$XDG_DATA_HOME/drivegate``) is a throwaway one, never the real home's."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("xdg-data")))
        yield


@pytest.fixture(scope="session")
def pg() -> Iterator[PostgresCluster]:
    with postgres_cluster() as cluster:
        with psycopg.connect(cluster.admin_url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {TEMPLATE_DB}")
        database = Database(cluster.url(TEMPLATE_DB))
        upgrade(database)
        database.dispose()
        yield cluster


@pytest.fixture(scope="session")
def s3() -> Iterator[str]:
    with s3_endpoint() as url:
        yield url


@dataclass
class BackendSetup:
    """How to reach one backend's fresh database and store."""

    name: str
    settings: Settings
    env: dict[str, str]


@pytest.fixture(params=["sqlite-file", "postgres-s3"])
def backend(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[BackendSetup]:
    data_dir = os.path.join(str(tmp_path), "data")
    if request.param == "sqlite-file":
        settings = load_settings(data_dir=data_dir, gc_grace_seconds=0)
        yield BackendSetup(request.param, settings, {"DRIVEGATE_DATA_DIR": data_dir})
        return
    pg: PostgresCluster = request.getfixturevalue("pg")
    s3: str = request.getfixturevalue("s3")
    database = pg.create_database(template=TEMPLATE_DB)
    db_url = pg.url(database)
    store_url = f"s3://bucket-{os.getpid()}-{next(_buckets)}/chunks?endpoint={s3}"
    settings = load_settings(
        data_dir=data_dir,
        db_url=db_url,
        store_url=store_url,
        gc_grace_seconds=0,
        s3_access_key="testing",
        s3_secret_key="testing",
    )
    env = {
        "DRIVEGATE_DATA_DIR": data_dir,
        "DRIVEGATE_DB_URL": db_url,
        "DRIVEGATE_STORE_URL": store_url,
        "DRIVEGATE_S3_ACCESS_KEY": "testing",
        "DRIVEGATE_S3_SECRET_KEY": "testing",
    }
    try:
        yield BackendSetup(request.param, settings, env)
    finally:
        pg.drop_database(database)


@pytest.fixture
def drive(backend: BackendSetup) -> Iterator[Drive]:
    with Drive.open(backend.settings) as opened:
        yield opened


@pytest.fixture
def alice(drive: Drive) -> UserInfo:
    return drive.add_user("alice", "alice-password")


@pytest.fixture
def bob(drive: Drive) -> UserInfo:
    return drive.add_user("bob", "bob-password")


def put(drive: Drive, user: UserInfo, path: str, data: bytes, **kwargs: object) -> object:
    """Write ``data`` to ``path`` (a helper for the many tests that need a file)."""
    return drive.write(user.id, path, io.BytesIO(data), **kwargs)  # type: ignore[arg-type]


def get(drive: Drive, user: UserInfo, path: str, version: int | None = None) -> bytes:
    with drive.open_read(user.id, path, version) as reader:
        return reader.read()


@pytest.fixture
def dav_url(backend: BackendSetup, drive: Drive, alice: UserInfo, bob: UserInfo,
            tmp_path: object) -> Iterator[str]:  # fmt: skip
    """A real WebDAV server process on this test's backend, with alice and bob."""
    with drivegate_server(backend.env, cwd=Path(str(tmp_path))) as url:
        yield url


@pytest.fixture
def http(dav_url: str) -> Iterator[httpx.Client]:
    """An HTTP client logged in as alice on the test's WebDAV server."""
    with httpx.Client(base_url=dav_url, auth=ALICE, timeout=60) as client:
        yield client


@pytest.fixture
def api(dav_url: str) -> Iterator[httpx.Client]:
    """A sync API (``/.drivegate/api/v1``) client logged in as alice on the test's server."""
    with httpx.Client(base_url=dav_url + ".drivegate/api/v1", auth=ALICE, timeout=60) as client:
        yield client


@pytest.fixture
def server_api(server: LoggedServer) -> Iterator[httpx.Client]:
    """A sync API client logged in as alice on the mount tests' server."""
    with httpx.Client(base_url=server.url + ".drivegate/api/v1", auth=ALICE, timeout=60) as client:
        yield client


@pytest.fixture
def server(
    backend: BackendSetup, alice: UserInfo, bob: UserInfo, tmp_path: Path
) -> Iterator[LoggedServer]:
    """A real server process for the mount tests, with its request log (alice and bob)."""
    with logged_server(backend.env, tmp_path) as running:
        yield running


@pytest.fixture
def dav(server: LoggedServer) -> Iterator[httpx.Client]:
    """WebDAV as alice on the ``server`` fixture's process."""
    with httpx.Client(base_url=server.url, auth=ALICE, timeout=120) as client:
        yield client
