"""WebDAV benchmark: drivegate against two anchors, measured in the same run.

The servers, each started fresh on a free 127.0.0.1 port with its data under
``--workdir`` (default /var/tmp/dg-bench; inputs are generated once and
reused, server data is deleted after each server's turn):

- **drivegate**: ``drivegate serve`` on a fresh SQLite + local chunk dir,
  one user created with ``drivegate user add``, HTTP Basic auth;
- **rclone**: ``rclone serve webdav DIR`` (Debian's rclone, anonymous);
- **wsgidav**: WsgiDAV's own FilesystemProvider on cheroot, with its
  in-memory lock and property managers on, anonymous, default block size
  (8 KiB reads on GET).

What is measured, the same way and on the same files for each server:

1. PROPFIND Depth: 1 on a folder of ``--files`` (10,000) small files, put
   there in the server's natural way (``drivegate import``; ``cp -r`` into
   the served directory for the others). Only the PROPFIND is timed (request
   sent to last byte read), best of 3; the answer must list files + 1
   entries. Done twice: with an ``allprop`` body and with the named
   properties rclone's client asks for.
2. ``--puts`` (1,000) PUTs of 4 KiB random files, one after the other.
   These and the PROPFINDs go through one httpx client on one keep-alive
   connection.
3. PUT then GET of a ``--size`` (1 GiB) random file (generated once,
   incompressible, read from the page cache), with a check of the length
   and of three ranges of what comes back; ``--transfers`` (3) rounds, each
   with a file of its own (so that drivegate never dedups one against
   another), and the median round is reported (each round is printed).
   The GET runs twice: right after the PUT (drivegate writes chunks with
   O_DIRECT, so they come from the disk, while the others' file is still
   in the page cache), then after reading the server's stored files into
   the page cache (like for like; the GET target applies to this one).
   These use curl (``-T`` streams the file; curl's own ``time_total``):
   httpx tops out at about 1.1 GB/s reading a body here, where curl reads
   rclone's GET at ~2 GB/s, and the client must not be what is measured.
4. The server's peak RSS (VmRSS of the process and any children, sampled
   every 10 ms) during the first big round and during a PUT + GET of a file
   16 times smaller (but at least 64 MiB or half of ``--size``) just before
   it, which shows whether memory grows with file size; the peak over all
   rounds, which shows what more transfers add; then
   during the PROPFINDs. The transfers run first, on the fresh server, so
   what the listings leave allocated does not count against them.

It prints one table per operation: each server's figure, the figure quoted
in the issue for the anchors (taken earlier on this machine, for judging how
busy it is now), and drivegate's ratio to each anchor with the target; then
the GET bound: the fastest any server that hashes every byte it sends could
go here (SHA-256 of the file plus curl's own CPU on rclone's GET, spread
over the cores, nothing else), as a ratio to rclone's GET.

Targets (from the issue): GET >= 1.0x rclone; PUT >= 1.0x WsgiDAV FS;
PROPFIND 10k time <= 1.0x rclone's; drivegate's RSS flat (no growth with
file size; here: peak at --size at most 16 MB above the peak at --size/16).

Run (the full run takes a few minutes and ~8 GiB of disk):

    .venv/bin/python bench/dav_bench.py
    .venv/bin/python bench/dav_bench.py --size 64MiB --files 1000   # quick check
    .venv/bin/python bench/dav_bench.py --only drivegate --py-spy /tmp/prof

``--py-spy DIR`` records drivegate's server with py-spy (``pip install
py-spy`` into the venv) during each phase: folded stacks (wall time, idle
included) in DIR, and the top frames printed. Timings taken under the
profiler are perturbed.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import random
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import NamedTuple

import benchkit
import httpx
from benchkit import ROOT, Metric, MiB, drivegate_env, generate_random, report, stop
from humanfriendly import format_size, parse_size
from lxml import etree

GiB = 1024**3
SERVERS = ("drivegate", "rclone", "wsgidav")
ANCHORS = ("rclone", "wsgidav")
USER, PASSWORD = "bench", "bench-password-for-dav"
RSS_FLAT_SLACK = 16e6  # bytes of peak RSS growth still called flat

ALLPROP = b'<?xml version="1.0" ?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>'
# What rclone's webdav backend sends when it lists a folder.
NAMED_PROPS = (
    b'<?xml version="1.0" encoding="utf-8" ?>'
    b'<d:propfind xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns" '
    b'xmlns:nc="http://nextcloud.org/ns"><d:prop><d:displayname /><d:getlastmodified />'
    b"<d:getcontentlength /><d:resourcetype /><d:getcontenttype /><oc:checksums />"
    b"<oc:permissions /></d:prop></d:propfind>"
)

# WsgiDAV's FilesystemProvider as the issue's anchor: lock and property managers on
# (in memory), anonymous, default block size. Prints its URL like drivegate does.
_WSGIDAV_SERVER = """
import sys
from cheroot import wsgi
from wsgidav.wsgidav_app import WsgiDAVApp
app = WsgiDAVApp({
    "provider_mapping": {"/": sys.argv[1]},
    "simple_dc": {"user_mapping": {"*": True}},
    "http_authenticator": {"accept_basic": True, "accept_digest": False,
                           "default_to_digest": False},
    "lock_storage": True,
    "property_manager": True,
    "verbose": 1,
    "logging": {"enable": False},
})
server = wsgi.Server(("127.0.0.1", 0), app, numthreads=16)
server.prepare()
print("wsgidav serving http://%s:%d/" % server.bind_addr[:2], flush=True)
server.serve()
"""

# Figures quoted in the issue, measured earlier on this machine (for judging load).
ISSUE_FIGURES = {
    ("get", "rclone"): "1500-2000",
    ("get", "wsgidav"): "~700",
    ("put", "rclone"): "~150",
    ("put", "wsgidav"): "200-300",
    ("propfind_allprop", "rclone"): "~0.2",
    ("propfind_allprop", "wsgidav"): "~1.5",
}


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    data: Path
    auth: httpx.BasicAuth | None = None


# inputs ------------------------------------------------------------------


def generate_folder(folder: Path, count: int) -> None:
    """A flat folder of ``count`` small text files (100 B to 4 KiB)."""
    if folder.is_dir() and sum(1 for _ in folder.iterdir()) == count:
        return
    shutil.rmtree(folder, ignore_errors=True)
    partial = folder.with_suffix(".part")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    rng = random.Random(17)
    for i in range(count):
        text = f"file {i}\n" + "".join(rng.choices("abcdefgh \n", k=rng.randint(100, 4000)))
        (partial / f"f{i:05d}.txt").write_text(text)
    partial.rename(folder)


def generate_inputs(
    inputs: Path, size: int, transfers: int, files: int
) -> tuple[list[Path], Path, Path]:
    """The big files (one per round), the small file and the PROPFIND folder."""
    inputs.mkdir(parents=True, exist_ok=True)
    print(f"inputs in {inputs} (generated once, then reused)…", flush=True)
    bigs = []  # round 1 keeps the file (and seed) of the single round earlier versions ran
    for n in range(1, transfers + 1):
        bigs.append(inputs / (f"random-{size}" + (f"-{n}" if n > 1 else "")))
        generate_random(bigs[-1], size, 3 if n == 1 else 30 + n)
    # The smaller transfer must fill drivegate's upload pipeline too (a few batches of
    # ~1 MiB chunks in flight), or the comparison shows the pipeline, not a leak.
    small_size = max(size // 16, min(64 * MiB, size // 2), MiB)
    small = inputs / f"random-{small_size}"
    generate_random(small, small_size, 4)
    folder = inputs / f"folder-{files}"
    generate_folder(folder, files)
    return bigs, small, folder


def warm(path: Path) -> None:
    """Read a file once so that every server is fed from the page cache."""
    with open(path, "rb") as handle:
        while handle.read(64 * MiB):
            pass


def warm_tree(root: Path, min_size: int = 64 * 1024) -> None:
    """Read every file of ``root`` of at least ``min_size`` bytes into the page cache."""
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder, name)
            with contextlib.suppress(OSError):
                if path.is_file() and path.stat().st_size >= min_size:
                    warm(path)


# processes ---------------------------------------------------------------


@contextlib.contextmanager
def started(
    cmd: list[str], log: Path, ready: str, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """Run ``cmd`` (output to ``log``) until its log shows the URL matched by ``ready``."""
    with open(log, "wb") as out:
        process = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=log.parent,
            start_new_session=True,  # we stop it, and its children, as one group
        )
    try:
        pattern = re.compile(ready)
        deadline = time.monotonic() + 60
        while True:
            found = pattern.search(log.read_text(errors="replace"))
            if found:
                url = found.group(1).rstrip("/") + "/"
                break
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{cmd[0]} did not start (exit {process.poll()}):\n{tail}")
            time.sleep(0.05)
        yield process, url
    finally:
        stop(process)


@contextlib.contextmanager
def drivegate_server(data: Path, folder: Path) -> Iterator[Server]:
    cli = [sys.executable, "-m", "drivegate"]
    env = drivegate_env()
    data.mkdir(parents=True)
    subprocess.run(
        [*cli, "user", "add", USER, "--password-stdin", "--data-dir", str(data)],
        input=PASSWORD.encode() + b"\n",
        env=env,
        cwd=data,
        check=True,
        capture_output=True,
    )
    start = time.perf_counter()
    subprocess.run(
        [*cli, "import", str(folder), "/many", "--user", USER, "--data-dir", str(data)],
        env=env,
        cwd=data,
        check=True,
        capture_output=True,
    )
    print(f"  drivegate import of the folder: {time.perf_counter() - start:.1f} s", flush=True)
    log = data.parent / "drivegate.log"
    log.unlink(missing_ok=True)
    with benchkit.serving("--host", "127.0.0.1", "--data-dir", str(data), env=env,
                          cwd=data.parent, log=log, own_session=True) as server:  # fmt: skip
        yield Server("drivegate", server.url, server.process, data, httpx.BasicAuth(USER, PASSWORD))


def copy_folder(folder: Path, root: Path) -> None:
    root.mkdir(parents=True)
    subprocess.run(["cp", "-r", str(folder), str(root / "many")], check=True)


@contextlib.contextmanager
def rclone_server(data: Path, folder: Path) -> Iterator[Server]:
    copy_folder(folder, data)
    env = {**os.environ, "RCLONE_CONFIG": str(data.parent / "rclone-none.conf")}
    cmd = ["rclone", "serve", "webdav", str(data), "--addr", "127.0.0.1:0"]
    ready = r"Server started on \[?(http://[^\s\]]+)"
    with started(cmd, data.parent / "rclone.log", ready, env) as (process, url):
        yield Server("rclone", url, process, data)


@contextlib.contextmanager
def wsgidav_server(data: Path, folder: Path) -> Iterator[Server]:
    copy_folder(folder, data)
    cmd = [sys.executable, "-c", _WSGIDAV_SERVER, str(data)]
    with started(cmd, data.parent / "wsgidav.log", r"wsgidav serving (\S+)") as (process, url):
        yield Server("wsgidav", url, process, data)


STARTERS: dict[str, Callable[[Path, Path], contextlib.AbstractContextManager[Server]]] = {
    "drivegate": drivegate_server,
    "rclone": rclone_server,
    "wsgidav": wsgidav_server,
}


# memory ------------------------------------------------------------------


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as handle:
                    todo.extend(int(child) for child in handle.read().split())
    return found


def _status_bytes(pid: int, field: str) -> int:
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def tree_rss(pid: int) -> int:
    """VmRSS of a process and all its descendants, in bytes."""
    return sum(_status_bytes(p, "VmRSS") for p in _descendants(pid))


class PeakRss:
    """Samples ``tree_rss`` every 10 ms while the ``with`` block runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = tree_rss(pid)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._done.wait(0.01):
            self.peak = max(self.peak, tree_rss(self.pid))

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, tree_rss(self.pid))


# profiling -----------------------------------------------------------------


@contextlib.contextmanager
def py_spy(pid: int, out: Path | None) -> Iterator[None]:
    """Record ``pid`` with py-spy (folded stacks in ``out``) while the block runs."""
    if out is None:
        yield
        return
    binary = Path(sys.executable).parent / "py-spy"
    cmd = [str(binary), "record", "--pid", str(pid), "--rate", "200", "--format", "raw", "--idle"]
    process = subprocess.Popen(
        [*cmd, "--output", str(out), "--nonblocking"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    time.sleep(1.0)  # let it attach
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGINT)  # py-spy writes its output on SIGINT
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            stop(process)


def summarize_profile(folded: Path, top: int = 12) -> None:
    """The busiest functions of the server's profile.

    py-spy records with ``--idle``, so these are shares of wall time, waits
    (fsync, locks, sockets) included; only stacks in drivegate's code count,
    which leaves out idle workers, and the accept loop is left out too."""
    ours = ("(core/", "(davserver/")

    def busy(frames: list[str]) -> bool:
        in_ours = any(o in f for f in frames for o in ours)
        return in_ours and not any(f.startswith("serve (davserver/cli.py") for f in frames)

    benchkit.summarize_profile(
        folded, ours=ours, top=top, what="samples in drivegate's code", keep=busy
    )


# the operations --------------------------------------------------------------


def expect(response: httpx.Response, *codes: int) -> None:
    if response.status_code not in codes:
        raise RuntimeError(
            f"{response.request.method} {response.request.url}: "
            f"{response.status_code} {response.text[:300]}"
        )


class Curled(NamedTuple):
    status: int
    seconds: float
    received: int
    cpu: float
    """CPU seconds curl itself used (user + system)."""


def curl(server: Server, *args: str) -> Curled:
    """Run curl against ``server``, its output to /dev/null."""
    auth = ["--basic", "--user", f"{USER}:{PASSWORD}"] if server.auth is not None else []
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        ["curl", "--silent", "--show-error", *auth, "--output", "/dev/null",
         "--write-out", "%{http_code} %{time_total} %{size_download}", *args],
        check=True, capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return Curled(int(out[0]), float(out[1]), int(out[2]), cpu)


def timed_put(server: Server, name: str, path: Path) -> float:
    """Seconds for curl to PUT ``path`` (streamed from the file, no Expect: 100-continue)."""
    put = curl(server, "--header", "Expect:", "--upload-file", str(path), server.url + name)
    if put.status not in (200, 201, 204):
        raise RuntimeError(f"{server.name}: PUT {name} answered {put.status}")
    return put.seconds


def timed_get(server: Server, client: httpx.Client, name: str, path: Path) -> Curled:
    """curl's GET of ``name`` into /dev/null; checks length and three ranges."""
    get = curl(server, server.url + name)
    if get.status != 200 or get.received != path.stat().st_size:
        raise RuntimeError(
            f"{server.name}: GET {name} answered {get.status} with {get.received} bytes"
        )
    check_ranges(client, name, path)
    return get


def check_ranges(client: httpx.Client, url: str, path: Path) -> None:
    """Compare the start, middle and end of the served file with the original."""
    size = path.stat().st_size
    length = min(64 * 1024, size)
    with open(path, "rb") as handle:
        for offset in (0, size // 2 - length // 2, size - length):
            handle.seek(offset)
            want = handle.read(length)
            headers = {"Range": f"bytes={offset}-{offset + length - 1}"}
            response = client.get(url, headers=headers)
            expect(response, 206)
            if response.content != want:
                raise RuntimeError(f"GET {url}: wrong bytes at offset {offset}")


def propfind(client: httpx.Client, url: str, body: bytes, expected: int, rounds: int) -> float:
    """Best time of ``rounds`` Depth: 1 PROPFINDs; checks the number of entries."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        response = client.request(
            "PROPFIND",
            url,
            content=body,
            headers={"Depth": "1", "Content-Type": 'application/xml; charset="utf-8"'},
        )
        seconds = time.perf_counter() - start
        expect(response, 207)
        entries = len(etree.fromstring(response.content).findall("{DAV:}response"))
        if entries != expected:
            raise RuntimeError(f"PROPFIND {url}: {entries} entries, expected {expected}")
        best = min(best, seconds)
    return best


def small_puts(client: httpx.Client, base: str, count: int, size: int) -> float:
    """Seconds for ``count`` PUTs of ``size`` random bytes into a new folder."""
    expect(client.request("MKCOL", base), 201)
    rng = random.Random(23)
    bodies = [rng.randbytes(size) for _ in range(count)]
    start = time.perf_counter()
    for i, body in enumerate(bodies):
        expect(client.put(f"{base}s{i:05d}.bin", content=body), 200, 201, 204)
    return time.perf_counter() - start


def bench_server(
    server: Server, args: argparse.Namespace, bigs: list[Path], small: Path, profile: Path | None
) -> dict[str, float]:
    """Transfers first (on a fresh server, so their RSS is theirs), then the small
    PUTs, then the listings. The big transfer runs once per file in ``bigs``
    (different random content each, so no round dedups against an earlier one);
    the median round counts."""
    results: dict[str, float] = {}
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    pid = server.process.pid

    def spy(phase: str) -> contextlib.AbstractContextManager[None]:
        return py_spy(pid, profile / f"{server.name}-{phase}.txt" if profile else None)

    with httpx.Client(base_url=server.url, auth=server.auth, timeout=600, limits=limits) as client:
        expect(client.request("OPTIONS", "/"), 200)
        results["rss_idle"] = tree_rss(pid)
        rounds: dict[str, list[float]] = {
            "put": [], "get_after_put": [], "get": [], "get_client_cpu": []
        }  # fmt: skip
        for label, path in [("small", small)] + [("big", big) for big in bigs]:
            warm(path)
            subprocess.run(["sync"], check=True)  # no round pays for an earlier one's dirty pages
            with spy(f"put-{label}"), PeakRss(pid) as peak_put:
                put_s = timed_put(server, path.name, path)
            with spy(f"get-{label}"), PeakRss(pid) as peak_get:
                get_s = timed_get(server, client, path.name, path).seconds  # as the PUT left it
                warm_tree(server.data)  # then like for like: stored data in the page cache
                warm_get = timed_get(server, client, path.name, path)
                warm_get_s = warm_get.seconds
            round_peak = max(peak_put.peak, peak_get.peak)
            # Growth with file size compares the first big round with the small one
            # just before it; later rounds show what more transfers add.
            results.setdefault(f"rss_{label}", round_peak)
            results["rss_rounds"] = max(results.get("rss_rounds", 0), round_peak)
            size = path.stat().st_size / 1e6
            print(f"  {path.stat().st_size // MiB} MiB: peak RSS {peak_put.peak / 1e6:.0f} MB "
                  f"during PUT, {peak_get.peak / 1e6:.0f} MB during GETs; PUT {size / put_s:.0f} "
                  f"MB/s, GET {size / get_s:.0f} MB/s right after, {size / warm_get_s:.0f} MB/s "
                  "from the page cache", flush=True)  # fmt: skip
            if label == "big":
                rounds["put"].append(size / put_s)
                rounds["get_after_put"].append(size / get_s)
                rounds["get"].append(size / warm_get_s)
                rounds["get_client_cpu"].append(warm_get.cpu)
        for key, speeds in rounds.items():
            results[key] = statistics.median(speeds)
        results["rss_growth"] = results["rss_big"] - results["rss_small"]

        with spy("small-puts"):
            seconds = small_puts(client, "/small/", args.puts, args.put_size)
        results["small_puts"] = args.puts / seconds
        print(f"  {args.puts} PUTs of {args.put_size} B: {seconds:.2f} s", flush=True)

        for key, body in (("propfind_allprop", ALLPROP), ("propfind_named", NAMED_PROPS)):
            with spy(key), PeakRss(pid) as peak:
                results[key] = propfind(client, "/many/", body, args.files + 1, args.rounds)
            results["rss_propfind"] = max(results.get("rss_propfind", 0), peak.peak)
            print(f"  {key}: {results[key]:.3f} s", flush=True)
        results["rss_hwm"] = _status_bytes(pid, "VmHWM")
    return results


def print_get_bound(path: Path, rclone: dict[str, float]) -> None:
    """What a server that hashes every byte it sends can reach here at best: SHA-256
    of the file (timed in-process, one thread) plus the CPU curl itself used on
    rclone's GET, spread perfectly over all cores, with nothing else to do."""
    warm(path)
    digest = hashlib.sha256()
    start = time.perf_counter()
    with open(path, "rb") as handle:
        while block := handle.read(4 * MiB):
            digest.update(block)
    sha_seconds = time.perf_counter() - start
    cores = os.cpu_count() or 1
    bound = path.stat().st_size / ((sha_seconds + rclone["get_client_cpu"]) / cores) / 1e6
    print(f"\nGET bound for a server that verifies what it sends: SHA-256 of the file "
          f"{sha_seconds:.2f} s + curl's own CPU {rclone['get_client_cpu']:.2f} s on "
          f"{cores} cores, nothing else: at most {bound:.0f} MB/s = "
          f"{bound / rclone['get']:.2f}x rclone's GET")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/var/tmp/dg-bench"))
    parser.add_argument("--size", type=lambda s: int(parse_size(s, binary=True)), default=GiB,
                        help="size of the big PUT/GET file (default 1GiB)")  # fmt: skip
    parser.add_argument("--files", type=int, default=10_000, help="files in the PROPFIND folder")
    parser.add_argument("--puts", type=int, default=1000, help="number of small PUTs")
    parser.add_argument("--put-size", type=int, default=4096, help="bytes per small PUT")
    parser.add_argument("--rounds", type=int, default=3, help="PROPFINDs per server (best kept)")
    parser.add_argument("--transfers", type=int, default=3,
                        help="big PUT + GET rounds per server, each with its own file "
                             "(median kept)")  # fmt: skip
    parser.add_argument("--only", default=",".join(SERVERS),
                        help="comma-separated servers to run (default: all)")  # fmt: skip
    parser.add_argument("--py-spy", type=Path, metavar="DIR",
                        help="profile drivegate with py-spy into DIR (perturbs times)")  # fmt: skip
    args = parser.parse_args()
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    if unknown := set(chosen) - set(SERVERS):
        parser.error(f"unknown servers {sorted(unknown)}; choose from {', '.join(SERVERS)}")
    work: Path = args.workdir.resolve()
    if work.is_relative_to(ROOT):
        parser.error("--workdir must be outside the repository")
    if "rclone" in chosen and shutil.which("rclone") is None:
        parser.error("rclone is not installed (Debian package rclone)")
    if args.py_spy is not None and not (Path(sys.executable).parent / "py-spy").exists():
        parser.error("--py-spy needs py-spy in the venv: .venv/bin/pip install py-spy")
    if args.py_spy is not None:
        args.py_spy.mkdir(parents=True, exist_ok=True)

    def interrupted(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt  # stop the servers on the way out (also when started with &)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupted)

    inputs = work / "dav-inputs"
    bigs, small, folder = generate_inputs(inputs, args.size, args.transfers, args.files)
    results: dict[str, dict[str, float]] = {}
    servers_dir = work / "dav-servers"
    try:
        for name in chosen:
            shutil.rmtree(servers_dir, ignore_errors=True)
            servers_dir.mkdir(parents=True)
            print(f"\n{name}:", flush=True)
            with STARTERS[name](servers_dir / name, folder) as server:
                print(f"  serving {server.url} (pid {server.process.pid})", flush=True)
                profile = args.py_spy if name == "drivegate" else None
                results[name] = bench_server(server, args, bigs, small, profile)
    except KeyboardInterrupt:
        print("\ninterrupted: servers stopped", file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        shutil.rmtree(servers_dir, ignore_errors=True)

    print_results(args, results, bigs[0], small)


def print_results(
    args: argparse.Namespace, results: dict[str, dict[str, float]], big: Path, small: Path
) -> None:
    """The tables, the GET bound and the verdicts."""
    size = format_size(args.size, binary=True)
    small_text = format_size(small.stat().st_size, binary=True)
    median = f"median of {args.transfers}"
    listing = f"PROPFIND Depth:1, {args.files} files, best of {args.rounds}"
    metrics = [
        Metric("get", f"GET {size}, stored data in the page cache, {median}", "MB/s", True, 1.0),
        Metric("get_after_put", f"GET {size} right after its PUT, {median}", "MB/s", True, 1.0),
        Metric("put", f"PUT {size}, {median}", "MB/s", True, 1.0, anchor="wsgidav"),
        Metric("propfind_allprop", f"{listing}, allprop", "s", False, 1.0, digits=3),
        Metric("propfind_named", f"{listing}, rclone's props", "s", False, 1.0, digits=3),
        Metric("small_puts", f"{args.puts} PUTs of {args.put_size} B", "files/s", True),
        Metric("rss_idle", "server RSS after start", "MB", False),
        Metric("rss_small", f"server peak RSS, PUT + GET of {small_text}", "MB", False),
        Metric("rss_big", f"server peak RSS, PUT + GET of {size}", "MB", False),
        Metric("rss_growth", f"peak RSS growth, {small_text} to {size}", "MB", False, ratios=False),
        Metric("rss_rounds", f"server peak RSS, all {args.transfers + 1} transfers", "MB", False),
        Metric("rss_propfind", f"server peak RSS, PROPFIND of {args.files}", "MB", False),
        Metric("rss_hwm", "server VmHWM at the end (lifetime peak)", "MB", False),
    ]
    print(f"\nresults (MB = 10^6 bytes; machine load average now: {os.getloadavg()[0]:.2f})")
    report(metrics, results, SERVERS, ANCHORS, ISSUE_FIGURES)
    if "rclone" in results:
        print_get_bound(big, results["rclone"])
    growth = results.get("drivegate", {}).get("rss_growth")
    if growth is not None:
        verdict = "met" if growth <= RSS_FLAT_SLACK else "MISSED"
        print(f"\ndrivegate RSS flat (growth <= {RSS_FLAT_SLACK / 1e6:.0f} MB): {verdict}")
    if args.py_spy is not None and "drivegate" in results:
        print("\npy-spy profiles of drivegate serve:")
        for folded in sorted(args.py_spy.glob("drivegate-*.txt")):
            summarize_profile(folded)


if __name__ == "__main__":
    main()
