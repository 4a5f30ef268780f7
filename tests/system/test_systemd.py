"""The systemd unit is valid (systemd-analyze verify) and hardened as promised."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT

UNIT = ROOT / "systemd" / "drivegate.service"
HARDENING = [
    "User=drivegate",
    "ProtectSystem=strict",
    "ReadWritePaths=/var/lib/drivegate",
    "NoNewPrivileges=yes",
    "PrivateTmp=yes",
]


def test_server_unit_is_hardened() -> None:
    text = UNIT.read_text()
    for line in HARDENING:
        assert f"\n{line}\n" in text


def test_server_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is missing (Debian package systemd)")
    drivegate = Path(sys.executable).parent / "drivegate"
    assert drivegate.exists()
    unit = tmp_path / "drivegate.service"
    unit.write_text(UNIT.read_text().replace("/opt/drivegate/.venv/bin/drivegate", str(drivegate)))
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True,
                            check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "drivegate.service" not in result.stderr, result.stderr
