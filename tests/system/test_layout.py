"""The package layering and public names promised in DESIGN.md and core/__init__.py."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys

import core
from tests.support import ROOT


def _imports(package: str) -> set[str]:
    found: set[str] = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found


def test_core_imports_neither_face() -> None:
    assert not _imports("core") & {"davserver", "fusemount", "drivegate"}


def test_faces_do_not_import_each_other() -> None:
    assert "fusemount" not in _imports("davserver")
    assert "davserver" not in _imports("fusemount")


def _isort_style(names: list[str]) -> list[str]:
    """Sorted as ruff's RUF022 keeps ``__all__``: CONSTANTS, then Classes, then functions."""
    return sorted(names, key=lambda n: (0 if n.isupper() else 1 if n[0].isupper() else 2, n))


def test_core_exports_are_sorted_and_importable() -> None:
    assert core.__all__ == _isort_style(core.__all__)
    for name in core.__all__:
        assert getattr(core, name) is not None


def test_the_sync_api_exports_are_sorted_and_every_route_is_documented() -> None:
    import davserver.api
    from davserver.api.routes import routes
    from davserver.api.spec import operations

    assert davserver.api.__all__ == _isort_style(davserver.api.__all__)
    for template, resource in routes(None, 1):  # type: ignore[arg-type]  # no drive needed
        assert operations(resource), template


def test_fusemount_exports_are_sorted_and_importable() -> None:
    import fusemount

    assert fusemount.__all__ == _isort_style(fusemount.__all__)
    for name in fusemount.__all__:
        assert getattr(fusemount, name) is not None


def test_fusemount_imports_nothing_of_the_server() -> None:
    assert not _imports("fusemount") & {"core", "davserver"}


def test_the_shared_packages_stand_on_nothing_of_ours() -> None:
    """``cdc`` and ``runtime`` are what the core and the mount share: they import
    neither (nor each other's callers), so both sides can stand on them."""
    ours = {"core", "davserver", "fusemount", "drivegate"}
    assert not _imports("cdc") & (ours | {"runtime"})
    assert not _imports("runtime") & (ours | {"cdc"})


SERVER_LIBRARIES = {
    *("sqlalchemy", "alembic", "psycopg", "minio", "argon2", "wsgidav", "cheroot", "falcon"),
    *("lxml", "pydantic", "core", "davserver"),
}
"""(Not zstandard: httpx loads it, when it is installed, to decode zstd answers.)"""


def _loaded_by(code: str) -> set[str]:
    """The top-level modules a fresh interpreter has loaded after running ``code``."""
    probe = code + "\nimport sys; print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return set(result.stdout.split())


def test_the_mount_loads_no_server_library() -> None:
    """Every module of the mount, and ``drivegate mount`` itself (through the lazy
    top-level command), load none of the server's libraries."""
    modules = sorted(p.stem for p in (ROOT / "fusemount").glob("*.py") if p.stem != "__init__")
    everything = "\n".join(f"import fusemount.{name}" for name in modules)
    assert not _loaded_by(everything) & SERVER_LIBRARIES
    command = (
        "import drivegate\n"
        "try:\n    drivegate.main(['mount', '--help'])\nexcept SystemExit as exit:\n"
        "    assert exit.code == 0, exit.code"
    )
    loaded = _loaded_by(command)
    assert "fusemount" in loaded
    assert not loaded & SERVER_LIBRARIES


def test_the_top_level_command_knows_every_packages_commands() -> None:
    import drivegate

    for package, (_, names) in drivegate.PACKAGES.items():
        module = importlib.import_module(package)
        assert sorted(c.name or "" for c in module.COMMANDS) == sorted(names), package
