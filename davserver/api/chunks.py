"""Chunk resources: GET (immutable, cacheable, only chunks the user may use),
PUT (verified against the hash, claimed for the user), and "which of these
must I upload". No answer says whether another user stores a chunk
(``core.chunkaccess``)."""

from __future__ import annotations

from collections.abc import Iterator

import falcon

from core import Drive
from davserver.api.models import MissingIn, MissingOut
from davserver.api.spec import operation
from davserver.api.sync import user_of
from davserver.api.wire import read_body, read_json, send

MAX_CHUNK_BODY = 4 * 1024 * 1024
IMMUTABLE = "private, max-age=31536000, immutable"
SEND_PIECE = 256 * 1024


class Chunk:
    def __init__(self, drive: Drive) -> None:
        self.drive = drive

    @operation(summary="A chunk's bytes (only chunks of your files, or uploaded by you).",
               octets=True, errors=(404,))  # fmt: skip
    def on_get(self, req: falcon.Request, resp: falcon.Response, hash: str) -> None:
        # Not re-hashed here: the API's clients MUST verify a chunk against its
        # name (docs/sync-api.md), and the mount does before using a byte of it.
        data = self.drive.read_chunk(user_of(req).id, hash, verify=False)
        resp.content_length = len(data)
        resp.stream = _pieces(data)
        resp.content_type = "application/octet-stream"
        resp.cache_control = [IMMUTABLE]
        resp.etag = hash

    @operation(summary="Upload a chunk (at most 4 MiB); 201 stored for you, 200 you had it.",
               status=201, also=(200,), upload=True, octets=True, errors=(413, 507))  # fmt: skip
    def on_put(self, req: falcon.Request, resp: falcon.Response, hash: str) -> None:
        data = read_body(req, MAX_CHUNK_BODY)
        resp.status = 201 if self.drive.put_chunk(user_of(req).id, hash, data) else 200


class Missing:
    def __init__(self, drive: Drive) -> None:
        self.drive = drive

    @operation(summary="Which of these chunks you must upload (at most 10,000 hashes).",
               answer=MissingOut, body=MissingIn, errors=(413,))  # fmt: skip
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_json(req, MissingIn)
        missing = self.drive.missing_chunks(user_of(req).id, body.hashes)
        send(resp, MissingOut(missing=list(missing)))


def _pieces(data: bytes) -> Iterator[bytes]:
    """The body in pieces: cheroot copies what is left of a write into a new buffer
    after every partial send, so one 4 MiB write costs several times its size in
    copies."""
    for start in range(0, len(data), SEND_PIECE):
        yield data[start : start + SEND_PIECE]
