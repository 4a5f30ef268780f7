"""Import benchmark for the core, with its anchors measured in the same run.

What it does, all on the disk of ``--workdir``:

1. generates (once, then reuses) a 1 GiB random file, a 1 GiB text-like
   file, a 256 MiB random file and a tree of 10,000 small text files;
2. measures the CDC + SHA-256 limit: chunking and hashing the same bytes
   in-process, single stream, from the page cache;
3. imports each input into a fresh drive (SQLite + local chunk dir) in a
   child process that reports wall time and peak RSS; each large file
   ``--rounds`` (3) times, each round into a drive of its own and with the
   limit measured again just before it, and the round with the median
   ratio is reported (every round is printed);
4. times ``cp`` + ``sync`` of each large file (what writing it to this disk
   costs) and ``cp -r`` + ``sync`` of the small-file tree (files/s), and
   prints each large file's compute bound: the CPU time of the import's own
   computations (FastCDC, SHA-256 of each chunk and of the whole file, zstd
   as stored), timed single-threaded and divided by the number of cores,
   which no import can beat here whatever its design;
5. re-imports everything (must store 0 new chunk bytes);
6. inserts 100 bytes into the middle of the 256 MiB file and imports the
   result over the original (must store at most 2 new chunks).

Targets (from the issue): large-file import >= 0.5x the CDC+SHA-256 limit,
peak RSS < 200 MB. Run: ``.venv/bin/python bench/import_bench.py``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cdc.chunking import cut_stream  # noqa: E402
from core.chunkcodec import encode_chunk  # noqa: E402
from core.settings import Settings  # noqa: E402

GiB = 1024**3
MiB = 1024**2

_CHILD = """
import json, os, resource, sys, time
from core import Drive, load_settings
data_dir, user, src, dest = sys.argv[1:5]
with Drive.open(load_settings(data_dir=data_dir)) as drive:
    try:
        uid = drive.user(user).id
    except Exception:
        uid = drive.add_user(user, "bench-password").id
    start = time.perf_counter()
    files = 0
    if os.path.isdir(src):
        drive.makedirs(uid, dest)
        for folder, dirs, names in os.walk(src):
            rel = os.path.relpath(folder, src)
            base = dest if rel == "." else dest + "/" + rel
            for name in dirs:
                drive.makedirs(uid, base + "/" + name)
            for name in names:
                with open(os.path.join(folder, name), "rb") as handle:
                    drive.write(uid, base + "/" + name, handle)
                files += 1
    else:
        with open(src, "rb") as handle:
            drive.write(uid, dest, handle)
        files = 1
    seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"seconds": seconds, "files": files, "peak_rss": peak}))
"""


def generate_random(path: Path, size: int, seed: int) -> None:
    if path.exists() and path.stat().st_size == size:
        return
    rng = random.Random(seed)
    with open(path, "wb") as out:
        for _ in range(size // (8 * MiB)):
            out.write(rng.randbytes(8 * MiB))


def generate_text(path: Path, size: int) -> None:
    if path.exists() and path.stat().st_size == size:
        return
    rng = random.Random(11)
    letters = "etaoinshrdlcumwfgypbvkjxqz"
    vocab = ["".join(rng.choices(letters, k=rng.randint(2, 10))) for _ in range(20_000)]
    written = 0
    with open(path, "wb") as out:
        while written < size:
            words = rng.choices(vocab, k=200_000)
            lines = [" ".join(words[i : i + 12]) for i in range(0, len(words), 12)]
            block = ("\n".join(lines) + "\n").encode()[: size - written]
            out.write(block)
            written += len(block)


def generate_tree(root: Path, count: int) -> None:
    if root.exists() and sum(1 for _ in root.rglob("*.txt")) == count:
        return
    shutil.rmtree(root, ignore_errors=True)
    rng = random.Random(13)
    for i in range(count):
        folder = root / f"d{i // 500:02d}" / f"s{(i // 50) % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        text = f"file {i}\n" + "".join(rng.choices("abcdefgh \n", k=rng.randint(200, 12_000)))
        (folder / f"f{i:05d}.txt").write_text(text)


def cdc_sha_limit(path: Path) -> float:
    """MB/s of FastCDC + SHA-256 over the file, single stream, page cache warm."""
    with open(path, "rb") as handle:  # warm the page cache
        while handle.read(64 * MiB):
            pass
    start = time.perf_counter()
    with open(path, "rb") as handle:
        for chunk in cut_stream(handle):
            hashlib.sha256(chunk).digest()
    return path.stat().st_size / (time.perf_counter() - start) / 1e6


def compute_bound(path: Path) -> float:
    """MB/s that no import of ``path`` can beat on this machine: the CPU time of the
    import's own computations (FastCDC, SHA-256 of every chunk and again of the
    whole file, zstd as the drive stores chunks), each timed single-threaded, then
    spread perfectly over all cores, with no I/O and no interpreter overhead."""
    level = Settings().zstd_level
    cut = sha = pack = 0.0
    with open(path, "rb") as handle:
        chunks = cut_stream(handle)
        while True:
            start = time.perf_counter()
            chunk = next(chunks, None)
            cut += time.perf_counter() - start
            if chunk is None:
                break
            start = time.perf_counter()
            hashlib.sha256(chunk).digest()
            sha += time.perf_counter() - start
            start = time.perf_counter()
            encode_chunk(chunk, level)
            pack += time.perf_counter() - start
    cores = os.cpu_count() or 1
    return path.stat().st_size / ((cut + 2 * sha + pack) / cores) / 1e6


def cp_sync_speed(path: Path, target: Path) -> float:
    """MB/s of ``cp FILE`` + ``sync`` on the same disk: what the disk path costs here."""
    start = time.perf_counter()
    subprocess.run(["cp", str(path), str(target)], check=True)
    subprocess.run(["sync"], check=True)
    speed = path.stat().st_size / (time.perf_counter() - start) / 1e6
    target.unlink()
    return speed


def run_import(data_dir: Path, src: Path, dest: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(data_dir), "bench", str(src), dest],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return dict(json.loads(out.stdout))


def chunk_stats(data_dir: Path) -> tuple[int, int]:
    """(number of chunk blobs, their total bytes) in the drive's chunk dir."""
    blobs = [p for p in (data_dir / "chunks").glob("??/*") if p.is_file()]
    return len(blobs), sum(p.stat().st_size for p in blobs)


def bench_large_files(
    data: Path, work: Path, files: list[tuple[str, Path]], rounds: int
) -> list[str]:
    """Import each file ``rounds`` times, each time next to a fresh measure of the
    limit; the median round is reported. Round 1 imports into ``data`` (which the
    later steps go on using), the others into drives of their own (``drive-roundN``
    under ``work``), so that no round dedups against another."""
    rows = []
    for label, path in files:
        copy = cp_sync_speed(path, work / "cp-file")
        bound = compute_bound(path)
        measured: list[tuple[float, float, float]] = []  # (ratio, speed, limit) per round
        peak = 0.0
        for n in range(1, rounds + 1):
            limit = cdc_sha_limit(path)
            drive = data if n == 1 else work / f"drive-round{n}"
            if n > 1:
                shutil.rmtree(drive, ignore_errors=True)  # round 1's is the drive of every file
            result = run_import(drive, path, "/" + path.name)
            speed = path.stat().st_size / result["seconds"] / 1e6
            peak = max(peak, result["peak_rss"])
            measured.append((speed / limit, speed, limit))
            print(f"  {label}, round {n}: import {speed:5.0f} MB/s, CDC+SHA limit "
                  f"{limit:5.0f} MB/s, ratio {speed / limit:.2f}", flush=True)  # fmt: skip
        ratio, speed, limit = sorted(measured)[len(measured) // 2]
        rows.append(
            f"{label:<14} import {speed:5.0f} MB/s | CDC+SHA limit {limit:5.0f} MB/s, ratio "
            f"{ratio:.2f} (target >= 0.5; median of {rounds}) | compute bound "
            f"{bound:5.0f} MB/s = {bound / limit:.2f} of the limit | cp+sync {copy:5.0f} MB/s, "
            f"ratio {speed / copy:.2f} | peak RSS {peak / 1e6:.0f} MB (target < 200)"
        )
        print(rows[-1], flush=True)
    return rows


def bench_small_files(data: Path, work: Path, tree: Path, count: int) -> str:
    copy_target = work / "cp-copy"
    shutil.rmtree(copy_target, ignore_errors=True)
    start = time.perf_counter()
    subprocess.run(["cp", "-r", str(tree), str(copy_target)], check=True)
    subprocess.run(["sync"], check=True)
    cp_rate = count / (time.perf_counter() - start)
    shutil.rmtree(copy_target, ignore_errors=True)
    result = run_import(data, tree, "/tree")
    rate = result["files"] / result["seconds"]
    row = (
        f"{count} small files: import {rate:7.0f} files/s | cp -r + sync {cp_rate:7.0f} "
        f"files/s | ratio {rate / cp_rate:.3f}"
    )
    print(row, flush=True)
    return row


def bench_reimport(data: Path, inputs: list[Path]) -> str:
    before = chunk_stats(data)
    for path in inputs:
        run_import(data, path, "/again-" + path.name)
    after = chunk_stats(data)
    row = f"re-import of everything: {after[1] - before[1]} new chunk bytes (must be 0)"
    print(row, flush=True)
    return row


def bench_insert(data: Path, base: Path, edited: Path) -> str:
    run_import(data, base, "/edit.bin")
    original = base.read_bytes()
    middle = len(original) // 2
    edited.write_bytes(original[:middle] + os.urandom(100) + original[middle:])
    before = chunk_stats(data)
    run_import(data, edited, "/edit.bin")
    after = chunk_stats(data)
    row = (
        f"100 bytes inserted mid 256 MiB: {after[0] - before[0]} new chunks, "
        f"{(after[1] - before[1]) / MiB:.2f} MiB stored (must be <= 2 chunks)"
    )
    print(row, flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/var/tmp/dg-bench"))
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3,
                        help="imports of each large file (median reported)")  # fmt: skip
    args = parser.parse_args()
    work: Path = args.workdir
    inputs = work / "inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    print("generating inputs (cached between runs)…", flush=True)
    random_1g, text_1g, base_256m = inputs / "random-1g", inputs / "text-1g", inputs / "r256m"
    generate_random(random_1g, GiB, 1)
    generate_text(text_1g, GiB)
    generate_random(base_256m, 256 * MiB, 2)
    tree = inputs / "tree"
    generate_tree(tree, args.files)

    data = work / "drive"
    drives = [data] + [work / f"drive-round{n}" for n in range(2, args.rounds + 1)]
    remove_drives(drives)  # left by an interrupted run
    try:
        large = [("1 GiB random", random_1g), ("1 GiB text", text_1g)]
        rows = bench_large_files(data, work, large, args.rounds)
        rows.append(bench_small_files(data, work, tree, args.files))
        rows.append(bench_reimport(data, [random_1g, text_1g, tree]))
        rows.append(bench_insert(data, base_256m, inputs / "r256m-edited"))
        print("\nsummary\n" + "\n".join(rows))
    finally:
        remove_drives(drives)


def remove_drives(drives: list[Path]) -> None:
    """Delete the drives a run made. At the end of a run, not at the start of the
    next: ext4 without a journal (this machine's disk) skips inodes freed within the
    last minute or more when it makes new files (the kernel's ``recently_deleted``),
    and scanning past a deleted drive's files made the next 1 GiB import about a
    fifth slower (median 460 against 600 MB/s in six runs each)."""
    for drive in drives:
        shutil.rmtree(drive, ignore_errors=True)


if __name__ == "__main__":
    main()
