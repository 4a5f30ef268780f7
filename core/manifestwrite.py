"""Writing a file from a manifest of chunks the client uploaded beforehand
(the sync API's commit): only the chunks the server lacked ever travel.

The steps, all under the shared collector lock (gc cannot delete a chunk
between the check and the commit):

1. one transaction: check the target (kind, compare-and-set, WebDAV locks),
   open the upload session, reserve the quota the new size needs, touch the
   named chunks (which also says which exist and how long they are);
2. refuse missing chunks (``MissingChunks``) and lengths that do not match;
3. read the chunks back, in order, to compute the whole-file SHA-256 (the
   version's hash is the server's own, never the client's word; every chunk
   is verified against its name on the way);
4. the commit step shared with streamed writes (``PendingWrite.commit``).

Any failure releases the reservation and changes nothing.
"""

from __future__ import annotations

import hashlib
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future

from core.backend import Backend
from core.chunkaccess import checked_hash
from core.chunkcodec import decode_chunk
from core.chunking import MAX_CHUNK
from core.chunkrows import touch
from core.commit import PendingWrite, UploadedContent, WriteTarget
from core.errors import ChunkCorrupt, HashMismatch, InvalidRequest, MissingChunks
from core.ids import ChunkHash
from core.nodes import with_locks
from core.records import ChunkRef, NodeState

READ_AHEAD = 8


def manifest_refs(chunks: Sequence[tuple[str, int]], size: int) -> list[ChunkRef]:
    """The manifest's chunk list with offsets; InvalidRequest if it does not add up."""
    refs: list[ChunkRef] = []
    offset = 0
    for key, length in chunks:
        if not 0 < length <= MAX_CHUNK:
            raise InvalidRequest(f"a chunk holds 1 to {MAX_CHUNK} bytes, not {length}")
        refs.append(ChunkRef(offset=offset, length=length, hash=checked_hash(key)))
        offset += length
    if offset != size:
        raise InvalidRequest(f"the chunk lengths add up to {offset}, not to the size {size}")
    return refs


def commit_manifest(
    backend: Backend,
    target: WriteTarget,
    chunks: Sequence[tuple[str, int]],
    size: int,
    sha256: str | None = None,
) -> tuple[NodeState, bool]:
    """Commit ``chunks`` (hash, length) as the target's new content; return the
    file and whether it was created. ``sha256``, if given, must be the content's."""
    refs = manifest_refs(chunks, size)
    pending = PendingWrite(backend, target)
    try:
        with backend.lock.shared():
            now = time.time()
            with backend.db.write() as session:
                pending.open(session, now)
                pending.reserve(session, size, now)
                known = touch(session, [ref.hash for ref in refs], now)
            _check_chunks(refs, known)
            whole = _whole_sha256(backend, refs)
            if sha256 is not None and sha256 != whole:
                raise HashMismatch(f"the content's SHA-256 is {whole}, not {sha256}")
            with backend.db.write() as session:
                info, created = pending.commit(session, UploadedContent(refs, size, whole))
                return with_locks(session, target.user_id, [info])[0], created
    except BaseException:
        pending.abort()
        raise


def _check_chunks(refs: list[ChunkRef], known: dict[ChunkHash, int]) -> None:
    absent = list(dict.fromkeys(ref.hash for ref in refs if ref.hash not in known))
    if absent:
        raise MissingChunks(f"{len(absent)} chunk(s) are not on the server", list(absent))
    for ref in refs:
        if known[ref.hash] != ref.length:
            raise InvalidRequest(
                f"chunk {ref.hash} holds {known[ref.hash]} bytes, not {ref.length}"
            )


def _whole_sha256(backend: Backend, refs: list[ChunkRef]) -> str:
    """SHA-256 of the content, reading up to READ_AHEAD chunks ahead in parallel."""
    whole = hashlib.sha256()

    def fetch(ref: ChunkRef) -> bytes:
        data = decode_chunk(backend.store.get(ref.hash), ref.hash)
        if len(data) != ref.length:
            raise ChunkCorrupt(f"chunk {ref.hash} has the wrong length")
        return data

    if len(refs) == 1:
        whole.update(fetch(refs[0]))
        return whole.hexdigest()
    ahead: deque[Future[bytes]] = deque()
    pending = iter(refs)
    try:
        for ref in pending:
            ahead.append(backend.workers.submit(fetch, ref))
            if len(ahead) >= READ_AHEAD:
                whole.update(ahead.popleft().result())
        while ahead:
            whole.update(ahead.popleft().result())
    finally:
        for future in ahead:
            future.cancel()
    return whole.hexdigest()
