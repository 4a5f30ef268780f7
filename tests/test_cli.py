"""The real ``drivegate`` command, run as a subprocess against both backends."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core import Drive, WriteTarget
from tests.blobs import flip_a_byte
from tests.conftest import BackendSetup

DRIVEGATE = [sys.executable, "-m", "drivegate"]
ROOT = Path(__file__).resolve().parent.parent


class Cli:
    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.env = {**os.environ, **env}
        self.cwd = cwd

    def __call__(self, *args: str, stdin: str = "", code: int = 0) -> str:
        result = subprocess.run(  # noqa: PLW1510 (the exit code is asserted below)
            [*DRIVEGATE, *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.cwd,
            timeout=120,
        )
        assert result.returncode == code, (args, result.stdout, result.stderr)
        return result.stdout + result.stderr


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
    refs, _ = drive.manifest(user.id, "/photos/cat.jpg")
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
    refs, _ = drive.manifest(user.id, "/known.bin")
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
    refs, _ = drive.manifest(user.id, "/a.txt")
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
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIVEGATE_")}
    env["PYTHONPATH"] = str(ROOT)
    config = tmp_path / "drivegate.toml"
    config.write_text(f'data_dir = "{tmp_path / "from-config"}"\n')
    cli = Cli(env, tmp_path)
    cli("--help")
    cli(
        "user", "add", "cfg", "--config", str(config), "--password-stdin", stdin="config-password\n"
    )
    assert (tmp_path / "from-config" / "drivegate.db").exists()
    cli.env["DRIVEGATE_DATA_DIR"] = str(tmp_path / "from-env")
    cli("user", "list")
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
