"""What the mount benchmarks share: one ``drivegate serve`` on a fresh data dir,
mounting it with drivegate, ``rclone mount`` or davfs2 (each on a fresh cache
dir), unmounting cleanly, watchdogs and dropping the page cache (the report
table is ``benchkit.report``).

Used by ``mount_bench.py`` (reads) and ``write_bench.py`` (writes). Every
mount is unmounted and every process stopped on the way out: the context
managers clean up with signals blocked, and ``clean_leftovers`` removes what
a run killed hard left behind.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchkit import ROOT, MiB, drivegate_env, start_serve, stop

CLIENTS = ("drivegate", "rclone", "davfs2")
ANCHORS = ("rclone", "davfs2")
USER, PASSWORD = "bench", "bench-password-for-mount"
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
TOOLS = {"drivegate": "fusermount3", "rclone": "rclone", "davfs2": "mount.davfs"}


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    data: Path
    log: Path


@dataclass
class Place:
    """What a mount needs: scratch dir, log dir, the server, each client's cache limit."""

    work: Path
    logs: Path
    server: Server
    cache_size: int  # bytes
    write_back: float | None = None  # seconds from close to upload; None: each client's default


@dataclass
class Mounted:
    """A live mount: where, and the process that answers it (watchdog, profiler)."""

    client: str
    path: Path
    cache: Path
    pid: int | None
    seconds: float  # from the mount command to a mount that answers


# the page cache ----------------------------------------------------------------


def read_into_page_cache(root: Path) -> None:
    """Read every file below ``root`` once (the server's data, before each session)."""
    buffer = bytearray(8 * MiB)
    for folder, _, names in os.walk(root):
        for name in names:
            with contextlib.suppress(OSError), open(Path(folder, name), "rb", buffering=0) as f:
                while f.readinto(buffer):
                    pass


def drop_caches() -> bool:
    """``sync; echo 3 > /proc/sys/vm/drop_caches``; False when not allowed (not root)."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as knob:
            knob.write("3\n")
    except OSError:
        return False
    return True


# processes -------------------------------------------------------------------


@contextlib.contextmanager
def signals_blocked() -> Iterator[None]:
    """Let cleanup finish: a Ctrl-C arriving meanwhile is delivered afterwards."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def raise_on_signals() -> None:
    """SIGINT, SIGTERM and SIGHUP raise KeyboardInterrupt: unmount and stop on the way out."""

    def interrupted(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    for sig in SIGNALS:
        signal.signal(sig, interrupted)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as proc:
            return proc.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def end_process(pid: int | None, grace: float = 30.0) -> None:
    """Wait for a process we started to exit; SIGTERM, then SIGKILL, if it lingers."""
    if pid is None:
        return
    for sig, wait in ((None, grace), (signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        if sig is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        if wait_gone(pid, wait):
            return


def run_quiet(cmd: list[str], *, stdin: str | None = None, cwd: Path | None = None,
              env: dict[str, str] | None = None, timeout: float = 600) -> str:  # fmt: skip
    done = subprocess.run(cmd, input=stdin, capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=timeout, check=False)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])}… failed ({done.returncode}): "
                           f"{(done.stderr or done.stdout).strip()[-1500:]}")  # fmt: skip
    return done.stdout


def drivegate_cli() -> list[str]:
    return [sys.executable, "-m", "drivegate"]


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of a process (all its threads) so far."""
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as proc:
            fields = proc.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def disk_usage(root: Path) -> int:
    """Bytes allocated below ``root`` (what a client keeps in its cache dir)."""
    total = 0
    for folder, _, names in os.walk(root):
        for name in names:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(folder, name)).st_blocks * 512
    return total


# mounts --------------------------------------------------------------------------


def mounted_paths() -> set[str]:
    """Mount points from /proc/self/mountinfo (no syscall on a mount that may hang)."""
    with open("/proc/self/mountinfo") as mounts:
        return {line.split()[4].replace("\\040", " ").replace("\\134", "\\") for line in mounts}


def is_mounted(path: Path) -> bool:
    return str(path) in mounted_paths()


def unmount(path: Path, first: list[str], timeout: float = 120) -> None:
    """``first`` (e.g. ``fusermount3 -u``), then lazy unmounts, until ``path`` is no mount."""
    for cmd in (first, ["fusermount3", "-uz"], ["umount", "-l"]):
        if not is_mounted(path):
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            subprocess.run([*cmd, str(path)], capture_output=True, timeout=timeout, check=False,
                           env=drivegate_env())  # fmt: skip
    if is_mounted(path):
        print(f"  WARNING: {path} is still mounted", file=sys.stderr)


@contextlib.contextmanager
def cleaning_up(work: Path) -> Iterator[None]:
    """Around a benchmark's run: Ctrl-C exits 130, and what the run left in ``work``
    (mounts, processes, scratch) goes whatever happened."""
    try:
        yield
    except KeyboardInterrupt:
        print("\ninterrupted: everything unmounted and stopped", file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        with signals_blocked():
            clean_leftovers(work)


def clean_leftovers(work: Path) -> None:
    """Mounts left below our scratch dir by an earlier run that was killed hard."""
    for mountpoint in sorted(mounted_paths()):
        if Path(mountpoint).is_relative_to(work):
            print(f"unmounting a leftover mount {mountpoint}", flush=True)
            unmount(Path(mountpoint), ["fusermount3", "-u"])
    if any(Path(m).is_relative_to(work) for m in mounted_paths()):
        print(f"WARNING: a mount below {work} remains: not deleting it", file=sys.stderr)
        return
    shutil.rmtree(work, ignore_errors=True)


def check_clients(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    """What every mount benchmark refuses before anything is mounted (``--only``,
    ``--size``, ``--files``, ``--workdir``, root, the tools); the clients to run."""
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    if unknown := set(chosen) - set(CLIENTS):
        parser.error(f"unknown clients {sorted(unknown)}; choose from {', '.join(CLIENTS)}")
    if args.size < 2 * MiB or args.files < 1:
        parser.error("--size must be at least 2MiB and --files at least 1")
    args.workdir = args.workdir.resolve()
    if args.workdir.is_relative_to(ROOT):
        parser.error("--workdir must be outside the repository")
    if os.geteuid() != 0:
        parser.error("run as root (FUSE mounts, davfs2, drop_caches)")
    for problem in missing_tools(chosen):
        parser.error(problem)
    return chosen


def missing_tools(clients: Sequence[str]) -> list[str]:
    """What the chosen clients need and this machine lacks, as messages."""
    return [f"{name} needs {TOOLS[name]}, which is not installed"
            for name in clients if shutil.which(TOOLS[name]) is None]  # fmt: skip


@contextlib.contextmanager
def drivegate_server(
    work: Path,
    logs: Path,
    imports: Sequence[tuple[Path, str]],
    *,
    request_log: bool = False,
) -> Iterator[Server]:
    """A fresh drive with ``imports`` (local folder, drive path) imported, served on a
    free loopback port; its output in ``logs``/server.log, with one line per request
    if ``request_log`` (``drivegate -v``)."""
    data = work / "server-data"
    data.mkdir(parents=True)
    env, cli = drivegate_env(), drivegate_cli()
    run_quiet([*cli, "user", "add", USER, "--password-stdin", "--data-dir", str(data)],
              stdin=PASSWORD + "\n", cwd=work, env=env)  # fmt: skip
    for src, dest in imports:
        start = time.perf_counter()
        run_quiet([*cli, "import", str(src), dest, "--user", USER, "--data-dir", str(data)],
                  cwd=work, env=env, timeout=3600)  # fmt: skip
        print(f"  drivegate import {src.name} -> {dest}: {time.perf_counter() - start:.1f} s",
              flush=True)  # fmt: skip
    log = logs / "server.log"
    log.unlink(missing_ok=True)  # this run's requests only
    verbose = ["-v"] if request_log else []
    server = start_serve("--host", "127.0.0.1", "--data-dir", str(data), env=env, cwd=work,
                         log=log, cli_options=verbose, own_session=True)  # fmt: skip
    try:
        yield Server(server.url, server.process, data, log)
    finally:
        with signals_blocked():
            server.stop()


def wait_mounted(path: Path, process: subprocess.Popen[bytes] | None, log: Path) -> None:
    deadline = time.monotonic() + 120
    while not is_mounted(path):
        if (process is not None and process.poll() is not None) or time.monotonic() > deadline:
            tail = log.read_text("utf-8", "replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{path} did not get mounted:\n{tail}")
        time.sleep(0.02)
    os.stat(path)  # answers: the mount is ready


def _keep_log(src: Path, dest: Path) -> None:
    with contextlib.suppress(OSError):
        shutil.copyfile(src, dest)


@contextlib.contextmanager
def mount_drivegate(place: Place, path: Path, cache: Path, label: str) -> Iterator[Mounted]:
    """``drivegate mount`` in the background; unmounted with ``drivegate umount``, which
    first waits for pending uploads."""
    cmd = [*drivegate_cli(), "mount", place.server.url, str(path), "--user", USER,
           "--password-stdin", "--cache-dir", str(cache),
           "--cache-size", str(place.cache_size)]  # fmt: skip
    if place.write_back is not None:
        cmd += ["--upload-delay", str(place.write_back)]
    pid = None
    try:
        start = time.perf_counter()
        run_quiet(cmd, stdin=PASSWORD + "\n", cwd=place.work, env=drivegate_env(), timeout=300)
        seconds = time.perf_counter() - start
        pid = int(json.loads(os.getxattr(path, "user.drivegate.mount"))["pid"])
        yield Mounted("drivegate", path, cache, pid, seconds)
    finally:
        with signals_blocked():
            unmount(path, [*drivegate_cli(), "umount"], timeout=600)
            end_process(pid)
            _keep_log(cache / "mount.log", place.logs / f"drivegate-{label}.log")


@contextlib.contextmanager
def mount_rclone(place: Place, path: Path, cache: Path, label: str) -> Iterator[Mounted]:
    """``rclone mount --vfs-cache-mode full``, webdav backend (vendor other), rclone's
    defaults otherwise (write-back 5 s after close)."""
    obscured = run_quiet(["rclone", "obscure", PASSWORD]).strip()
    env = {
        **os.environ,
        "RCLONE_CONFIG": str(place.work / "rclone.conf"),  # none: the remote is in the env
        "RCLONE_CONFIG_DG_TYPE": "webdav",
        "RCLONE_CONFIG_DG_URL": place.server.url,
        "RCLONE_CONFIG_DG_VENDOR": "other",
        "RCLONE_CONFIG_DG_USER": USER,
        "RCLONE_CONFIG_DG_PASS": obscured,
    }
    cmd = ["rclone", "mount", "dg:", str(path), "--vfs-cache-mode", "full",
           "--cache-dir", str(cache)]  # fmt: skip
    if place.write_back is not None:
        cmd += ["--vfs-write-back", f"{place.write_back}s"]
    log = place.logs / f"rclone-{label}.log"
    with open(log, "wb") as out:
        start = time.perf_counter()
        process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=subprocess.STDOUT, env=env, cwd=place.work,
                                   start_new_session=True)  # fmt: skip
    try:
        wait_mounted(path, process, log)
        yield Mounted("rclone", path, cache, process.pid, time.perf_counter() - start)
    finally:
        with signals_blocked():
            unmount(path, ["fusermount3", "-u"])
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                stop(process)


def davfs2_pid(path: Path) -> int | None:
    """The mount.davfs daemon of ``path``, from its pid file."""
    name = str(path).strip("/").replace("/", "-") + ".pid"
    with contextlib.suppress(OSError, ValueError):
        return int(Path("/var/run/mount.davfs", name).read_text().split()[0])
    return None


@contextlib.contextmanager
def mount_davfs2(place: Place, path: Path, cache: Path, label: str) -> Iterator[Mounted]:
    """davfs2 with a private config: no locks, its cache below ``cache``, ``buf_size
    1024`` (with the default 16 KiB every readdir fails with EINVAL on this kernel).
    ``umount`` waits for the daemon to upload what is dirty."""
    # The daemon runs as the davfs2 user: it needs to create its cache below `cache`.
    cache.mkdir(parents=True)
    shutil.chown(cache, "root", "davfs2")
    cache.chmod(0o775)
    conf = place.work / "davfs2.conf"
    conf.write_text(
        "use_locks 0\nask_auth 0\n"
        f"cache_dir {cache}\n"
        f"cache_size {place.cache_size // MiB}\n"
        "buf_size 1024\n"  # KiB; the default 16 makes every readdir fail (EINVAL) here
        + ("" if place.write_back is None else f"delay_upload {round(place.write_back)}\n")
    )
    conf.chmod(0o600)
    cmd = ["mount", "-t", "davfs", "-o", f"username={USER},conf={conf}", place.server.url,
           str(path)]  # fmt: skip
    pid = None
    try:
        start = time.perf_counter()
        run_quiet(cmd, stdin=PASSWORD + "\n", timeout=120)
        wait_mounted(path, None, conf)
        seconds = time.perf_counter() - start
        pid = davfs2_pid(path)
        yield Mounted("davfs2", path, cache, pid, seconds)
    finally:
        with signals_blocked():
            pid = pid or davfs2_pid(path)
            unmount(path, ["umount"], timeout=600)  # umount.davfs: waits for the upload
            end_process(pid)


Mounter = Callable[[Place, Path, Path, str], contextlib.AbstractContextManager[Mounted]]
MOUNTERS: dict[str, Mounter] = {
    "drivegate": mount_drivegate,
    "rclone": mount_rclone,
    "davfs2": mount_davfs2,
}


@contextlib.contextmanager
def session(
    place: Place, client: str, label: str, warm: Callable[[], None] | None = None
) -> Iterator[Mounted]:
    """A fresh mount with an empty cache dir, after dropping the page cache and reading
    the server's data back into it (then ``warm``, e.g. a local input file)."""
    path = place.work / f"mnt-{client}"
    cache = place.work / f"cache-{client}"
    path.mkdir(exist_ok=True)
    shutil.rmtree(cache, ignore_errors=True)
    if not drop_caches():
        print("  (not root: the page cache was not dropped)", flush=True)
    read_into_page_cache(place.server.data)
    if warm is not None:
        warm()
    try:
        with MOUNTERS[client](place, path, cache, label) as mounted:
            yield mounted
    finally:
        with signals_blocked():
            shutil.rmtree(cache, ignore_errors=True)


def kill_mount(mounted: Mounted) -> None:
    """The last resort for a hung operation: kill the client, detach its mount."""
    if mounted.pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(mounted.pid, signal.SIGKILL)
    subprocess.run(["umount", "-l", str(mounted.path)], capture_output=True, check=False)


@contextlib.contextmanager
def watchdog(mounted: Mounted, seconds: float, what: str) -> Iterator[None]:
    """Kill the mount's process if ``what`` takes longer than ``seconds`` (a hang)."""
    fired = threading.Event()

    def fire() -> None:
        fired.set()
        print(f"  TIMEOUT: {what} on {mounted.client} took over {seconds:.0f} s: "
              f"killing its process {mounted.pid}", file=sys.stderr, flush=True)  # fmt: skip
        kill_mount(mounted)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    try:
        yield
    except (OSError, subprocess.SubprocessError) as exc:
        if fired.is_set():
            raise RuntimeError(f"{mounted.client}: {what} timed out after {seconds:.0f} s") from exc
        raise
    finally:
        timer.cancel()
    if fired.is_set():
        raise RuntimeError(f"{mounted.client}: {what} timed out after {seconds:.0f} s")
