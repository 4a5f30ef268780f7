"""litmus 0.13 (Debian's package) against the real server, with auth, on both backends."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

SUITES = ["basic", "copymove", "props", "locks", "http"]


def test_litmus_passes_every_suite(dav_url: str, tmp_path: Path) -> None:
    litmus = shutil.which("litmus")
    if litmus is None:
        pytest.fail("litmus is not installed: run scripts/test (it installs Debian's litmus)")
    result = subprocess.run(
        [litmus, "-k", dav_url, "alice", "alice-password"],
        capture_output=True, text=True, timeout=600, check=False,
        env={"TESTS": " ".join(SUITES), "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,  # litmus writes debug.log and child.log where it runs
    )  # fmt: skip
    summaries = re.findall(
        r"<- summary for `(\w+)': of (\d+) tests run: (\d+) passed", result.stdout
    )
    assert [name for name, _, _ in summaries] == SUITES, result.stdout[-3000:]
    for name, run, passed in summaries:
        assert run == passed, f"litmus {name}: {passed}/{run}\n{result.stdout[-3000:]}"
    assert result.returncode == 0
