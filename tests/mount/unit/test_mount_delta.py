"""Delta uploads without a server: the byte ranges a working copy holds
(``fusemount.extents``) and the chunk plan of an edited file
(``fusemount.delta``), which must equal the cut of the whole new content
while reading only the bytes around the edits."""

from __future__ import annotations

import io
import random

import pytest
import trio

from cdc import deltaplan
from cdc.chunking import ChunkHash, ChunkRef, cut_file
from fusemount.apirecords import ChunkSpan
from fusemount.delta import plan, splice
from fusemount.errors import FileChanged
from fusemount.extents import Extents

MiB = 1024 * 1024


def test_extents_merge_split_and_clip() -> None:
    extents = Extents()
    extents.add(10, 20)
    extents.add(30, 40)
    extents.add(20, 25)  # adjacent: merged
    assert list(extents) == [(10, 25), (30, 40)]
    extents.add(5, 35)
    assert list(extents) == [(5, 40)]
    extents.add(50, 60)
    assert list(extents.split(0, 70)) == [
        (0, 5, False), (5, 40, True), (40, 50, False), (50, 60, True), (60, 70, False),
    ]  # fmt: skip
    assert extents.covers(6, 39) and not extents.covers(6, 41)
    assert extents.touches(45, 51) and not extents.touches(40, 50)
    extents.clip(55)
    assert list(extents) == [(5, 40), (50, 55)]
    extents.clip(3)
    assert list(extents) == []
    assert Extents.from_json([[1, 2], [2, 4]]) == Extents([(1, 4)])
    with pytest.raises(ValueError, match="pair"):
        Extents.from_json([[3, 1]])


def spans_of(data: bytes) -> tuple[ChunkSpan, ...]:
    pieces, _ = cut_file(io.BytesIO(data))
    return tuple(ChunkSpan(p.offset, p.length, p.hash) for p in pieces)


def run_plan(origin: bytes, new: bytes, changed: Extents) -> tuple[list[ChunkSpan], int]:
    """The plan's chunks and how many bytes it read."""
    read_bytes = 0

    async def read(offset: int, length: int) -> bytes:
        nonlocal read_bytes
        read_bytes += length
        return new[offset : offset + length]

    planned = trio.run(plan, len(new), spans_of(origin), len(origin), changed, read)
    assert {p.hash for p in planned.fresh} <= {p.hash for p in planned.pieces}
    return [ChunkSpan(p.offset, p.length, p.hash) for p in planned.pieces], read_bytes


@pytest.mark.parametrize("seed", range(12))
def test_the_plan_is_the_cut_of_the_whole_new_content(seed: int) -> None:
    rng = random.Random(seed)
    origin = rng.randbytes(rng.choice([0, 1000, 3 * MiB, 12 * MiB]))
    new = bytearray(origin)
    changed = Extents()
    for _ in range(rng.randrange(1, 5)):
        match rng.choice(["write", "write", "truncate", "append"]):
            case "write":
                at = rng.randrange(len(new) + 1)
                patch = rng.randbytes(rng.choice([1, 100, 300_000]))
                if at > len(new):
                    changed.add(len(new), at)
                new[at : at + len(patch)] = patch
                changed.add(at, at + len(patch))
            case "truncate":
                size = rng.randrange(len(new) + MiB)
                changed.clip(size)
                changed.add(len(new), size)
                new = new[:size] + bytes(max(size - len(new), 0))
            case "append":
                tail = rng.randbytes(rng.choice([1, 2 * MiB]))
                changed.add(len(new), len(new) + len(tail))
                new += tail
    planned, _ = run_plan(origin, bytes(new), changed)
    assert planned == list(spans_of(bytes(new)))


def test_a_one_byte_edit_reads_and_cuts_only_the_chunks_around_it() -> None:
    rng = random.Random(7)
    origin = rng.randbytes(64 * MiB)
    middle = 32 * MiB
    new = origin[:middle] + bytes([origin[middle] ^ 1]) + origin[middle + 1 :]
    planned, read = run_plan(origin, new, Extents([(middle, middle + 1)]))
    assert planned == list(spans_of(new))
    # Only the chunk the byte is in: its cut, 64 bytes and more past the edit, holds.
    (landed_in,) = [s for s in spans_of(origin) if s.offset <= middle < s.end]
    assert landed_in.end - middle > 64
    assert read == landed_in.length
    fresh = [s for s in planned if s not in spans_of(origin)]
    assert 1 <= len(fresh) <= 2


def test_an_edit_at_or_next_to_a_chunk_boundary_moves_the_cut_as_a_whole_cut_would() -> None:
    rng = random.Random(11)
    origin = rng.randbytes(16 * MiB)
    for span in spans_of(origin)[1:4]:
        # The cut at span.offset depends on the byte there and the 63 before it.
        near = (-66, -65, -64, -63, -62, -2, -1, 0, 1)
        for at in (span.offset + n for n in near):
            new = origin[:at] + bytes([origin[at] ^ 0xFF]) + origin[at + 1 :]
            planned, _ = run_plan(origin, new, Extents([(at, at + 1)]))
            assert planned == list(spans_of(new)), at


@pytest.mark.parametrize("left", [0, 2 * MiB, 3 * MiB + 100])
def test_a_file_that_shrinks_under_the_plan_is_a_clear_outcome(left: int) -> None:
    """The file is 6 MiB when the plan starts and ``left`` bytes by the time it reads
    around the edit (a truncate landed meanwhile): no StopIteration, no short chunk."""
    rng = random.Random(5)
    origin = rng.randbytes(6 * MiB)
    edit = 3 * MiB
    new = origin[:edit] + bytes([origin[edit] ^ 1]) + origin[edit + 1 :]
    changed = Extents([(edit, edit + 1)])
    now = new[:left]

    def read(offset: int, length: int) -> bytes:
        return now[offset : offset + length]

    with pytest.raises(deltaplan.SourceChanged, match="changed"):
        deltaplan.plan(len(new), spans_of(origin), len(origin), changed, read)

    async def read_async(offset: int, length: int) -> bytes:
        return read(offset, length)

    with pytest.raises(FileChanged):
        trio.run(plan, len(new), spans_of(origin), len(origin), changed, read_async)


def _spans(keys: str, length: int = 10) -> list[ChunkSpan]:
    return [ChunkSpan(i * length, length, ChunkHash(key * 64)) for i, key in enumerate(keys)]


def _pieces(keys: str, length: int = 10) -> list[ChunkRef]:
    return [ChunkRef(i * length, length, ChunkHash(key * 64)) for i, key in enumerate(keys)]


@pytest.mark.parametrize(
    ("origin", "new", "expected"),
    [
        ("abcdef", "abXdef", (2, 3, "X")),  # one chunk changed
        ("abcdef", "abXYcdef", (2, 2, "XY")),  # an insertion
        ("abcdef", "abef", (2, 4, "")),  # a removal
        ("abcdef", "abcdefg", (6, 6, "g")),  # appended
        ("abcdef", "abcdef", (6, 6, "")),  # nothing changed
        ("abcdef", "XYZ", (0, 6, "XYZ")),  # everything changed
        ("aaaa", "aaaaa", (4, 4, "a")),  # repeated content: prefix and suffix do not overlap
        ("", "ab", (0, 0, "ab")),
    ],
)
def test_a_new_chunk_list_is_the_origins_with_one_range_replaced(
    origin: str, new: str, expected: tuple[int, int, str]
) -> None:
    start, end, replacement = splice(_spans(origin), _pieces(new))
    assert (start, end, "".join(p.hash[0] for p in replacement)) == expected
    rebuilt = [s.hash for s in _spans(origin)[:start]] + [p.hash for p in replacement]
    rebuilt += [s.hash for s in _spans(origin)[end:]]
    assert rebuilt == [p.hash for p in _pieces(new)]
