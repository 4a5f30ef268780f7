"""``drivegate group …``, the real command as a subprocess against both backends."""

from __future__ import annotations

from pathlib import Path

import pytest

from core import Drive, UserInfo
from tests.conftest import BackendSetup
from tests.support import ROOT
from tests.system.test_cli import Cli, bare_cli


@pytest.fixture
def cli(backend: BackendSetup, tmp_path: Path) -> Cli:
    return Cli({**backend.env, "PYTHONPATH": str(ROOT)}, tmp_path)


def _one_line_error(cli: Cli, *args: str, code: int = 1) -> str:
    result = cli.run(*args)
    assert result.returncode == code, (args, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    return line


def test_groups_and_members(cli: Cli, drive: Drive, alice: UserInfo, bob: UserInfo) -> None:
    assert "created group sales" in cli("group", "add", "sales")
    cli("group", "add", "ops")
    assert "sales: alice, bob" in cli("group", "member", "add", "sales", "bob", "alice")
    assert "sales: alice, bob" in cli("group", "member", "add", "sales", "alice")  # no change
    listing = cli("group", "list").splitlines()
    assert listing[0].split() == ["NAME", "MEMBERS"]
    assert [line.split(None, 1) for line in listing[1:]] == [["ops", "-"], ["sales", "alice, bob"]]
    assert "sales: alice" in cli("group", "member", "remove", "sales", "bob")
    assert drive.group("sales").members == ("alice",)
    assert "removed group sales" in cli("group", "remove", "sales")
    assert [group.name for group in drive.list_groups()] == ["ops"]


def test_bad_input_is_one_line_a_nonzero_exit_and_changes_nothing(
    cli: Cli, drive: Drive, alice: UserInfo, bob: UserInfo
) -> None:
    drive.add_group("sales")
    drive.add_group_members("sales", ["alice"])
    line = _one_line_error(cli, "group", "member", "add", "sales", "bob", "nobody", "alice")
    assert "no such user: 'nobody'" in line
    assert "no group named 'nope'" in _one_line_error(cli, "group", "member", "add", "nope", "bob")
    assert "no group named 'nope'" in _one_line_error(cli, "group", "remove", "nope")
    assert "already exists" in _one_line_error(cli, "group", "add", "sales")
    assert "invalid group name 'bad name'" in _one_line_error(cli, "group", "add", "bad name")
    assert "invalid group name" in _one_line_error(cli, "group", "add", "tab\there")
    assert "not in group 'sales': 'bob'" in _one_line_error(
        cli, "group", "member", "remove", "sales", "alice", "bob"
    )
    assert "no such user: 'nobody'" in _one_line_error(
        cli, "group", "member", "remove", "sales", "alice", "nobody"
    )
    assert "Missing argument" in cli("group", "member", "add", "sales", code=2)
    assert {group.name: group.members for group in drive.list_groups()} == {"sales": ("alice",)}


def test_group_commands_on_a_missing_data_dir_create_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "elsewhere"
    cli = bare_cli(tmp_path, DRIVEGATE_DATA_DIR=str(missing))
    for command in (["group", "add", "sales"], ["group", "list"]):
        assert f"no drive at {missing} " in _one_line_error(cli, *command)
    assert not missing.exists()


@pytest.mark.parametrize(
    "command",
    [
        ["group", "add"],
        ["group", "list"],
        ["group", "remove"],
        ["group", "member", "add"],
        ["group", "member", "remove"],
    ],
)
def test_every_group_command_has_help(command: list[str]) -> None:
    from click.testing import CliRunner

    from drivegate import main

    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "--data-dir" in result.output and "--store-url" in result.output
