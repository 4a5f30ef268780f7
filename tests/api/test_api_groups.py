"""Users and groups over the sync API: administrators only, over a real server on
both backends. Every refusal is checked to change nothing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import given
from schemathesis import GenerationMode
from sqlalchemy import update

from core import Drive, UserInfo
from core.db.models import User
from davserver.api.app import API_VERSION, PREFIX
from davserver.api.routes import routes
from davserver.api.spec import openapi_document
from tests.api.test_api_fuzz import CONFIG, FUZZ, _negatable
from tests.support.apiclient import error_code

ROOT = ("root", "root-password")
MiB = 1024 * 1024


@pytest.fixture
def admin(drive: Drive) -> UserInfo:
    return drive.add_user(ROOT[0], ROOT[1], is_admin=True, quota=10 * MiB)


@pytest.fixture
def root_api(dav_url: str, admin: UserInfo) -> Iterator[httpx.Client]:
    """A sync API client logged in as the administrator ``root``."""
    with httpx.Client(base_url=dav_url + ".drivegate/api/v1", auth=ROOT, timeout=60) as client:
        yield client


def _groups(drive: Drive) -> dict[str, tuple[str, ...]]:
    return {group.name: group.members for group in drive.list_groups()}


@contextmanager
def _no_change(drive: Drive) -> Iterator[None]:
    before = (drive.list_groups(), drive.list_users())
    yield
    assert (drive.list_groups(), drive.list_users()) == before


def _refused(answer: httpx.Response, status: int, code: str) -> str:
    assert answer.status_code == status, answer.text
    assert error_code(answer) == code
    message: str = answer.json()["error"]["message"]
    return message


def test_an_admin_manages_groups_and_members(
    root_api: httpx.Client, drive: Drive, alice: UserInfo, bob: UserInfo
) -> None:
    made = root_api.post("/groups", json={"name": "sales"})
    assert made.status_code == 201, made.text
    assert made.json()["name"] == "sales" and made.json()["members"] == []
    assert root_api.post("/groups", json={"name": "ops"}).status_code == 201
    added = root_api.post("/groups/sales/members", json={"users": ["bob", "alice", "bob"]})
    assert added.status_code == 200, added.text
    assert added.json()["members"] == ["alice", "bob"]
    again = root_api.post("/groups/sales/members", json={"users": ["alice"]})
    assert again.json()["members"] == ["alice", "bob"]  # a member already: no change
    listing = root_api.get("/groups").json()["groups"]
    assert [(g["name"], g["members"]) for g in listing] == [
        ("ops", []),
        ("sales", ["alice", "bob"]),
    ]
    assert root_api.get("/groups/sales").json() == added.json()
    assert root_api.delete("/groups/sales/members/bob").status_code == 204
    assert _groups(drive) == {"ops": (), "sales": ("alice",)}
    assert root_api.delete("/groups/sales").status_code == 204
    assert _groups(drive) == {"ops": ()}
    _refused(root_api.get("/groups/sales"), 404, "not_found")


def test_an_admin_lists_the_users(
    root_api: httpx.Client, drive: Drive, alice: UserInfo, bob: UserInfo
) -> None:
    drive.set_quota("bob", 5 * MiB)
    users = root_api.get("/users").json()["users"]
    assert [user["name"] for user in users] == ["alice", "bob", "root"]
    by_name = {user.pop("name"): user for user in users}
    assert by_name["root"] == {"is_admin": True, "quota": 10 * MiB, "used": 0}
    assert by_name["bob"] == {"is_admin": False, "quota": 5 * MiB, "used": 0}
    assert by_name["alice"] == {"is_admin": False, "quota": None, "used": 0}


def test_anyone_but_an_admin_gets_403_and_changes_nothing(
    api: httpx.Client, root_api: httpx.Client, drive: Drive, alice: UserInfo
) -> None:
    root_api.post("/groups", json={"name": "sales"})
    root_api.post("/groups/sales/members", json={"users": ["bob"]})
    requests: list[tuple[str, str, Any]] = [
        ("GET", "/users", None),
        ("GET", "/groups", None),
        ("POST", "/groups", {"name": "mine"}),
        ("POST", "/groups", {"name": "sales"}),
        ("GET", "/groups/sales", None),
        ("GET", "/groups/nope", None),
        ("DELETE", "/groups/sales", None),
        ("POST", "/groups/sales/members", {"users": ["alice"]}),
        ("POST", "/groups/nope/members", {"users": ["nobody"]}),
        ("POST", "/groups/sales/members", {"users": "not a list"}),
        ("DELETE", "/groups/sales/members/bob", None),
        ("DELETE", "/groups/nope/members/nobody", None),
    ]
    answers = []
    with _no_change(drive):
        for method, path, body in requests:
            answer = api.request(method, path, json=body)
            assert "admins only" in _refused(answer, 403, "forbidden"), (method, path)
            answers.append(answer.json())
    # The same answer whatever exists: a non-admin learns nothing of groups or users.
    assert all(answer == answers[0] for answer in answers)
    assert _groups(drive) == {"sales": ("bob",)}


def test_admin_rights_are_read_on_every_request(
    api: httpx.Client, drive: Drive, alice: UserInfo
) -> None:
    assert api.get("/groups").status_code == 403
    with drive.db.write() as session:
        session.execute(update(User).where(User.id == alice.id).values(is_admin=True))
    assert api.post("/groups", json={"name": "hers"}).status_code == 201
    with drive.db.write() as session:
        session.execute(update(User).where(User.id == alice.id).values(is_admin=False))
    with _no_change(drive):
        _refused(api.delete("/groups/hers"), 403, "forbidden")


def test_unknown_users_and_groups_are_404_and_change_nothing(
    root_api: httpx.Client, drive: Drive, alice: UserInfo, bob: UserInfo
) -> None:
    root_api.post("/groups", json={"name": "sales"})
    root_api.post("/groups/sales/members", json={"users": ["alice"]})
    with _no_change(drive):
        message = _refused(
            root_api.post("/groups/sales/members", json={"users": ["bob", "nobody"]}),
            404,
            "not_found",
        )
        assert "nobody" in message and "bob" not in message
        for method, path, body in (
            ("GET", "/groups/nope", None),
            ("DELETE", "/groups/nope", None),
            ("POST", "/groups/nope/members", {"users": ["alice"]}),
            ("DELETE", "/groups/nope/members/alice", None),
            ("DELETE", "/groups/sales/members/bob", None),  # not a member
            ("DELETE", "/groups/sales/members/nobody", None),
            ("DELETE", "/groups/sales/members/bad%20name", None),
            ("GET", "/groups/bad%20name", None),
            ("GET", "/groups/" + "x" * 200, None),
        ):
            _refused(root_api.request(method, path, json=body), 404, "not_found")
    assert _groups(drive) == {"sales": ("alice",)}


BAD_GROUP_BODIES: list[Any] = [
    {"name": ""},
    {"name": "bad name"},
    {"name": "tab\there"},
    {"name": "nul\x00"},
    {"name": "sales\n"},
    {"name": "x" * 65},
    {"name": "-dash"},
    {"name": "a/b"},
    {"name": 7},
    {"name": None},
    {},
    {"name": "ok", "extra": 1},
    ["sales"],
]
BAD_MEMBERS_BODIES: list[Any] = [
    {"users": []},
    {"users": "alice"},
    {"users": ["bad name"]},
    {"users": ["alice\n"]},
    {"users": [None]},
    {"users": ["alice"] * 1001},
    {"user": ["alice"]},
]


def test_bad_names_and_bodies_are_refused_and_change_nothing(
    root_api: httpx.Client, drive: Drive, alice: UserInfo
) -> None:
    root_api.post("/groups", json={"name": "sales"})
    with _no_change(drive):
        message = _refused(root_api.post("/groups", json={"name": "sales"}), 409, "name_taken")
        assert "already exists" in message
        for body in BAD_GROUP_BODIES:
            _refused(root_api.post("/groups", json=body), 400, "bad_request")
        for body in BAD_MEMBERS_BODIES:
            _refused(root_api.post("/groups/sales/members", json=body), 400, "bad_request")


def test_oversized_or_untyped_bodies_are_refused_and_change_nothing(
    root_api: httpx.Client, drive: Drive, alice: UserInfo
) -> None:
    root_api.post("/groups", json={"name": "sales"})
    big = b'{"users": [' + b'"alice",' * (MiB // 8) + b'"alice"]}'
    with _no_change(drive):
        json_type = {"Content-Type": "application/json"}
        answer = root_api.post("/groups/sales/members", content=big, headers=json_type)
        _refused(answer, 413, "too_large")
        answer = root_api.post("/groups", content=b'{"name": "x' + b"x" * MiB + b'"}',
                               headers=json_type)  # fmt: skip
        _refused(answer, 413, "too_large")
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        answer = root_api.post("/groups", content=b'{"name": "forms"}', headers=form)
        _refused(answer, 415, "unsupported_media_type")
        answer = root_api.post("/groups", content=b'{"name": ', headers=json_type)
        _refused(answer, 400, "bad_request")


def test_the_document_says_which_operations_are_for_admins(drive: Drive) -> None:
    document = openapi_document(routes(drive, 1), PREFIX, API_VERSION)
    admin = {
        ("get", "/users"), ("get", "/groups"), ("post", "/groups"), ("get", "/groups/{group}"),
        ("delete", "/groups/{group}"), ("post", "/groups/{group}/members"),
        ("delete", "/groups/{group}/members/{user}"),
    }  # fmt: skip
    for path, item in document["paths"].items():
        for method, described in item.items():
            # 403 also answers a share beyond one's rights: the summary says who may.
            for_admins = described["summary"].endswith("Administrators only.")
            assert for_admins == ((method, path) in admin), (method, path)
            if for_admins:
                assert "403" in described["responses"], (method, path)


def test_the_admin_operations_answer_an_admin_as_documented(
    root_api: httpx.Client, dav_url: str, alice: UserInfo, subtests: pytest.Subtests
) -> None:
    """Schemathesis, as in test_api_fuzz.py (whose alice only ever gets 403 here), over
    the administrators' operations as ``root``: what the document allows and forbids."""
    config = {**CONFIG, "auth": {"openapi": {"basic": {"username": ROOT[0], "password": ROOT[1]}}}}
    schema: Any = schemathesis.openapi.from_url(
        dav_url + ".drivegate/api/v1/openapi.json", config=schemathesis.Config.from_dict(config)
    )
    root_api.post("/groups", json={"name": "sales"})
    for result in schema.get_all_operations():
        operation = result.ok()
        if not operation.path.startswith(("/groups", "/users")):
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            if mode is GenerationMode.NEGATIVE and not _negatable(operation):
                continue

            @FUZZ
            @given(case=operation.as_strategy(generation_mode=mode))
            def fuzz(case: Any) -> None:
                case.call_and_validate()

            with subtests.test(operation=operation.label, mode=mode.value):
                fuzz()
