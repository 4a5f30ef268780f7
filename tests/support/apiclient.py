"""Helpers the sync API tests share: uploading content as chunks and committing
it, reading a whole tree, and a guard that a request changed nothing."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from cdc.chunking import cut_bytes

Json = dict[str, Any]


def put_chunks(api: httpx.Client, data: bytes) -> list[Json]:
    """Upload the chunks of ``data`` the server lacks; return the manifest entries."""
    chunks = list(cut_bytes(data))
    entries = [{"hash": hashlib.sha256(c).hexdigest(), "length": len(c)} for c in chunks]
    hashes = [entry["hash"] for entry in entries]
    missing = api.post("/chunks/missing", json={"hashes": hashes}).json()["missing"]
    for chunk, entry in zip(chunks, entries, strict=True):
        if entry["hash"] in missing:
            answer = api.put(f"/chunks/{entry['hash']}", content=chunk)
            assert answer.status_code in (200, 201), answer.text
    return entries


def commit(api: httpx.Client, data: bytes, **target: Any) -> httpx.Response:
    """Upload ``data``'s chunks and commit them to ``target`` (node_id + base, or
    parent_id + name, …)."""
    entries = put_chunks(api, data)
    return api.post("/commit", json={"size": len(data), "chunks": entries, **target})


def whole_tree(api: httpx.Client) -> dict[int, Json]:
    """Every live node of the user by id, through the tree pages."""
    nodes: dict[int, Json] = {}
    after = 0
    while True:
        page = api.get("/tree", params={"after": after, "limit": 10000}).json()
        nodes.update({node["id"]: node for node in page["nodes"]})
        if page["next_after"] is None:
            return nodes
        after = page["next_after"]


def snapshot(api: httpx.Client) -> tuple[Json, dict[int, Json]]:
    """What a request that fails must leave alone: the journal cursor, quota use, tree."""
    return api.get("/me").json(), whole_tree(api)


@contextmanager
def unchanged(api: httpx.Client) -> Iterator[None]:
    """Assert the block leaves the user's journal, quota use and tree as they were."""
    before = snapshot(api)
    yield
    assert snapshot(api) == before


def error_code(response: httpx.Response) -> str:
    assert response.headers["content-type"].startswith("application/json"), response.text
    code: str = response.json()["error"]["code"]
    return code
