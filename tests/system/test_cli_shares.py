"""``drivegate share …``, the real command as a subprocess against both backends."""

from __future__ import annotations

from pathlib import Path

import pytest

from core import Drive, UserInfo
from tests.conftest import BackendSetup, put
from tests.support import ROOT
from tests.system.test_cli import Cli


@pytest.fixture
def cli(backend: BackendSetup, tmp_path: Path) -> Cli:
    return Cli({**backend.env, "PYTHONPATH": str(ROOT)}, tmp_path)


@pytest.fixture
def team(drive: Drive, alice: UserInfo, bob: UserInfo) -> UserInfo:
    """alice's /team with a file, carol, and the group sales (carol in it)."""
    drive.add_user("carol", "carol-password")
    drive.add_group("sales")
    drive.add_group_members("sales", ["carol"])
    drive.mkdir(alice.id, "/team")
    put(drive, alice, "/team/plan.txt", b"plan")
    return alice


def _rows(output: str) -> list[list[str]]:
    header, *rows = output.splitlines()
    assert header.split() == ["PATH", "OWNER", "WITH", "ROLE", "RESHARE", "BY"]
    return [row.split() for row in rows]


def _one_line_error(cli: Cli, *args: str) -> str:
    result = cli.run(*args)
    assert result.returncode == 1, (args, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    return line


def test_share_list_update_received_and_remove(
    cli: Cli, drive: Drive, team: UserInfo, bob: UserInfo
) -> None:
    added = cli("share", "add", "/team", "--user", "alice", "--with", "bob", "--role", "editor",
                "--reshare")  # fmt: skip
    assert "shared /team with bob as editor (may reshare)" in added
    assert "shared /team with group:sales as viewer" in cli(
        "share", "add", "/team", "--user", "alice", "--group", "sales"
    )
    given = [
        ["/team", "alice", "bob", "editor", "yes", "alice"],
        ["/team", "alice", "group:sales", "viewer", "no", "alice"],
    ]
    assert _rows(cli("share", "list", "--user", "alice")) == given
    assert _rows(cli("share", "list", "/team/plan.txt", "--user", "alice")) == given
    assert _rows(cli("share", "list", "/team", "--user", "bob")) == given  # from bob's view
    assert _rows(cli("share", "received", "--user", "carol")) == [given[1]]
    assert [entry.name for entry in drive.listdir(bob.id, "/")] == ["team"]
    assert "shared /team with carol as viewer" in cli(  # bob reshares
        "share", "add", "/team", "--user", "bob", "--with", "carol"
    )
    assert _rows(cli("share", "list", "--user", "bob")) == [
        ["/team", "alice", "carol", "viewer", "no", "bob"]
    ]
    assert "is shared with bob as viewer" in cli(
        "share", "update", "/team", "--user", "alice", "--with", "bob", "--role", "viewer",
        "--no-reshare",
    )  # fmt: skip
    assert _rows(cli("share", "received", "--user", "bob")) == [
        ["/team", "alice", "bob", "viewer", "no", "alice"]
    ]
    assert "/team is no longer shared with user bob" in cli(
        "share", "remove", "/team", "--user", "alice", "--with", "bob"
    )
    assert _rows(cli("share", "received", "--user", "bob")) == []
    assert drive.listdir(bob.id, "/") == []


ADD = ("share", "add")
UPDATE = ("share", "update", "/team")
REFUSALS = [
    ("no user named 'nobody'", [*ADD, "/team", "--user", "alice", "--with", "nobody"]),
    ("no group named 'nope'", [*ADD, "/team", "--user", "alice", "--group", "nope"]),
    ("no user named 'ghost'", [*ADD, "/team", "--user", "ghost", "--with", "bob"]),
    ("you cannot share with yourself", [*ADD, "/team", "--user", "alice", "--with", "alice"]),
    ("root cannot be shared", [*ADD, "/", "--user", "alice", "--with", "carol"]),
    ("not found: /old", [*ADD, "/old", "--user", "alice", "--with", "carol"]),
    ("not found: /nowhere", [*ADD, "/nowhere", "--user", "alice", "--with", "carol"]),
    ("share with one user or one group", [*ADD, "/team", "--user", "alice"]),
    ("share with one user or one group",
     [*ADD, "/team", "--user", "alice", "--with", "carol", "--group", "sales"]),
    ("has a share of this already", [*ADD, "/team", "--user", "alice", "--with", "bob"]),
    ("you may not share 'team'", [*ADD, "/team", "--user", "bob", "--with", "carol"]),
    ("no share of this with user 'carol'",
     [*UPDATE, "--user", "alice", "--with", "carol", "--role", "editor"]),
    ("no share of this with user 'nobody'",
     [*UPDATE, "--user", "alice", "--with", "nobody", "--role", "editor"]),
    ("that you made", ["share", "remove", "/team", "--user", "bob", "--with", "bob"]),
    ("that you made", [*UPDATE, "--user", "bob", "--with", "bob", "--reshare"]),
    ("not found: /old", ["share", "list", "/old", "--user", "alice"]),
    ("not found: /team", ["share", "list", "/team", "--user", "carol"]),
    ("no user named 'ghost'", ["share", "received", "--user", "ghost"]),
]  # fmt: skip


@pytest.mark.parametrize(("message", "args"), REFUSALS, ids=[" ".join(a) for _, a in REFUSALS])
def test_bad_input_is_one_line_a_nonzero_exit_and_changes_nothing(
    cli: Cli, drive: Drive, team: UserInfo, message: str, args: list[str]
) -> None:
    drive.share(team.id, "/team", user="bob")  # a viewer, no reshare
    drive.mkdir(team.id, "/old")
    drive.delete(team.id, "/old")
    before = drive.shares_given(team.id)
    assert message in _one_line_error(cli, *args)
    assert _rows(cli("share", "list", "--user", "alice")) == [
        ["/team", "alice", "bob", "viewer", "no", "alice"]
    ]
    assert drive.shares_given(team.id) == before
    assert drive.shares_received(drive.user("carol").id) == []


@pytest.mark.parametrize("role", ["owner", "", "Viewer"])
def test_an_unknown_role_is_refused_by_the_command_line(
    cli: Cli, drive: Drive, team: UserInfo, role: str
) -> None:
    result = cli.run(*ADD, "/team", "--user", "alice", "--with", "carol", "--role", role)
    assert result.returncode == 2 and "Invalid value for '--role'" in result.stderr
    assert drive.shares_given(team.id) == []


@pytest.mark.parametrize(
    "command",
    [
        ["share", "add"],
        ["share", "update"],
        ["share", "remove"],
        ["share", "list"],
        ["share", "received"],
    ],
)
def test_every_share_command_has_help(command: list[str]) -> None:
    from click.testing import CliRunner

    from drivegate import main

    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "--user" in result.output and "--data-dir" in result.output
