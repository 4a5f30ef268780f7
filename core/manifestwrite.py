"""Writing a file from a manifest of chunks the client uploaded beforehand
(the sync API's commit): only the chunks the server lacked ever travel, and
the server reads none of the file back.

One transaction, under the shared collector lock (gc cannot delete a chunk
between the check and the commit): touch the named chunks the user may use
(``core.chunkaccess.usable``: read through their nodes, or uploaded by them;
any other is answered as missing, whoever stores it, and its length is not
checked), which also says which exist and how long they are, except those the
base version's manifest
names already (a manifest protects its chunks from gc, and rewriting the
``last_seen`` of every chunk of a 1 GiB file for a 1-byte edit dirtied
hundreds of pages per commit), check the target (kind, compare-and-set,
WebDAV locks), refuse missing chunks (``MissingChunks``) and lengths that do
not match, then the commit step shared with streamed writes
(``core.commit.apply_write``), which charges the quota for the new size.

The whole-file SHA-256 is *known when cheap*: computing it here would mean
reading every chunk back, so a 1-byte edit of a 1 GiB file would cost 1 GiB
of reads. The version keeps the client's ``sha256`` if it sent one (a client
holding the whole file has it for free), else NULL; ``drivegate fsck
--verify`` fills unknown sums in. Nothing depends on the sum being known:
each chunk is verified against its name whenever it is read, and ETags are
formed from the version and manifest ids.

Any failure changes nothing. A commit that names
a reserved id (``WriteTarget.new_id``) the user's live node has already is a
replay: it changes nothing and answers that node (``core.nodeids``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from concurrent.futures import Future, wait
from dataclasses import dataclass

from sqlalchemy.orm import Session

from cdc.chunking import MAX_CHUNK, ChunkRef
from core import segments
from core.backend import Backend
from core.chunkaccess import checked_hash, usable
from core.chunkcodec import frame
from core.chunkrows import ChunkRow, put_blob, touch, upsert
from core.commit import UploadedContent, WriteTarget, apply_write
from core.errors import InvalidRequest, MissingChunks
from core.ids import ChunkHash
from core.nodeids import AlreadyCreated
from core.nodes import state, with_locks
from core.records import NodeInfo
from core.segments import Placed, StoredSegment

_SHA256 = re.compile("[0-9a-f]{64}")


@dataclass(frozen=True)
class Splice:
    """A commit's chunks replace the base version's entries ``start`` to ``end``
    (exclusive); the others stay as they are."""

    start: int
    end: int


def manifest_refs(chunks: Sequence[tuple[str, int]], size: int | None) -> list[ChunkRef]:
    """The chunk list with offsets (from 0); InvalidRequest if an entry is not one,
    or if the lengths do not add up to ``size`` (None: not checked)."""
    refs: list[ChunkRef] = []
    offset = 0
    for key, length in chunks:
        if not 0 < length <= MAX_CHUNK:
            raise InvalidRequest(f"a chunk holds 1 to {MAX_CHUNK} bytes, not {length}")
        refs.append(ChunkRef(offset=offset, length=length, hash=checked_hash(key)))
        offset += length
    if size is not None and offset != size:
        raise InvalidRequest(f"the chunk lengths add up to {offset}, not to the size {size}")
    return refs


def commit_manifest(
    backend: Backend,
    target: WriteTarget,
    chunks: Sequence[tuple[str, int]],
    size: int,
    *,
    sha256: str | None = None,
    splice: Splice | None = None,
    new_chunks: dict[ChunkHash, bytes | memoryview] | None = None,
) -> tuple[NodeInfo, bool]:
    """Commit ``chunks`` (hash, length) as the target's new content; return the
    file and whether it was created. ``sha256`` is the client's word for the
    whole content's sum (stored as given; None: unknown). With ``splice``, the
    chunks replace that range of the base version's entries, and ``size`` is the
    whole new size: a small edit of a big file sends and costs little.
    ``new_chunks`` (plaintext by name, names already checked) are stored in the
    same hold of the collector lock, those the server lacks written while the
    transaction checks the target, and registered in it (a patch's chunks)."""
    if sha256 is not None and not _SHA256.fullmatch(sha256):
        raise InvalidRequest("sha256 is 64 lower-case hex digits")
    if splice is not None and (target.node_id is None or target.base_version_id is None):
        raise InvalidRequest("a splice edits the base version: give node_id and base_version_id")
    refs = manifest_refs(chunks, size if splice is None else None)
    new_chunks = new_chunks or {}
    try:
        with backend.lock.shared(), backend.db.write() as session:
            base = None if splice is not None else _base_segments(session, target)
            content = UploadedContent(refs, size, sha256, reusable=base)
            known = {key: length for segment in base or [] for key, length in segment.entries}
            fresh = [ref.hash for ref in refs if ref.hash not in known]
            allowed = usable(session, target.user_id, fresh)  # the rest are "missing"
            known.update(touch(session, [*allowed, *new_chunks], time.time()))
            storing = _store_absent(backend, new_chunks, known)

            def check_content() -> None:
                upsert(session, [future.result() for future in storing])
                known.update({key: len(data) for key, data in new_chunks.items()})
                _check_chunks(refs, known)
                if splice is not None:
                    content.placed = _spliced(session, target, splice, refs, size)

            try:
                info, created = apply_write(
                    session, target, content, reserved=0, check_content=check_content
                )
            finally:
                wait(storing)  # refused before its rows went in: gc sweeps the blobs
            return with_locks(session, target.user_id, [info])[0], created
    except AlreadyCreated as replay:
        with backend.db.read() as session:
            return state(session, target.user_id, replay.node_id), False


def _store_absent(
    backend: Backend, chunks: dict[ChunkHash, bytes | memoryview], known: dict[ChunkHash, int]
) -> list[Future[ChunkRow]]:
    """Start storing the chunks with no row (blob first, row later: ``chunkrows``)."""
    now = time.time()
    return [
        backend.workers.submit(put_blob, backend, key, frame(data), now)
        for key, data in chunks.items()
        if key not in known
    ]


def _base_segments(session: Session, target: WriteTarget) -> list[StoredSegment] | None:
    """The segments of the commit's base version, if it names one (None: the
    commit step finds the current version's); its compare-and-set check comes
    later, in ``apply_write``."""
    if target.node_id is None or target.base_version_id is None:
        return None
    return segments.of_version(session, target.base_version_id, target.node_id)


def _spliced(
    session: Session, target: WriteTarget, splice: Splice, refs: list[ChunkRef], size: int
) -> list[Placed]:
    """The layout of the base version (the current one: checked) with the splice done."""
    assert target.base_version_id is not None and target.node_id is not None  # checked
    manifest_id = segments.version_manifest(session, target.base_version_id, target.node_id)
    assert manifest_id is not None, "the base is the current version: checked"
    new = [(ref.hash, ref.length) for ref in refs]
    placed = segments.splice(
        session, segments.listing(session, manifest_id), splice.start, splice.end, new
    )
    _, total = segments.totals(placed)
    if total != size:
        raise InvalidRequest(f"the spliced chunk lengths add up to {total}, not to the size {size}")
    return placed


def _check_chunks(refs: list[ChunkRef], known: dict[ChunkHash, int]) -> None:
    absent = list(dict.fromkeys(ref.hash for ref in refs if ref.hash not in known))
    if absent:
        raise MissingChunks(f"{len(absent)} chunk(s) are not on the server", list(absent))
    for ref in refs:
        if known[ref.hash] != ref.length:
            raise InvalidRequest(
                f"chunk {ref.hash} holds {known[ref.hash]} bytes, not {ref.length}"
            )
