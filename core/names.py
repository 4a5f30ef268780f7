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
RESERVED_AT_ROOT = frozenset({".versions", ".trash", "api"})
"""Names the faces use at a drive's root: virtual folders (old versions, the trash)
and the sync API (``/api/v1``, served on the same URLs as the drive)."""


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
