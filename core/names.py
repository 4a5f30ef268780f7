"""Naming rules for files and folders, and splitting of drive paths.

A name is stored in Unicode NFC (Finder sends NFD; both must land on the same
node). A valid name is non-empty, is not ``.`` or ``..``, holds no ``/`` and
no NUL, and is at most 255 bytes in UTF-8: the limits of every common local
file system, so anything in the drive can be written back to a disk.
"""

from __future__ import annotations

import unicodedata

from core.errors import InvalidName

MAX_NAME_BYTES = 255
SERVICE_ROOT = ".drivegate"
"""The one name at the top of the URL space under which the server offers all that
is not a user's files: the sync API (``/.drivegate/api/v1``), the health check,
and later the web app and public links (docs/architecture.md, "The URL space")."""
VIRTUAL_FOLDERS = frozenset({".versions", ".trash"})
"""The read-only folders every drive shows at its top (old versions, the trash)."""
LEGACY_NAMES = frozenset({"api", "healthz", ":dir_browser"})
"""Taken before the rule above: ``/api/v1`` and ``/healthz`` are aliases kept for
clients and load balancers configured before it, and ``/:dir_browser`` holds the
folder page's style sheet (WsgiDAV's fixed path) until the web app replaces it."""
RESERVED_AT_ROOT = frozenset({SERVICE_ROOT, *VIRTUAL_FOLDERS, *LEGACY_NAMES})
"""Names no node may take at a drive's top: its URL is the server's. Published to
clients in the sync API's ``GET me`` (``reserved_names``), so none keeps a copy."""


def normalize_name(name: str) -> str:
    """Return ``name`` in NFC after checking the naming rules; raise InvalidName otherwise."""
    if not isinstance(name, str):
        raise InvalidName(f"a name must be text, not {type(name).__name__}")
    nfc = unicodedata.normalize("NFC", name)
    if nfc == "":
        raise InvalidName("a name cannot be empty")
    if nfc in (".", ".."):
        raise InvalidName(f"{nfc!r} is not allowed as a name")
    if "/" in nfc:
        raise InvalidName(f"a name cannot contain '/': {nfc!r}")
    if "\x00" in nfc:
        raise InvalidName("a name cannot contain a NUL character")
    if len(nfc.encode("utf-8")) > MAX_NAME_BYTES:
        raise InvalidName(f"a name can be at most {MAX_NAME_BYTES} bytes in UTF-8: {nfc[:40]!r}...")
    return nfc


def split_path(path: str) -> list[str]:
    """Split a drive path (``/a/b/c``; leading, trailing and doubled ``/`` ignored) into names.

    Every component is checked and normalised; ``.`` and ``..`` are refused
    rather than resolved, so a path can never climb out of the user's root.
    """
    return [normalize_name(part) for part in path.split("/") if part != ""]


def join_path(names: list[str]) -> str:
    """The drive path of a list of names: ``["a", "b"]`` → ``/a/b``; ``[]`` → ``/``."""
    return "/" + "/".join(names)
