"""The mount's systemd unit is valid (systemd-analyze verify) and does what
docs/mount.md promises: one instance per mount point, READY only once
mounted, waits for the network, unmounts cleanly on stop."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT

UNIT = ROOT / "systemd" / "drivegate-mount@.service"
PROMISES = [
    "Type=notify",
    "After=network-online.target",
    "Wants=network-online.target",
    "EnvironmentFile=%E/drivegate/mount-%i.env",
    "ExecStop=/opt/drivegate/.venv/bin/drivegate umount %f",
]


def test_mount_unit_keeps_its_promises() -> None:
    text = UNIT.read_text()
    for line in PROMISES:
        assert f"\n{line}\n" in text
    start = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    assert " mount ${DRIVEGATE_URL} %f " in start
    assert "--foreground" in start
    assert "--allow-other" not in start


def test_mount_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is missing (Debian package systemd)")
    drivegate = Path(sys.executable).parent / "drivegate"
    assert drivegate.exists()
    unit = tmp_path / "drivegate-mount@home-alice-Drive.service"
    unit.write_text(UNIT.read_text().replace("/opt/drivegate/.venv/bin/drivegate", str(drivegate)))
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True,
                            check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "drivegate-mount@" not in result.stderr, result.stderr
