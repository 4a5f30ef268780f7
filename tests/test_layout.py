"""The package layering and public names promised in DESIGN.md and core/__init__.py."""

from __future__ import annotations

import ast
from pathlib import Path

import core

ROOT = Path(__file__).resolve().parent.parent


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


def test_core_exports_are_sorted_and_importable() -> None:
    assert core.__all__ == sorted(core.__all__)
    for name in core.__all__:
        assert getattr(core, name) is not None


def test_the_sync_api_exports_are_sorted_and_every_route_is_documented() -> None:
    import davserver.api
    from davserver.api.routes import routes
    from davserver.api.spec import operations

    assert davserver.api.__all__ == sorted(davserver.api.__all__)
    for template, resource in routes(None, 1):  # type: ignore[arg-type]  # no drive needed
        assert operations(resource), template


def test_fusemount_exports_are_sorted_and_importable() -> None:
    import fusemount

    assert fusemount.__all__ == sorted(fusemount.__all__)
    for name in fusemount.__all__:
        assert getattr(fusemount, name) is not None


def test_fusemount_speaks_http_only() -> None:
    """The mount may use core's CLI conventions, process settings and the pure delta
    walk, never its drive service or database."""
    for path in (ROOT / "fusemount").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("core"):
                allowed = {
                    "core.cli.common": ["SizeParam"],
                    "core.heap": ["settle_heap"],
                    "core.alignedbuffers": ["AlignedBuffers"],
                    "core.deltaplan": ["SourceChanged", "plan", "splice"],
                }
                assert node.module in allowed, (path.name, node.module)
                names = {alias.name for alias in node.names}
                assert names <= set(allowed[node.module]), path.name
