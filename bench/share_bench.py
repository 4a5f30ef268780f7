"""Sharing benchmark: what 1,000 received shares cost their recipient, in one run.

Two users with trees of the same shape, on one ``drivegate serve`` (fresh
SQLite + local chunk dir under ``--workdir``, default /var/tmp/dg-bench):

- **plain** owns ``--shares`` (1,000) folders at the top of their drive, each
  holding one small file;
- **reader** owns nothing, and has received as many folders, each holding one
  small file, from ``owner`` (one grant each, viewer): their root lists the
  same number of entries as plain's.

For each of them (median of ``--repeat`` runs): a WebDAV ``PROPFIND Depth: 1``
of the root, a full page-through of the sync API's ``/tree`` (1,000 nodes a
page), and a poll of ``/changes`` at the current cursor. Then the time for a
change to reach a long-poll (``/changes?wait=``): for reader, ``owner`` PUTs a
file into one of the shared folders; for plain, plain PUTs into one of their
own. Measured from the PUT's answer to the long-poll's answer.

Targets (issue 20): each of reader's figures <= 1.5x plain's; propagation <= 1 s.
The setup uses the core in-process (``Drive``) before serve starts: it is not
measured.

    .venv/bin/python bench/share_bench.py
    .venv/bin/python bench/share_bench.py --shares 200 --repeat 3   # quick check
"""

from __future__ import annotations

import argparse
import io
import shutil
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from benchkit import ROOT, serving

if str(ROOT) not in sys.path:
    sys.path.insert(1, str(ROOT))

from core import Drive, load_settings

PASSWORD = "bench-password"
API = ".drivegate/api/v1"


def build(data_dir: Path, shares: int) -> None:
    """The three users and their trees (see the module's docstring)."""
    settings = load_settings(data_dir=data_dir)
    with Drive.open(settings) as drive:
        owner = drive.add_user("owner", PASSWORD)
        plain = drive.add_user("plain", PASSWORD)
        drive.add_user("reader", PASSWORD)
        for n in range(shares):
            for user in (owner, plain):
                drive.mkdir(user.id, f"/folder-{n:04}")
                drive.write(user.id, f"/folder-{n:04}/file.txt", io.BytesIO(b"x" * 100))
            drive.share(owner.id, f"/folder-{n:04}", user="reader")


def median_seconds(action: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def page_through(api: httpx.Client) -> int:
    count, after = 0, 0
    while True:
        page = api.get("/tree", params={"after": after, "limit": 1000})
        page.raise_for_status()
        body = page.json()
        count += len(body["nodes"])
        if body["next_after"] is None:
            return count
        after = body["next_after"]


def propagation(listener: httpx.Client, writer: httpx.Client, path: str) -> float:
    """Seconds from ``writer``'s PUT answer to ``listener``'s long-poll answer."""
    cursor = listener.get("/me").json()["cursor"]
    answered: list[float] = []

    def poll() -> None:
        listener.get("/changes", params={"cursor": cursor, "wait": 20}).raise_for_status()
        answered.append(time.perf_counter())

    thread = threading.Thread(target=poll)
    thread.start()
    time.sleep(0.5)  # the long-poll is waiting
    writer.put(path, content=b"new").raise_for_status()
    put_done = time.perf_counter()
    thread.join()
    return answered[0] - put_done


def measure(url: str, user: str, repeat: int) -> dict[str, float]:
    auth = (user, PASSWORD)
    figures: dict[str, float] = {}
    with (
        httpx.Client(base_url=url, auth=auth, timeout=120) as dav,
        httpx.Client(base_url=url + API, auth=auth, timeout=120) as api,
    ):
        root = dav.request("PROPFIND", "/", headers={"Depth": "1"})
        assert root.status_code == 207, root.text[:200]
        figures["propfind"] = median_seconds(
            lambda: dav.request("PROPFIND", "/", headers={"Depth": "1"}).raise_for_status(), repeat
        )
        nodes = page_through(api)
        figures["tree"] = median_seconds(lambda: page_through(api), repeat)
        cursor = api.get("/me").json()["cursor"]
        figures["poll"] = median_seconds(
            lambda: api.get("/changes", params={"cursor": cursor}).raise_for_status(), repeat
        )
        print(f"  {user}: {nodes} nodes in the tree", flush=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shares", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=Path("/var/tmp/dg-bench"))
    args = parser.parse_args()
    work = args.workdir / "share-bench"
    shutil.rmtree(work, ignore_errors=True)
    data = work / "data"
    data.mkdir(parents=True)
    print(f"setting up {args.shares} shares …", flush=True)
    build(data, args.shares)
    env = {"DRIVEGATE_DATA_DIR": str(data)}
    results: dict[str, dict[str, float]] = {}
    with serving(env=env, cwd=work, own_session=True) as server:
        for user in ("plain", "reader"):
            results[user] = measure(server.url, user, args.repeat)
        with (
            httpx.Client(base_url=server.url, auth=("owner", PASSWORD), timeout=60) as owner,
            httpx.Client(base_url=server.url, auth=("plain", PASSWORD), timeout=60) as plain,
            httpx.Client(base_url=server.url + API, auth=("reader", PASSWORD), timeout=60) as r,
            httpx.Client(base_url=server.url + API, auth=("plain", PASSWORD), timeout=60) as p,
        ):
            results["reader"]["propagation"] = statistics.median(
                propagation(r, owner, f"/folder-0000/new-{n}.txt") for n in range(args.repeat)
            )
            results["plain"]["propagation"] = statistics.median(
                propagation(p, plain, f"/folder-0000/new-{n}.txt") for n in range(args.repeat)
            )
    print(f"\n{args.shares} received shares (reader) against as many own folders (plain)")
    for key, title in TITLES.items():
        mine, base = results["reader"][key], results["plain"][key]
        if key == "propagation":
            verdict = "met" if mine <= 1.0 else "MISSED"
            print(f"  {title:<34} reader {mine:8.4f} s  plain {base:8.4f} s  "
                  f"target reader <= 1 s: {verdict}")  # fmt: skip
            continue
        ratio = mine / base if base > 0 else float("inf")
        verdict = "met" if ratio <= 1.5 else "MISSED"
        print(f"  {title:<34} reader {mine:8.4f} s  plain {base:8.4f} s  "
              f"reader/plain = {ratio:5.2f}x  target <= 1.5x: {verdict}")  # fmt: skip


TITLES = {
    "propfind": "PROPFIND Depth:1 of the root",
    "tree": "full /tree page-through",
    "poll": "/changes poll at the cursor",
    "propagation": "a change reaching a long-poll",
}


if __name__ == "__main__":
    main()
