"""Real WebDAV clients from Debian's packages against the real server: rclone (with
the configuration README.md gives) and cadaver."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from core import Drive, UserInfo
from tests.support import ROOT
from tests.support.davbodies import multistatus

FILES = 2500  # "a tree of a few thousand files"
README = ROOT / "README.md"


def _tree(root: Path) -> None:
    rng = random.Random(3)
    for i in range(FILES):
        folder = root / f"d{i // 200}" / f"s{(i // 20) % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i:04d}.txt").write_bytes(rng.randbytes(rng.randint(0, 20_000)))
    (root / "big.bin").write_bytes(rng.randbytes(6 * 1024 * 1024))
    (root / "Café NFC ü.txt").write_text("names with spaces and accents")


def _rclone(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    rclone = shutil.which("rclone")
    if rclone is None:
        pytest.fail("rclone is missing: run scripts/test (it installs Debian's rclone)")
    return subprocess.run([rclone, *args], env=env, capture_output=True, text=True,
                          timeout=900, check=False)  # fmt: skip


def readme_rclone_config() -> tuple[str, dict[str, str]]:
    """The remote's name and settings as README.md's "rclone" section writes them."""
    section = README.read_text().split("### rclone", 1)[1]
    block = re.search(r"```ini\n(.*?)```", section, re.DOTALL)
    assert block is not None, "README.md's rclone section has no ini block"
    lines = [line.strip() for line in block.group(1).splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    assert lines[0].startswith("[") and lines[0].endswith("]"), lines
    settings = dict(line.split(" = ", 1) for line in lines[1:])
    return lines[0][1:-1], settings


def _readme_remote(
    dav_url: str, home: Path, vendor: str | None = None
) -> tuple[str, dict[str, str]]:
    """(remote name, environment) for rclone with README.md's configuration, pointed
    at ``dav_url`` as alice (``vendor``: another vendor instead of the README's)."""
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "RCLONE_CONFIG": "/dev/null"}
    name, settings = readme_rclone_config()
    settings |= {"url": dav_url, "user": "alice"}
    settings["pass"] = _rclone("obscure", "alice-password", env=env).stdout.strip()
    if vendor is not None:
        settings["vendor"] = vendor
    config = home / "rclone.conf"
    config.write_text(f"[{name}]\n" + "".join(f"{k} = {v}\n" for k, v in settings.items()))
    return name, env | {"RCLONE_CONFIG": str(config)}


def _rclone_version(env: dict[str, str]) -> str:
    return _rclone("version", env=env).stdout.splitlines()[0]


@pytest.mark.timeout(600)  # a tree of small files on PostgreSQL + S3 nears the default 300 s
def test_rclone_copies_a_tree_checks_it_and_resyncs_nothing(
    dav_url: str, drive: Drive, alice: UserInfo, tmp_path: Path
) -> None:
    """With README.md's configuration, on both backends."""
    _copy_check_resync(dav_url, drive, alice, tmp_path, vendor=None)


@pytest.mark.parametrize("backend", ["sqlite-file"], indirect=True)
def test_rclone_as_a_plain_webdav_client_copies_a_tree_and_resyncs_nothing(
    dav_url: str, drive: Drive, alice: UserInfo, tmp_path: Path
) -> None:
    """``vendor = other``: no X-OC-Mtime, the server is any WebDAV server to rclone
    (one backend: what it adds is rclone's side, not the storage's)."""
    _copy_check_resync(dav_url, drive, alice, tmp_path, vendor="other")


def _copy_check_resync(
    dav_url: str, drive: Drive, alice: UserInfo, tmp_path: Path, vendor: str | None
) -> None:
    src = tmp_path / "src"
    _tree(src)
    remote, env = _readme_remote(dav_url, tmp_path, vendor)
    flags = ["--transfers", "8", "--checkers", "8"]
    copied = _rclone("copy", str(src), f"{remote}:tree", *flags, env=env)
    assert copied.returncode == 0, copied.stderr[-2000:]
    checked = _rclone("check", str(src), f"{remote}:tree", "--download", *flags, env=env)
    assert checked.returncode == 0, checked.stderr[-2000:]
    assert "0 differences found" in checked.stderr
    cursor = drive.cursor(alice.id)
    again = _rclone("sync", str(src), f"{remote}:tree", "-v", *flags, env=env)
    assert again.returncode == 0, again.stderr[-2000:]
    assert drive.cursor(alice.id) == cursor, "the second sync changed the drive"
    assert (
        "Transferred:   \t          0 / 0" in again.stderr
        or "There was nothing to transfer" in again.stderr
    )


def test_rclone_with_the_readme_config_keeps_modification_times(
    dav_url: str, http: httpx.Client, tmp_path: Path
) -> None:
    """README.md's rclone block, run with the rclone the tests install: ``rclone copy``
    keeps each file's modification time, ``rclone check`` finds no difference, and
    the server offers each file's SHA-256 as ``oc:checksums``."""
    src = tmp_path / "src"
    src.mkdir()
    rng = random.Random(7)
    contents = {"small.txt": b"hello rclone\n", "empty.txt": b"",
                "big.bin": rng.randbytes(5 * 1024 * 1024 + 17)}  # fmt: skip
    for i, (name, data) in enumerate(contents.items()):
        (src / name).write_bytes(data)
        os.utime(src / name, ns=(1_600_000_000_000_000_000 + i * 86_400 * 10**9,) * 2)
    remote, env = _readme_remote(dav_url, tmp_path)
    version = _rclone_version(env)
    copied = _rclone("copy", str(src), f"{remote}:docs", env=env)
    assert copied.returncode == 0, (version, copied.stderr[-2000:])
    listed = _rclone("lsjson", "--hash", f"{remote}:docs", env=env)
    assert listed.returncode == 0, (version, listed.stderr[-2000:])
    entries = {entry["Name"]: entry for entry in json.loads(listed.stdout)}
    assert sorted(entries) == sorted(contents)
    for name, data in contents.items():
        seconds = (src / name).stat().st_mtime_ns // 10**9
        modified = entries[name]["ModTime"]
        assert modified.startswith(_utc(seconds)), (version, name, modified)
        assert entries[name]["Size"] == len(data)
        for kind, value in entries[name].get("Hashes", {}).items():
            if value:  # whatever sum rclone reads must be this content's
                assert value == hashlib.new(kind, data).hexdigest(), (version, name, kind)
    checked = _rclone("check", str(src), f"{remote}:docs", env=env)
    assert checked.returncode == 0, (version, checked.stderr[-2000:])
    assert "0 differences found" in checked.stderr
    sums = http.request(
        "PROPFIND", "/docs/", headers={"Depth": "1"},
        content='<d:propfind xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns"><d:prop>'
        "<oc:checksums/></d:prop></d:propfind>",
    )  # fmt: skip
    offered = {href.rsplit("/", 1)[-1]: props for href, props in multistatus(sums.content).items()}
    for name, data in contents.items():
        checksum = offered[name]["{http://owncloud.org/ns}checksums"]
        assert checksum == f"SHA256:{hashlib.sha256(data).hexdigest()}"


def _utc(seconds: int) -> str:
    """How ``rclone lsjson`` starts a time in UTC: ``2020-09-13T12:26:40``."""
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def test_cadaver_locks_and_sets_properties(dav_url: str, tmp_path: Path) -> None:
    cadaver = shutil.which("cadaver")
    if cadaver is None:
        pytest.fail("cadaver is missing: run scripts/test (it installs Debian's cadaver)")
    host = dav_url.split("//", 1)[1].split(":", 1)[0]
    (tmp_path / ".netrc").write_text(f"machine {host} login alice password alice-password\n")
    os.chmod(tmp_path / ".netrc", 0o600)
    (tmp_path / "notes.txt").write_text("hello from cadaver\n")
    script = "\n".join([
        f"lcd {tmp_path}",
        "put notes.txt",
        "propset notes.txt color blue",
        "propget notes.txt color",
        "lock notes.txt",
        "discover notes.txt",
        "unlock notes.txt",
        "discover notes.txt",
        "quit",
    ])  # fmt: skip
    result = subprocess.run([cadaver, dav_url], input=script, capture_output=True, text=True,
                            env={"HOME": str(tmp_path), "PATH": os.environ["PATH"]},
                            timeout=120, check=False)  # fmt: skip
    out = result.stdout
    assert "succeeded" in out and "blue" in out, out
    assert "Locking `notes.txt': succeeded." in out, out
    assert "Unlocking `notes.txt': succeeded." in out, out
    assert out.count("Lock token") >= 1, out
