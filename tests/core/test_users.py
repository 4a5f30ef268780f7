"""Users, password hashing and app tokens."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from core import AuthError, Conflict, Drive, InvalidName, InvalidRequest, UserInfo
from core.db.models import AppToken, User


def test_password_is_stored_as_argon2_hash(drive: Drive, alice: UserInfo) -> None:
    with drive.db.read() as session:
        stored = session.execute(select(User.password_hash).where(User.id == alice.id)).scalar_one()
    assert stored.startswith("$argon2id$") and "alice-password" not in stored


def test_app_token_is_shown_once_and_stored_hashed(drive: Drive, alice: UserInfo) -> None:
    token = drive.create_token("alice", "laptop")
    assert token.startswith("dgt_") and len(token) > 40
    with drive.db.read() as session:
        stored = session.execute(select(AppToken.token_hash)).scalar_one()
    assert token not in stored
    assert drive.authenticate("alice", token).id == alice.id


def test_a_token_works_only_for_its_user(drive: Drive, alice: UserInfo, bob: UserInfo) -> None:
    token = drive.create_token("alice", "phone")
    with pytest.raises(AuthError):
        drive.authenticate("bob", token)
    with pytest.raises(AuthError):
        drive.authenticate("alice", token[:-1] + ("x" if token[-1] != "x" else "y"))


def test_password_change(drive: Drive, alice: UserInfo) -> None:
    drive.set_password("alice", "a-new-password")
    with pytest.raises(AuthError):
        drive.authenticate("alice", "alice-password")
    assert drive.authenticate("alice", "a-new-password").name == "alice"


def test_bad_user_input_is_refused(drive: Drive, alice: UserInfo) -> None:
    with pytest.raises(Conflict):
        drive.add_user("alice", "another-password")
    with pytest.raises(InvalidName):
        drive.add_user("no spaces", "long-enough-password")
    with pytest.raises(InvalidName):
        drive.add_user("", "long-enough-password")
    with pytest.raises(InvalidRequest):
        drive.add_user("shorty", "short")
    with pytest.raises(InvalidRequest):
        drive.set_password("alice", "short")
    assert [u.name for u in drive.list_users()] == ["alice"]


def test_each_user_gets_an_empty_root(drive: Drive, alice: UserInfo, bob: UserInfo) -> None:
    assert alice.root_id != bob.root_id
    assert drive.listdir(alice.id, "/") == drive.listdir(bob.id, "/") == []
