"""Shares in the core: grants, roles, reshares bounded by their source, entries in
the recipient's tree, and what each operation does inside a share (both backends)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from core import (
    Conflict,
    Drive,
    Forbidden,
    InvalidMove,
    InvalidRequest,
    NodeRef,
    NotFound,
    QuotaExceeded,
    UserInfo,
    UserNotFound,
)
from tests.conftest import get, put


@pytest.fixture
def carol(drive: Drive) -> UserInfo:
    return drive.add_user("carol", "carol-password")


@pytest.fixture
def team(drive: Drive, alice: UserInfo, bob: UserInfo) -> UserInfo:
    """alice's folder /team with a file, shared with bob as an editor."""
    drive.mkdir(alice.id, "/team")
    put(drive, alice, "/team/plan.txt", b"v1")
    drive.share(alice.id, "/team", user="bob", role="editor")
    return alice


def _names(drive: Drive, user: UserInfo, path: str = "/") -> list[str]:
    return [info.name for info in drive.listdir(user.id, path)]


def test_a_received_share_appears_at_the_top_of_the_recipients_drive(
    drive: Drive, team: UserInfo, bob: UserInfo
) -> None:
    assert _names(drive, bob) == ["team"]
    entry = drive.stat(bob.id, "/team")
    assert entry.is_folder and entry.shared_from is not None
    assert _names(drive, bob, "/team") == ["plan.txt"]
    assert get(drive, bob, "/team/plan.txt") == b"v1"
    (member,) = drive.listdir(bob.id, "/team")
    assert member.parent_id == entry.id  # the recipient sees it in the entry


def test_a_name_clash_gets_a_number_and_the_recipient_may_rename_the_entry(
    drive: Drive, alice: UserInfo, bob: UserInfo
) -> None:
    drive.mkdir(bob.id, "/team")
    drive.mkdir(alice.id, "/team")
    drive.share(alice.id, "/team", user="bob")
    assert _names(drive, bob) == ["team", "team (2)"]
    drive.move(bob.id, "/team (2)", "/from alice")
    assert _names(drive, bob) == ["from alice", "team"]
    assert _names(drive, alice) == ["team"]  # nothing changed for the owner


def test_an_editor_writes_into_the_share_and_the_owner_pays(
    drive: Drive, team: UserInfo, bob: UserInfo
) -> None:
    put(drive, bob, "/team/notes.txt", b"x" * 1000)
    assert get(drive, team, "/team/notes.txt") == b"x" * 1000
    assert drive.user("alice").used_bytes == 1002
    assert drive.user("bob").used_bytes == 0
    (version,) = drive.versions(team.id, "/team/notes.txt")
    assert version.author == "bob"


def test_the_owners_quota_bounds_writes_into_a_share_whoever_writes(
    drive: Drive, team: UserInfo, bob: UserInfo
) -> None:
    drive.set_quota("alice", 100)
    with pytest.raises(QuotaExceeded):
        put(drive, bob, "/team/big.bin", b"x" * 200)
    assert _names(drive, team, "/team") == ["plan.txt"]


def test_a_viewer_reads_but_changes_nothing(drive: Drive, alice: UserInfo, bob: UserInfo) -> None:
    drive.mkdir(alice.id, "/pub")
    put(drive, alice, "/pub/a.txt", b"a")
    drive.share(alice.id, "/pub", user="bob")
    assert get(drive, bob, "/pub/a.txt") == b"a"
    attempts: list[Callable[[], object]] = [
        lambda: put(drive, bob, "/pub/a.txt", b"b"),
        lambda: put(drive, bob, "/pub/new.txt", b"b"),
        lambda: drive.mkdir(bob.id, "/pub/sub"),
        lambda: drive.delete(bob.id, "/pub/a.txt"),
        lambda: drive.move(bob.id, "/pub/a.txt", "/pub/b.txt"),
        lambda: drive.set_mtime(bob.id, "/pub/a.txt", 0),
        lambda: drive.restore_version(bob.id, "/pub/a.txt", 1),
        lambda: drive.set_properties(bob.id, "/pub/a.txt", {"{x:}y": b"<y/>"}),
    ]
    for attempt in attempts:
        with pytest.raises(Forbidden):
            attempt()
    assert _names(drive, alice, "/pub") == ["a.txt"] and get(drive, alice, "/pub/a.txt") == b"a"


def test_deletes_in_a_share_go_to_the_owners_trash(
    drive: Drive, team: UserInfo, bob: UserInfo
) -> None:
    drive.delete(bob.id, "/team/plan.txt")
    assert [entry.name for entry in drive.trash(team.id)] == ["plan.txt"]
    assert drive.user("alice").used_bytes == 2  # still alice's, in her trash
    assert drive.user("bob").used_bytes == 0


def test_moving_out_of_a_share_is_a_copy_for_the_mover_and_the_owner_keeps_it(
    drive: Drive, team: UserInfo, bob: UserInfo
) -> None:
    drive.move(bob.id, "/team/plan.txt", "/mine.txt")
    assert get(drive, bob, "/mine.txt") == b"v1"
    assert drive.user("bob").used_bytes == 2
    assert [entry.name for entry in drive.trash(team.id)] == ["plan.txt"]


def test_moving_into_a_share_hands_it_to_the_owner(
    drive: Drive, team: UserInfo, bob: UserInfo
) -> None:
    put(drive, bob, "/report.txt", b"12345")
    drive.move(bob.id, "/report.txt", "/team/report.txt")
    assert get(drive, team, "/team/report.txt") == b"12345"
    assert drive.user("bob").used_bytes == 0
    assert drive.user("alice").used_bytes == 2 + 5


def test_an_entry_cannot_move_into_another_users_share(
    drive: Drive, team: UserInfo, bob: UserInfo, carol: UserInfo
) -> None:
    drive.mkdir(carol.id, "/c")
    drive.share(carol.id, "/c", user="bob", role="editor")
    with pytest.raises(InvalidMove):
        drive.move(bob.id, "/team", "/c/team")


def test_a_share_inside_a_share_the_user_sees_appears_only_inside_it(
    drive: Drive, alice: UserInfo, bob: UserInfo
) -> None:
    drive.makedirs(alice.id, "/a/b")
    drive.share(alice.id, "/a/b", user="bob", role="editor")
    assert _names(drive, bob) == ["b"]
    drive.share(alice.id, "/a", user="bob")
    assert _names(drive, bob) == ["a"]  # b is inside a now, once
    drive.mkdir(bob.id, "/a/b/made-by-bob")  # the editor grant on b still holds there
    with pytest.raises(Forbidden):
        drive.mkdir(bob.id, "/a/other")  # a viewer on a
    drive.unshare(alice.id, "/a", user="bob")
    assert _names(drive, bob) == ["b"]


def test_a_revoked_share_disappears_and_its_ids_are_not_found(
    drive: Drive, team: UserInfo, bob: UserInfo
) -> None:
    plan = drive.stat(team.id, "/team/plan.txt")
    drive.unshare(team.id, "/team", user="bob")
    assert _names(drive, bob) == []
    attempts: list[Callable[[], object]] = [
        lambda: drive.stat(bob.id, NodeRef.by_id(plan.id)),
        lambda: drive.manifest(bob.id, NodeRef.by_id(plan.id)),
        lambda: drive.versions(bob.id, NodeRef.by_id(plan.id)),
        lambda: drive.stat(bob.id, "/team/plan.txt"),
    ]
    for attempt in attempts:
        with pytest.raises(NotFound):
            attempt()


def test_a_reshare_never_exceeds_its_source_and_shrinks_with_it(
    drive: Drive, alice: UserInfo, bob: UserInfo, carol: UserInfo
) -> None:
    drive.mkdir(alice.id, "/r")
    drive.share(alice.id, "/r", user="bob", role="viewer", reshare=True)
    with pytest.raises(Forbidden):
        drive.share(bob.id, "/r", user="carol", role="editor")
    drive.share(bob.id, "/r", user="carol", role="viewer")
    assert _names(drive, carol) == ["r"]
    drive.update_share(alice.id, "/r", user="bob", reshare=False)  # bob may no longer share
    assert _names(drive, carol) == []
    with pytest.raises(NotFound):
        drive.listdir(carol.id, "/r")
    drive.update_share(alice.id, "/r", user="bob", reshare=True)
    assert _names(drive, carol, "/r") == []  # back as soon as its source is


def test_a_group_share_reaches_members_and_leaves_with_them(
    drive: Drive, alice: UserInfo, bob: UserInfo, carol: UserInfo
) -> None:
    drive.add_group("ops")
    drive.mkdir(alice.id, "/ops")
    drive.share(alice.id, "/ops", group="ops", role="editor")
    assert _names(drive, bob) == []
    drive.add_group_members("ops", ["bob", "carol"])
    assert _names(drive, bob) == ["ops"] and _names(drive, carol) == ["ops"]
    drive.mkdir(bob.id, "/ops/x")
    drive.remove_group_members("ops", ["bob"])
    assert _names(drive, bob) == []
    with pytest.raises(NotFound):
        drive.mkdir(bob.id, "/ops/y")
    assert _names(drive, carol, "/ops") == ["x"]


@pytest.mark.parametrize(
    ("path", "kwargs", "error"),
    [
        ("/team", {"user": "nobody"}, UserNotFound),
        ("/team", {"group": "nogroup"}, NotFound),
        ("/team", {"user": "alice"}, InvalidRequest),  # oneself
        ("/", {"user": "bob"}, InvalidRequest),  # the root
        ("/team", {"user": "bob", "role": "owner"}, InvalidRequest),
        ("/team", {}, InvalidRequest),
        ("/team", {"user": "bob", "group": "g"}, InvalidRequest),
        ("/missing", {"user": "bob"}, NotFound),
        ("/team", {"user": "bob"}, Conflict),  # already shared with bob
    ],
)
def test_bad_shares_are_refused_and_change_nothing(
    *,
    drive: Drive,
    team: UserInfo,
    bob: UserInfo,
    carol: UserInfo,
    path: str,
    kwargs: dict[str, str],
    error: type[Exception],
) -> None:
    before = drive.shares_given(team.id)
    with pytest.raises(error):
        drive.share(team.id, path, **kwargs)  # type: ignore[arg-type]
    assert drive.shares_given(team.id) == before


def test_a_trashed_node_cannot_be_shared_and_a_stranger_cannot_share_or_unshare(
    drive: Drive, team: UserInfo, bob: UserInfo, carol: UserInfo
) -> None:
    drive.mkdir(team.id, "/old")
    drive.delete(team.id, "/old")
    with pytest.raises(NotFound):
        drive.share(team.id, "/old", user="bob")
    team_id = drive.stat(team.id, "/team").id
    with pytest.raises(NotFound):
        drive.share(carol.id, NodeRef.by_id(team_id), user="carol")
    with pytest.raises(Forbidden):  # an editor without reshare
        drive.share(bob.id, "/team", user="carol")
    with pytest.raises(NotFound):
        drive.unshare(bob.id, "/team", user="bob")  # not a grant bob made
    assert [s.user for s in drive.shares_of(team.id, "/team")] == ["bob"]


def test_share_lists_say_who_has_what(drive: Drive, team: UserInfo, bob: UserInfo) -> None:
    (given,) = drive.shares_given(team.id)
    assert (given.path, given.user, given.role, given.owner) == ("/team", "bob", "editor", "alice")
    (received,) = drive.shares_received(bob.id)
    assert received.id == given.id
    assert drive.shares_of(bob.id, "/team/plan.txt") == [given]


def _feed(drive: Drive, user: UserInfo, cursor: int) -> list[tuple[str, str, int | None]]:
    """(kind, name, parent id as the user sees it) of each change after ``cursor``."""
    page = drive.change_page(user.id, cursor)
    return [
        (change.kind, change.node.name if change.node else "?", change.node.parent_id
         if change.node else None)
        for change in page.changes
    ]  # fmt: skip


def test_the_recipients_change_feed_follows_the_share(
    drive: Drive, alice: UserInfo, bob: UserInfo
) -> None:
    drive.mkdir(alice.id, "/team")
    put(drive, alice, "/team/plan.txt", b"v1")
    start = drive.cursor(bob.id)
    drive.share(alice.id, "/team", user="bob")
    entry = drive.stat(bob.id, "/team")
    assert _feed(drive, bob, start) == [("create", "team", entry.parent_id),
                                        ("create", "plan.txt", entry.id)]  # fmt: skip
    start = drive.cursor(bob.id)
    put(drive, alice, "/team/new.txt", b"n")
    drive.mkdir(alice.id, "/private")
    drive.move(alice.id, "/team/plan.txt", "/private/plan.txt")
    changes = _feed(drive, bob, start)
    assert changes[0] == ("create", "new.txt", entry.id)
    assert changes[-1][0] == "trash"  # plan.txt left what bob sees
    assert all(name != "private" for _, name, _ in changes)  # alice's own folder is not bob's
    drive.unshare(alice.id, "/team", user="bob")
    assert _feed(drive, bob, drive.cursor(bob.id) - 1)[-1][0] == "purge"


def test_the_recipients_tree_pages_show_the_entry_and_what_is_inside(
    drive: Drive, alice: UserInfo, bob: UserInfo
) -> None:
    drive.makedirs(alice.id, "/team/sub")
    put(drive, alice, "/team/sub/f.txt", b"f")
    put(drive, alice, "/secret.txt", b"s")
    drive.share(alice.id, "/team", user="bob")
    page = drive.tree_page(bob.id)
    entry = drive.stat(bob.id, "/team")
    seen = {node.name: node.parent_id for node in page.nodes}
    assert seen == {
        "team": entry.parent_id,
        "sub": entry.id,
        "f.txt": drive.stat(bob.id, "/team/sub").id,
    }


def test_a_shared_file_is_edited_in_place_and_its_history_names_each_author(
    drive: Drive, alice: UserInfo, bob: UserInfo
) -> None:
    put(drive, alice, "/doc.txt", b"one")
    drive.share(alice.id, "/doc.txt", user="bob", role="editor")
    assert _names(drive, bob) == ["doc.txt"] and get(drive, bob, "/doc.txt") == b"one"
    put(drive, bob, "/doc.txt", b"two")
    drive.restore_version(bob.id, "/doc.txt", 1)
    history = drive.versions(alice.id, "/doc.txt")
    assert [(v.number, v.author) for v in history] == [(1, "alice"), (2, "bob"), (3, "bob")]
    assert get(drive, alice, "/doc.txt") == b"one"
    assert drive.user("bob").used_bytes == 0


def test_what_a_viewer_sees_is_flagged_read_only_and_an_editor_subfolder_is_not(
    drive: Drive, alice: UserInfo, bob: UserInfo
) -> None:
    drive.makedirs(alice.id, "/v/edit")
    put(drive, alice, "/v/a.txt", b"a")
    drive.share(alice.id, "/v", user="bob")
    drive.share(alice.id, "/v/edit", user="bob", role="editor")
    listed = {n.name: n.read_only for n in drive.listdir(bob.id, "/v", locks=True)}
    assert listed == {"a.txt": True, "edit": False}
    assert drive.stat(bob.id, "/v", locks=True).read_only
    assert not any(n.read_only for n in drive.listdir(alice.id, "/v", locks=True))
    page = {n.name: n.read_only for n in drive.tree_page(bob.id).nodes}
    assert page == {"v": True, "a.txt": True, "edit": False}


def test_an_editor_lists_and_restores_what_was_deleted_in_the_share_but_cannot_purge_it(
    drive: Drive, team: UserInfo, bob: UserInfo, carol: UserInfo
) -> None:
    drive.delete(team.id, "/team/plan.txt")
    (entry,) = drive.trash(bob.id)
    assert entry.name == "plan.txt"
    assert drive.trash(carol.id) == []
    with pytest.raises(NotFound):
        drive.restore_trash(carol.id, entry.id)
    with pytest.raises(Forbidden):
        drive.purge_trash(bob.id, entry.id)
    drive.restore_trash(bob.id, entry.id)
    assert get(drive, bob, "/team/plan.txt") == b"v1"
    assert drive.trash(team.id) == []


def test_a_grant_by_its_id_is_its_granters_and_its_owners_only(
    drive: Drive, team: UserInfo, bob: UserInfo, carol: UserInfo
) -> None:
    (grant,) = drive.shares_given(team.id)
    assert drive.share_by_id(team.id, grant.id) == grant
    for stranger in (bob, carol):  # the grantee too: they did not make it
        with pytest.raises(NotFound):
            drive.share_by_id(stranger.id, grant.id)
        with pytest.raises(NotFound):
            drive.update_share_by_id(stranger.id, grant.id, role="viewer")
        with pytest.raises(NotFound):
            drive.unshare_by_id(stranger.id, grant.id)
    with pytest.raises(NotFound):
        drive.share_by_id(team.id, grant.id + 1000)
    updated = drive.update_share_by_id(team.id, grant.id, role="viewer", reshare=True)
    assert (updated.role, updated.reshare) == ("viewer", True)
    with pytest.raises(InvalidRequest):
        drive.update_share_by_id(team.id, grant.id, role="owner")
    assert drive.share_by_id(team.id, grant.id) == updated
    drive.unshare_by_id(team.id, grant.id)
    assert drive.shares_given(team.id) == [] and _names(drive, bob) == []


def test_sharing_onward_without_reshare_is_forbidden_by_name(
    drive: Drive, team: UserInfo, bob: UserInfo, carol: UserInfo
) -> None:
    with pytest.raises(Forbidden, match="you may not share 'team'"):
        drive.share(bob.id, "/team", user="carol")
    assert drive.shares_received(carol.id) == []


def test_a_grant_on_a_trashed_node_is_kept_and_updated_only_once_restored(
    drive: Drive, team: UserInfo, bob: UserInfo
) -> None:
    (grant,) = drive.shares_given(team.id)
    drive.delete(team.id, "/team")
    assert drive.share_by_id(team.id, grant.id).id == grant.id
    with pytest.raises(Conflict, match="in the trash"):
        drive.update_share_by_id(team.id, grant.id, role="viewer")
    assert drive.share_by_id(team.id, grant.id).role == "editor"
    drive.unshare_by_id(team.id, grant.id)
    assert drive.shares_given(team.id) == []
