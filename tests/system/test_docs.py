"""The docs keep up with the code: docs/architecture.md's layout names every module."""

from __future__ import annotations

import re

from tests.support import ROOT

PACKAGES = ("cdc", "runtime", "core", "davserver", "fusemount")


def _layout() -> str:
    text = (ROOT / "docs" / "architecture.md").read_text()
    start = text.index("## Layout")
    return text[start : text.index("\n## ", start + 1)]


def test_the_layout_names_every_module() -> None:
    layout = _layout()
    unnamed = [
        str(path.relative_to(ROOT))
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if path.stem != "__init__"
        and "migrations" not in path.parts
        and not re.search(rf"\b{re.escape(path.stem)}\b", layout)
    ]
    assert unnamed == [], "add these to docs/architecture.md's Layout"
