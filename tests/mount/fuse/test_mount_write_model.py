"""A randomized model test of the mount's write side: random operations on a
real mount (over a real server) and on an in-memory model of the tree, with
periodic `drivegate umount` (which uploads what is pending) and remounts on
the same cache dir. After every remount the mount, and the server over the
sync API, must hold exactly the model."""

from __future__ import annotations

import os
import random
from pathlib import Path

import httpx
import pytest

from tests.conftest import ALICE
from tests.support.mounts import LoggedServer, drivegate, mounted

SQLITE = pytest.mark.parametrize("backend", ["sqlite-file"], indirect=True)
pytestmark = SQLITE

OPS = 90
REMOUNT_EVERY = 15


def seeds(spec: str) -> list[int]:
    """``1-5`` or ``3,8,13``: the seeds to run (``DRIVEGATE_MODEL_SEEDS``, for a
    longer soak by hand: ``DRIVEGATE_MODEL_SEEDS=6-60 pytest -k random_operations``)."""
    chosen: list[int] = []
    for part in spec.split(","):
        first, _, last = part.partition("-")
        chosen.extend(range(int(first), int(last or first) + 1))
    return chosen


SEEDS = seeds(os.environ.get("DRIVEGATE_MODEL_SEEDS", "1-5"))


class Model:
    """The tree as it must be: folders and files (path → content)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.folders: set[str] = {""}
        self.files: dict[str, bytes] = {}
        self.counter = 0

    def fresh_name(self, folder: str, suffix: str = ".bin") -> str:
        self.counter += 1
        return f"{folder}/n{self.counter}{suffix}".lstrip("/")

    def content(self) -> bytes:
        size = self.rng.choice([0, 1, 100, 5000, 300_000, 1_300_000])
        return self.rng.randbytes(size)

    def empty_folders(self) -> list[str]:
        used = {p.rpartition("/")[0] for p in [*self.files, *self.folders] if p}
        return sorted(f for f in self.folders if f and f not in used)


def step(model: Model, mnt: Path) -> None:  # noqa: PLR0915 (one branch per operation)
    rng = model.rng
    files = sorted(model.files)
    op = rng.choice(["create", "create", "overwrite", "append", "truncate", "rename",
                     "rename_over", "unlink", "mkdir", "rmdir", "read"])  # fmt: skip
    if op == "create" or not files:
        path = model.fresh_name(rng.choice(sorted(model.folders)))
        data = model.content()
        (mnt / path).write_bytes(data)
        model.files[path] = data
    elif op == "overwrite":
        path = rng.choice(files)
        old = model.files[path]
        offset = rng.randrange(len(old) + 1)
        patch = rng.randbytes(rng.choice([1, 10, 70_000]))
        with open(mnt / path, "r+b") as file:
            file.seek(offset)
            file.write(patch)
        new = old[:offset] + patch + old[offset + len(patch) :]
        model.files[path] = new
    elif op == "append":
        path = rng.choice(files)
        tail = rng.randbytes(rng.choice([1, 4096, 200_000]))
        with open(mnt / path, "ab") as file:
            file.write(tail)
        model.files[path] += tail
    elif op == "truncate":
        path = rng.choice(files)
        size = rng.randrange(len(model.files[path]) + 2000)
        os.truncate(mnt / path, size)
        old = model.files[path]
        model.files[path] = old[:size] + bytes(max(size - len(old), 0))
    elif op == "rename":
        path = rng.choice(files)
        target = model.fresh_name(rng.choice(sorted(model.folders)))
        os.rename(mnt / path, mnt / target)
        model.files[target] = model.files.pop(path)
    elif op == "rename_over" and len(files) >= 2:
        source, target = rng.sample(files, 2)
        os.rename(mnt / source, mnt / target)
        model.files[target] = model.files.pop(source)
    elif op == "unlink":
        path = rng.choice(files)
        os.unlink(mnt / path)
        del model.files[path]
    elif op == "mkdir":
        folder = model.fresh_name(rng.choice(sorted(model.folders)), suffix="")
        os.mkdir(mnt / folder)
        model.folders.add(folder)
    elif op == "rmdir" and model.empty_folders():
        folder = rng.choice(model.empty_folders())
        os.rmdir(mnt / folder)
        model.folders.discard(folder)
    else:
        path = rng.choice(files)
        assert (mnt / path).read_bytes() == model.files[path], path


def mount_tree(mnt: Path) -> tuple[set[str], dict[str, bytes]]:
    folders, files = {""}, {}
    for root, dirs, names in os.walk(mnt):
        rel = os.path.relpath(root, mnt)
        rel = "" if rel == "." else rel
        folders.update(f"{rel}/{d}".lstrip("/") for d in dirs)
        for name in names:
            files[f"{rel}/{name}".lstrip("/")] = Path(root, name).read_bytes()
    return folders, files


def server_tree(url: str) -> tuple[set[str], dict[str, bytes]]:
    with httpx.Client(base_url=url, auth=ALICE, timeout=60) as dav:
        api = dav.get("/.drivegate/api/v1/tree", params={"limit": 10000}).json()
        root = dav.get("/.drivegate/api/v1/me").json()["root_id"]
        nodes = {node["id"]: node for node in api["nodes"]}

        def path_of(node_id: int) -> str:
            node = nodes[node_id]
            parent = node["parent_id"]
            return node["name"] if parent == root else f"{path_of(parent)}/{node['name']}"

        folders = {""} | {path_of(n) for n in nodes if nodes[n]["kind"] == "folder"}
        files = {
            path_of(n): dav.get("/" + path_of(n)).content
            for n in nodes
            if nodes[n]["kind"] == "file"
        }
    return folders, files


@pytest.mark.parametrize("seed", SEEDS)
def test_random_operations_match_the_model_across_remounts(
    server: LoggedServer, tmp_path: Path, seed: int
) -> None:
    model = Model(random.Random(seed))
    mountpoint, cache = tmp_path / "mnt", tmp_path / "cache"
    done = 0
    while done < OPS:
        with mounted(server.url, mountpoint, cache, "--upload-delay", "0.2") as mnt:
            assert mount_tree(mnt) == (model.folders, model.files)
            for _ in range(REMOUNT_EVERY):
                step(model, mnt)
                done += 1
            assert mount_tree(mnt) == (model.folders, model.files)
            result = drivegate("umount", str(mnt))
            assert result.returncode == 0, result.stderr
            assert "not uploaded" not in result.stderr
        assert server_tree(server.url) == (model.folders, model.files)
