"""Real WebDAV clients from Debian's packages against the real server: rclone and cadaver."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from core import Drive, UserInfo

FILES = 2500  # "a tree of a few thousand files"


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


@pytest.mark.parametrize("vendor", ["rclone", "other"])
def test_rclone_copies_a_tree_checks_it_and_resyncs_nothing(
    vendor: str, dav_url: str, drive: Drive, alice: UserInfo, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    _tree(src)
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "RCLONE_CONFIG": "/dev/null"}
    obscured = _rclone("obscure", "alice-password", env=env).stdout.strip()
    env |= {
        "RCLONE_CONFIG_DG_TYPE": "webdav",
        "RCLONE_CONFIG_DG_URL": dav_url,
        "RCLONE_CONFIG_DG_VENDOR": vendor,
        "RCLONE_CONFIG_DG_USER": "alice",
        "RCLONE_CONFIG_DG_PASS": obscured,
    }
    flags = ["--transfers", "8", "--checkers", "8"]
    copied = _rclone("copy", str(src), "dg:tree", *flags, env=env)
    assert copied.returncode == 0, copied.stderr[-2000:]
    checked = _rclone("check", str(src), "dg:tree", "--download", *flags, env=env)
    assert checked.returncode == 0, checked.stderr[-2000:]
    assert "0 differences found" in checked.stderr
    cursor = drive.cursor(alice.id)
    again = _rclone("sync", str(src), "dg:tree", "-v", *flags, env=env)
    assert again.returncode == 0, again.stderr[-2000:]
    assert drive.cursor(alice.id) == cursor, "the second sync changed the drive"
    assert (
        "Transferred:   \t          0 / 0" in again.stderr
        or "There was nothing to transfer" in again.stderr
    )


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
