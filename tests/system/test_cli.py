"""The real ``drivegate`` command, run as a subprocess against both backends."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from core import Drive, WriteTarget
from tests.conftest import BackendSetup
from tests.support import ROOT
from tests.support.blobs import flip_a_byte

DRIVEGATE = [sys.executable, "-m", "drivegate"]


class Cli:
    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.env = {**os.environ, **env}
        self.cwd = cwd

    def run(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: PLW1510 (callers assert the exit code)
            [*DRIVEGATE, *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.cwd,
            timeout=120,
        )

    def __call__(self, *args: str, stdin: str = "", code: int = 0) -> str:
        result = self.run(*args, stdin=stdin)
        assert result.returncode == code, (args, result.stdout, result.stderr)
        return result.stdout + result.stderr


def bare_cli(cwd: Path, **env: str) -> Cli:
    """The command with no ``DRIVEGATE_*`` setting and no ``XDG_DATA_HOME`` but ``env``."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("DRIVEGATE_") and k != "XDG_DATA_HOME"
    }
    cli = Cli({}, cwd)
    cli.env = {**base, "PYTHONPATH": str(ROOT), **env}
    return cli


@pytest.fixture
def cli(backend: BackendSetup, tmp_path: Path) -> Cli:
    env = {**backend.env, "PYTHONPATH": str(ROOT)}
    return Cli(env, tmp_path)


def _make_tree(root: Path) -> None:
    (root / "docs" / "deep").mkdir(parents=True)
    (root / "docs" / "a.txt").write_text("alpha\n")
    (root / "docs" / "deep" / "b.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    (root / "empty").mkdir()
    (root / "Café.txt").write_text("NFC")
    os.utime(root / "docs" / "a.txt", ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))


def test_users_and_tokens(cli: Cli, drive: Drive) -> None:
    assert "created user ann (admin)" in cli(
        "user",
        "add",
        "ann",
        "--admin",
        "--quota",
        "1GiB",
        "--password-stdin",
        stdin="ann-password\n",
    )
    listing = cli("user", "list")
    assert "ann" in listing and "1 GiB" in listing
    cli("user", "passwd", "ann", "--password-stdin", stdin="second-password\n")
    assert drive.authenticate("ann", "second-password").is_admin
    out = cli("token", "create", "laptop", "--user", "ann")
    token = out.split()[0]
    assert token.startswith("dgt_") and "cannot be shown again" in out
    assert drive.authenticate("ann", token).name == "ann"
    cli("user", "quota", "ann", "none")
    assert drive.user("ann").quota_bytes is None


def test_import_export_round_trip(cli: Cli, drive: Drive, tmp_path: Path) -> None:
    src = tmp_path / "src"
    _make_tree(src)
    cli("user", "add", "ann", "--password-stdin", stdin="ann-password\n")
    assert "imported 3 files into /backup" in cli("import", str(src), "/backup", "--user", "ann")
    assert "3 unchanged" in cli("import", str(src), "/backup", "--user", "ann")
    assert cli("ls", "/backup", "--user", "ann").split() == ["Café.txt", "docs/", "empty/"]
    assert "v1" in cli("ls", "-l", "/backup/docs", "--user", "ann")
    cli("export", "/backup", str(tmp_path / "out"), "--user", "ann")
    out = tmp_path / "out" / "backup"
    assert subprocess.run(["diff", "-r", str(src), str(out)], check=False).returncode == 0
    assert (out / "docs" / "a.txt").stat().st_mtime_ns == 1_600_000_000_123_456_789
    assert "no damage found" in cli("fsck", "--verify")


def test_versions_restore_and_trash(cli: Cli, drive: Drive, tmp_path: Path) -> None:
    user = drive.add_user("ann", "ann-password")
    src = tmp_path / "src"
    src.mkdir()
    for text in ("first", "second"):
        (src / "notes.txt").write_text(text)
        cli("import", str(src), "/", "--user", "ann", "--force")
    listing = cli("versions", "/notes.txt", "--user", "ann")
    assert "1 " in listing and "2*" in listing
    assert "as version 3" in cli("restore", "/notes.txt", "--version", "1", "--user", "ann")
    with drive.open_read(user.id, "/notes.txt") as reader:
        assert reader.read() == b"first"
    drive.delete(user.id, "/notes.txt")
    entry = drive.trash(user.id)[0]
    assert "/notes.txt" in cli("trash", "list", "--user", "ann")
    assert "restored to /notes.txt" in cli("trash", "restore", str(entry.id), "--user", "ann")
    drive.delete(user.id, "/notes.txt")
    assert "purged 1 entries" in cli("trash", "purge", "--all", "--user", "ann")
    assert "would delete" in cli("gc", "--dry-run")
    assert "deleted" in cli("gc")


def test_fsck_names_damaged_files_and_fails(cli: Cli, drive: Drive) -> None:
    import io

    user = drive.add_user("ann", "ann-password")
    drive.makedirs(user.id, "/photos")
    drive.write(user.id, "/photos/cat.jpg", io.BytesIO(os.urandom(500_000)))
    drive.write(user.id, "/ok.txt", io.BytesIO(b"fine"))
    refs = drive.manifest(user.id, "/photos/cat.jpg").chunks
    assert "no damage found" in cli("fsck")
    flip_a_byte(drive.backend.store, refs[0].hash)
    assert "no damage found" in cli("fsck")  # without --verify only existence is checked
    out = cli("fsck", "--verify", code=1)
    assert "CORRUPT chunk" in out and "DAMAGED ann:/photos/cat.jpg (version 1)" in out
    assert "ok.txt" not in out
    drive.backend.store.delete_many([refs[0].hash])
    assert "MISSING chunk" in cli("fsck", code=1)


def test_fsck_counts_unknown_sums_and_verify_fills_them_in(cli: Cli, drive: Drive) -> None:
    import io

    user = drive.add_user("ann", "ann-password")
    data = os.urandom(700_000)
    drive.write(user.id, "/known.bin", io.BytesIO(data))
    refs = drive.manifest(user.id, "/known.bin").chunks
    chunks = [(str(ref.hash), ref.length) for ref in refs]
    drive.commit(WriteTarget(user.id, path="/unknown.bin"), chunks, len(data))
    assert [v.sha256 for v in drive.versions(user.id, "/unknown.bin")] == [None]
    out = cli("fsck")
    assert "no damage found" in out
    assert "whole-file SHA-256 unknown for 1 manifests (--verify fills them in)" in out
    out = cli("fsck", "--verify")
    assert "filled in 1 unknown whole-file SHA-256 sums" in out and "unknown for" not in out
    whole = hashlib.sha256(data).hexdigest()
    assert [v.sha256 for v in drive.versions(user.id, "/unknown.bin")] == [whole]
    assert "filled in" not in cli("fsck", "--verify")


def test_fsck_verify_names_a_file_whose_sum_the_client_got_wrong(cli: Cli, drive: Drive) -> None:
    import io

    user = drive.add_user("ann", "ann-password")
    drive.write(user.id, "/a.txt", io.BytesIO(b"content"))
    refs = drive.manifest(user.id, "/a.txt").chunks
    chunks = [(str(ref.hash), ref.length) for ref in refs]
    drive.commit(WriteTarget(user.id, path="/lie.txt"), chunks, 7, sha256="0" * 64)
    assert "no damage found" in cli("fsck")  # without --verify no content is read
    out = cli("fsck", "--verify", code=1)
    assert "BAD SUM manifest" in out and "DAMAGED ann:/lie.txt (version 1)" in out
    assert "a.txt" not in out.replace("lie.txt", "")


def test_db_upgrade_on_a_current_database(cli: Cli, drive: Drive) -> None:
    assert "already current" in cli("db", "upgrade")


def test_bad_input_gives_a_clear_error_and_nonzero_exit(cli: Cli, drive: Drive) -> None:
    assert "no user named 'ghost'" in cli("ls", "--user", "ghost", code=1)
    drive.add_user("ann", "ann-password")
    assert "not found: /nope" in cli("ls", "/nope", "--user", "ann", code=1)
    assert "is not a size" in cli("user", "add", "x", "--quota", "lots", code=2)
    assert "no password" in cli("user", "add", "x", "--password-stdin", code=1)
    assert "at least 8 characters" in cli(
        "user", "add", "x", "--password-stdin", stdin="short\n", code=1
    )
    assert "already exists" in cli(
        "user", "add", "ann", "--password-stdin", stdin="whatever-pw\n", code=1
    )
    assert "is a folder" in cli("restore", "/", "--version", "9", "--user", "ann", code=1)
    assert "name the entries" in cli("trash", "purge", "--user", "ann", code=2)
    assert [u.name for u in drive.list_users()] == ["ann"]


def test_config_file_and_environment(tmp_path: Path) -> None:
    config = tmp_path / "drivegate.toml"
    config.write_text(f'data_dir = "{tmp_path / "from-config"}"\n')
    cli = bare_cli(tmp_path)
    cli("--help")
    cli(
        "user", "add", "cfg", "--config", str(config), "--password-stdin", stdin="config-password\n"
    )
    assert (tmp_path / "from-config" / "drivegate.db").exists()
    assert "cfg" in cli("user", "list", "--config", str(config))
    cli.env["DRIVEGATE_DATA_DIR"] = str(tmp_path / "from-env")
    cli("user", "add", "env", "--password-stdin", stdin="env-password\n")
    assert (tmp_path / "from-env" / "drivegate.db").exists()
    assert not (tmp_path / "drivegate-data").exists()
    config.write_text("data_dirr = 'typo'\n")
    assert "Extra inputs are not permitted" in cli("user", "list", "--config", str(config), code=1)
    shutil.rmtree(tmp_path / "from-env")


@pytest.mark.parametrize(
    "command",
    [
        ["user", "add"],
        ["user", "list"],
        ["user", "passwd"],
        ["token", "create"],
        ["import"],
        ["export"],
        ["ls"],
        ["versions"],
        ["restore"],
        ["trash", "list"],
        ["trash", "restore"],
        ["trash", "purge"],
        ["gc"],
        ["fsck"],
        ["db", "upgrade"],
    ],
)
def test_every_command_has_help(command: list[str]) -> None:
    from click.testing import CliRunner

    from drivegate import main

    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "--data-dir" in result.output and "--store-url" in result.output


def test_serve_on_a_taken_port_says_so_in_one_line_and_creates_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = bare_cli(tmp_path).run("serve", "--port", str(port), "--data-dir", str(data))
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert f"port {port} on 127.0.0.1 is already in use" in line and "--port" in line
    assert result.stdout == ""  # no first login shown for a drive that never served
    assert not data.exists()


def test_a_command_on_a_missing_data_dir_names_it_and_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "elsewhere" / "data"
    cli = bare_cli(tmp_path, DRIVEGATE_DATA_DIR=str(missing))
    for command in (
        ["ls", "--user", "admin"],
        ["user", "list"],
        ["token", "create", "laptop", "--user", "admin"],
        ["gc"],
        ["db", "upgrade"],
        ["lock", "list"],
    ):
        result = cli.run(*command)
        assert result.returncode == 1, (command, result.stderr)
        [line] = result.stderr.strip().splitlines()
        assert f"no drive at {missing} " in line, line
        for way in ("--data-dir", "DRIVEGATE_DATA_DIR", "config file", "--config"):
            assert way in line
    flag = tmp_path / "flagged"
    assert f"no drive at {flag} " in cli("ls", "--user", "a", "--data-dir", str(flag), code=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing created, here or there
    cli("user", "add", "ann", "--password-stdin", stdin="ann-password\n")
    assert (missing / "drivegate.db").exists()
    assert "ann" in cli("user", "list")


def test_serve_starts_a_new_drive_and_ends_with_the_url_and_first_login(tmp_path: Path) -> None:
    data = tmp_path / "new"
    cli = bare_cli(tmp_path)
    process = subprocess.Popen(
        [*DRIVEGATE, "serve", "--port", "0", "--data-dir", str(data)],
        env=cli.env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().removeprefix("drivegate serving ").strip()
        assert url.startswith("http://127.0.0.1:"), url
        login = re.fullmatch(
            r"First login: user admin, password (\S+) \(shown once; change it with: "
            r"drivegate user passwd admin\)\n",
            process.stdout.readline(),
        )
        assert login is not None
        assert (data / "drivegate.db").exists()
        with httpx.Client(base_url=url, auth=("admin", login[1]), timeout=60) as http:
            assert http.request("PROPFIND", "/", headers={"Depth": "0"}).status_code == 207
    finally:
        process.terminate()
        process.wait(30)


def test_the_default_data_dir_is_the_xdg_data_dir_wherever_the_command_runs(
    tmp_path: Path,
) -> None:
    home, here, there = tmp_path / "home", tmp_path / "here", tmp_path / "there"
    for folder in (home, here, there):
        folder.mkdir()
    cli = bare_cli(here, HOME=str(home))
    default = home / ".local" / "share" / "drivegate"
    assert f"no drive at {default} " in cli("user", "list", code=1)
    cli("user", "add", "ann", "--password-stdin", stdin="ann-password\n")
    assert (default / "drivegate.db").exists()
    cli.cwd = there
    assert "ann" in cli("user", "list")  # the same drive from another folder
    cli.env["XDG_DATA_HOME"] = str(tmp_path / "xdg")
    cli("user", "add", "bob", "--password-stdin", stdin="bob-password\n")
    assert (tmp_path / "xdg" / "drivegate" / "drivegate.db").exists()
    assert not any((folder / "drivegate-data").exists() for folder in (here, there))


PROGRESS_LINE = re.compile(r"^(import|export)ed (\d+)/3 files, (.+) of (.+), \S+ \S+/s$", re.M)


def test_import_and_export_print_plain_progress_lines_with_bytes_off_a_terminal(
    cli: Cli, drive: Drive, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    _make_tree(src)  # three files, 3 MiB and 9 bytes
    drive.add_user("ann", "ann-password")
    cli.env["DRIVEGATE_PROGRESS_SECONDS"] = "0"  # a line at every step (no timing asserted)
    for args, verb in (
        (["import", str(src), "/backup"], "import"),
        (["export", "/backup", str(tmp_path / "out")], "export"),
    ):
        result = cli.run(*args, "--user", "ann")
        assert result.returncode == 0, result.stderr
        lines = PROGRESS_LINE.findall(result.stderr)
        assert lines and {line[0] for line in lines} == {verb}, result.stderr
        assert all(total == "3 MiB" for *_, total in lines)
        assert any(0 < int(files) < 3 and done != "0 bytes" for _, files, done, _ in lines)
        assert lines[-1][1:] == ("3", "3 MiB", "3 MiB")
        assert "%" not in result.stderr  # no bar off a terminal
        assert f"{verb}ed 3 files" in result.stdout
