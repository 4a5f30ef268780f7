"""``scripts/install-and-run`` without installing anything: its syntax, its
arguments, and the link it puts on the PATH (``link_command`` of scripts/lib.sh).

The whole script (apt, the venv, serve) is run by hand; what serve prints last
(the URL and the first login) is tested in tests/system/test_cli.py.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support import ROOT

SCRIPT = ROOT / "scripts" / "install-and-run"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, timeout=30, check=False
    )


@pytest.mark.parametrize("script", ["install-and-run", "lib.sh", "test"])
def test_scripts_parse(script: str) -> None:
    result = subprocess.run(
        ["bash", "-n", str(ROOT / "scripts" / script)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_help_names_the_options_and_installs_nothing() -> None:
    result = _run("--help")
    assert result.returncode == 0, result.stderr
    assert "--host ADDR" in result.stdout and "--port PORT" in result.stdout
    assert "DRIVEGATE_PORT" in result.stdout and "Installing" not in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "eighty"], "--port must be a number"),
        (["--port"], "Usage:"),
        (["--verbose"], "unknown argument: --verbose"),
    ],
)
def test_bad_arguments_stop_before_anything_is_installed(args: list[str], message: str) -> None:
    result = _run(*args)
    assert result.returncode == 2
    assert message in result.stderr and result.stdout == ""


def _link_command(link: Path, target: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", 'source scripts/lib.sh && link_command "$0" "$1"', str(link), str(target)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def test_link_command_links_replaces_an_old_link_and_spares_a_file(tmp_path: Path) -> None:
    link = tmp_path / "bin" / "drivegate"
    for target in (tmp_path / "old" / "drivegate", tmp_path / "new" / "drivegate"):
        assert _link_command(link, target).returncode == 0
        assert link.is_symlink() and link.readlink() == target
    link.unlink()
    link.write_text("#!/bin/sh\n")
    result = _link_command(link, tmp_path / "new" / "drivegate")
    assert result.returncode == 0 and "left alone" in result.stderr
    assert not link.is_symlink() and link.read_text() == "#!/bin/sh\n"
