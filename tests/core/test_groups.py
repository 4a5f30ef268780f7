"""Groups and their members: the rules of ``core.groups``, on both backends."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import delete, event, func, select

from core import (
    Drive,
    GroupInfo,
    InvalidName,
    InvalidRequest,
    NameTaken,
    NotFound,
    UserInfo,
    UserNotFound,
)
from core.db.models import GroupMember, User
from core.groups import MAX_NAMES

BAD_NAMES = [
    "",
    "x" * 65,
    "sales team",
    "tab\there",
    "nul\x00",
    "sales\n",  # a trailing newline: `$` would let it through
    "bell\x07",
    "-leading-dash",
    ".hidden",
    "a/b",
    "ünïcode",
    "x" * 100_000,
]


def _names(drive: Drive) -> dict[str, tuple[str, ...]]:
    return {group.name: group.members for group in drive.list_groups()}


def _membership_rows(drive: Drive) -> int:
    with drive.db.read() as session:
        return int(session.execute(select(func.count()).select_from(GroupMember)).scalar_one())


@contextmanager
def _statements(drive: Drive) -> Iterator[list[str]]:
    """The SQL statements run inside the block."""
    seen: list[str] = []

    def record(*args: object) -> None:
        seen.append(str(args[2]))

    event.listen(drive.db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(drive.db.engine, "before_cursor_execute", record)


def test_groups_are_listed_by_name_with_their_members_sorted(
    drive: Drive, alice: UserInfo, bob: UserInfo
) -> None:
    drive.add_user("carol", "carol-password")
    made = drive.add_group("sales")
    assert isinstance(made, GroupInfo) and made.members == () and made.created_at > 0
    drive.add_group("Eng.team-1")
    assert drive.add_group_members("sales", ["carol", "alice", "bob"]).members == (
        "alice",
        "bob",
        "carol",
    )
    assert _names(drive) == {"Eng.team-1": (), "sales": ("alice", "bob", "carol")}
    assert [group.name for group in drive.list_groups()] == ["Eng.team-1", "sales"]
    assert drive.group("sales").id == made.id


def test_a_taken_name_is_refused_and_changes_nothing(drive: Drive, alice: UserInfo) -> None:
    drive.add_group("sales")
    drive.add_group_members("sales", ["alice"])
    with pytest.raises(NameTaken, match="already exists"):
        drive.add_group("sales")
    assert _names(drive) == {"sales": ("alice",)}


@pytest.mark.parametrize("name", BAD_NAMES, ids=range(len(BAD_NAMES)))
def test_a_bad_name_is_refused_and_changes_nothing(drive: Drive, name: str) -> None:
    with pytest.raises(InvalidName, match="invalid group name") as refused:
        drive.add_group(name)
    assert len(str(refused.value)) < 200  # a long name is cut in the message
    assert drive.list_groups() == []
    with pytest.raises(NotFound):  # no such group can exist: NotFound, not a bad name
        drive.group(name)


def test_adding_a_member_twice_changes_nothing(drive: Drive, alice: UserInfo) -> None:
    drive.add_group("sales")
    drive.add_group_members("sales", ["alice", "alice"])
    assert drive.add_group_members("sales", ["alice"]).members == ("alice",)
    assert _membership_rows(drive) == 1


def test_an_unknown_user_adds_nobody(drive: Drive, alice: UserInfo, bob: UserInfo) -> None:
    drive.add_group("sales")
    with pytest.raises(UserNotFound, match="'nobody'") as refused:
        drive.add_group_members("sales", ["alice", "nobody", "bob"])
    assert "alice" not in str(refused.value)
    assert drive.group("sales").members == ()


def test_unknown_groups_are_not_found(drive: Drive, alice: UserInfo) -> None:
    for call in (
        lambda: drive.group("nope"),
        lambda: drive.remove_group("nope"),
        lambda: drive.add_group_members("nope", ["alice"]),
        lambda: drive.remove_group_members("nope", ["alice"]),
    ):
        with pytest.raises(NotFound, match="no group named 'nope'"):
            call()
    assert drive.list_groups() == [] and _membership_rows(drive) == 0


def test_removing_a_non_member_is_an_error_and_removes_nobody(
    drive: Drive, alice: UserInfo, bob: UserInfo
) -> None:
    drive.add_group("sales")
    drive.add_group_members("sales", ["alice"])
    with pytest.raises(NotFound, match="not in group 'sales': 'bob'"):
        drive.remove_group_members("sales", ["alice", "bob"])
    with pytest.raises(UserNotFound):
        drive.remove_group_members("sales", ["alice", "nobody"])
    assert drive.group("sales").members == ("alice",)
    assert drive.remove_group_members("sales", ["alice"]).members == ()


def test_a_removed_group_takes_its_memberships(
    drive: Drive, alice: UserInfo, bob: UserInfo
) -> None:
    drive.add_group("sales")
    drive.add_group("ops")
    drive.add_group_members("sales", ["alice", "bob"])
    drive.add_group_members("ops", ["bob"])
    drive.remove_group("sales")
    assert _names(drive) == {"ops": ("bob",)}
    assert _membership_rows(drive) == 1
    assert drive.add_group("sales").members == ()  # the name is free again, the group new


def test_a_removed_user_leaves_their_groups(drive: Drive, alice: UserInfo) -> None:
    carol = drive.add_user("carol", "carol-password")
    drive.add_group("sales")
    drive.add_group_members("sales", ["alice", "carol"])
    with drive.db.write() as session:
        session.execute(delete(User).where(User.id == carol.id))
    assert drive.group("sales").members == ("alice",)
    assert drive.group_ids_of(carol.id) == frozenset()


def test_group_ids_of_a_user_in_one_query(drive: Drive, alice: UserInfo, bob: UserInfo) -> None:
    sales = drive.add_group("sales")
    ops = drive.add_group("ops")
    drive.add_group("empty")
    drive.add_group_members("sales", ["alice", "bob"])
    drive.add_group_members("ops", ["alice"])
    with _statements(drive) as seen:
        assert drive.group_ids_of(alice.id) == frozenset({sales.id, ops.id})
    assert len([s for s in seen if s.lstrip().upper().startswith("SELECT")]) == 1
    assert drive.group_ids_of(bob.id) == frozenset({sales.id})


def test_names_per_call_are_bounded(drive: Drive, alice: UserInfo) -> None:
    drive.add_group("sales")
    with pytest.raises(InvalidRequest, match=f"at most {MAX_NAMES}"):
        drive.add_group_members("sales", [f"user{n}" for n in range(MAX_NAMES + 1)])
    assert drive.group("sales").members == ()
