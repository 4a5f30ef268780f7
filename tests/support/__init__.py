"""What the tests share besides fixtures (those are in tests/conftest.py): real
servers and PostgreSQL/S3 endpoints (``servers``), real mounts and a relay
that can hold or cut the mount's requests (``mounts``), a sync-API client
(``apiclient``), raw HTTP (``rawhttp``), WebDAV bodies (``davbodies``) and
test data (``blobs``)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
"""The checkout: the folder holding README.md, pyproject.toml and the packages."""
