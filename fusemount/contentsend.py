"""Sending a working copy's content to the server and committing it: the
transport half of write-back (``uploader`` decides what to send when, and
what to do about the answers).

A whole copy is cut into chunks as the server cuts them (``cdc.chunking``)
and each batch of them is asked about (``POST /chunks/missing``) while the
next is cut; only the absent ones go, a few PUTs at a time. A small edit of
a file held only in part goes as a patch (the bytes written; the server
re-cuts around them); a larger one as the chunks around its edits
(``delta``), committed as a splice of the origin's manifest.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable

import trio

from cdc.chunking import ChunkHash, ChunkRef, cut_file
from fusemount.apirecords import CommitTarget, Manifest, Node
from fusemount.client import SyncApi
from fusemount.concurrency import gather, leading
from fusemount.delta import splice
from fusemount.errors import Conflict, FileChanged, MountError, UploadFailed
from fusemount.uploadqueue import Pending
from fusemount.workcopy import WorkCopies

PARALLEL_PUTS = 4  # chunk PUTs of one file at once
# An edit of a file held in part whose written bytes are at most this many goes as
# a patch: the bytes, not the chunks around them (which would come down, be re-cut
# here and go up again). Beyond it, a chunk upload costs the server less.
PATCH_BYTES = 4 * 1024 * 1024
PATCH_RANGES = 256
PATCH_GROWTH = 64 * 1024 * 1024  # the server's bound: it cuts a patch's growth itself


class ContentSender:
    """Sends working copies' content to the server (see the module docstring)."""

    def __init__(self, api: SyncApi, work: WorkCopies) -> None:
        self.api = api
        self.work = work

    async def send(self, row: Pending, target: CommitTarget | None = None) -> Node:
        """Send the content of ``row``'s working copy and commit it: to the file at its
        base version (``target`` None) or as the new file ``target`` names. A whole copy
        is cut and its missing chunks sent as the cut goes on; a small edit of a copy
        held in part goes as a patch; a larger one as the chunks around its edits.
        Raises the API's errors (``Conflict``, ``NotFound``, …) for the caller to settle."""
        copy = self.work.copies.get(row.node_id)
        if copy is None:
            raise UploadFailed(f"the working copy of node {row.node_id} is gone")
        if copy.complete:
            pieces, whole = await self._cut_and_send(self.work.path(row.node_id))
            return await self._commit(row, target, pieces, whole)

        origin = copy.origin
        if target is None and origin is not None and origin.version.id == row.base_version_id:
            ranges = list(copy.local)
            if (
                sum(end - start for start, end in ranges) <= PATCH_BYTES
                and len(ranges) <= PATCH_RANGES
                and copy.size - origin.size <= PATCH_GROWTH
            ):
                return await self._patch(row, copy.size, ranges)

        # Only the chunks around the edits are read and cut (see delta), and only
        # those are asked about: the origin's others are on the server, named by
        # the version the edit started from.
        planned = await self.work.plan(row.node_id)

        async def read(piece: ChunkRef) -> bytes:
            return _whole(piece, await self.work.read(row.node_id, piece.offset, piece.length))

        await self.send_missing(planned.fresh, read)
        manifest = await self.work.origin(row.node_id)  # fetched for the plan already
        try:
            return await self._commit(row, target, planned.pieces, None, manifest)
        except Conflict as exc:  # that version is gone and gc took some of its chunks
            if exc.code != "missing_chunks":
                raise
            await self.send_missing(planned.pieces, read)
            return await self._commit(row, target, planned.pieces, None, manifest)

    async def _patch(self, row: Pending, size: int, ranges: list[tuple[int, int]]) -> Node:
        """Send the bytes written (and the new size) as a patch of the base version,
        which is the origin: the server re-cuts the chunks around them itself."""
        data = []
        for start, end in ranges:
            part = await self.work.read(row.node_id, start, end - start)
            if len(part) != end - start:  # the file shrank: that patch is no state it had
                raise FileChanged(f"the working copy of node {row.node_id} shrank under its patch")
            data.append((start, part))
        return await self.api.patch(
            row.node_id, row.base_version_id, size, data, mtime_ns=row.mtime_ns
        )

    async def _commit(
        self,
        row: Pending,
        target: CommitTarget | None,
        pieces: list[ChunkRef],
        whole: str | None,
        origin: Manifest | None = None,
    ) -> Node:
        """Commit ``pieces`` as the file's content; as a splice of the origin's
        manifest when that is the version the commit is based on (only the
        chunks around the edits go, and the server rewrites only their segment)."""
        size = sum(piece.length for piece in pieces)
        spliced = None
        if target is None:
            target = CommitTarget(node_id=row.node_id, base_version_id=row.base_version_id)
            if origin is not None and origin.version.id == row.base_version_id:
                start, end, pieces = splice(origin.chunks, pieces)
                spliced = (start, end)
        chunks = [(piece.hash, piece.length) for piece in pieces]
        return await self.api.commit(
            target, size, chunks, mtime_ns=row.mtime_ns, sha256=whole, splice=spliced
        )

    async def _cut_and_send(self, path: os.PathLike[str]) -> tuple[list[ChunkRef], str]:
        """Cut a whole local file and send the chunks the server lacks as the cut goes
        on: each batch of pieces is asked about (one ``missing``) and its absent chunks
        sent while the next batch is cut. Return the pieces and the file's SHA-256."""
        batches, arrived = trio.open_memory_channel[list[ChunkRef]](1)
        sending: set[ChunkHash] = set()
        limiter = trio.CapacityLimiter(PARALLEL_PUTS)

        def cut() -> tuple[list[ChunkRef], str]:
            with open(path, "rb") as file:
                return cut_file(file, lambda batch: trio.from_thread.run(batches.send, batch))

        with open(path, "rb") as file:
            fd = file.fileno()

            async def send(piece: ChunkRef) -> None:
                async with limiter:
                    data = await trio.to_thread.run_sync(_read, fd, piece)
                    await self.api.put_chunk(piece.hash, data)

            outcome: list[tuple[list[ChunkRef], str]] = []

            async def run_cut() -> None:
                async with batches:  # closed when the cut ends: the loop below ends too
                    outcome.append(await trio.to_thread.run_sync(cut))

            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(run_cut)
                    # Closed on the way out: a cut still running then stops at its next batch.
                    async with arrived:
                        async for batch in arrived:
                            fresh = [p for p in batch if p.hash not in sending]
                            unique = list(dict.fromkeys(p.hash for p in fresh))
                            absent = await self.api.missing(unique)
                            for piece in fresh:
                                if piece.hash in absent and piece.hash not in sending:
                                    sending.add(piece.hash)
                                    nursery.start_soon(send, piece)
            except BaseExceptionGroup as group:  # as if the work had run alone
                first = leading(group, MountError, OSError)
                if first is None:
                    raise
                raise first from None
        return outcome[0]

    async def send_missing(
        self, pieces: list[ChunkRef], read: Callable[[ChunkRef], Awaitable[bytes]]
    ) -> None:
        """Ask the server which chunks it lacks; send those."""
        unique = list(dict.fromkeys(piece.hash for piece in pieces))
        absent = await self.api.missing(unique)
        first: dict[ChunkHash, ChunkRef] = {}
        for piece in pieces:
            if piece.hash in absent:
                first.setdefault(piece.hash, piece)

        def job(piece: ChunkRef) -> Callable[[], Awaitable[None]]:
            async def send() -> None:
                await self.api.put_chunk(piece.hash, await read(piece))

            return send

        # A few at a time: the server works on one while the next is in transit (and
        # at most that many chunks are in memory).
        await gather([job(piece) for piece in first.values()], limit=PARALLEL_PUTS)


def cut_whole(path: os.PathLike[str]) -> tuple[list[ChunkRef], str]:
    with open(path, "rb") as file:
        return cut_file(file)


def _read(fd: int, piece: ChunkRef) -> bytes:
    return _whole(piece, os.pread(fd, piece.length, piece.offset))


def _whole(piece: ChunkRef, data: bytes) -> bytes:
    """``data`` read for ``piece``; ``FileChanged`` if the file no longer holds it all
    (a short or empty chunk would only be refused by the server)."""
    if len(data) != piece.length:
        raise FileChanged(f"{len(data)} bytes at offset {piece.offset}, not {piece.length}")
    return data


def read_piece(path: os.PathLike[str], piece: ChunkRef) -> bytes:
    with open(path, "rb") as file:
        return _read(file.fileno(), piece)
