"""The mount's metadata replica: loading, applying the change feed in order,
pins through folders, manifests kept for offline reads, identity."""

from __future__ import annotations

from pathlib import Path

import pytest

from cdc.chunking import ChunkHash
from fusemount.apirecords import Change, ChunkSpan, Manifest, Node, NodeId, VersionId, VersionRef
from fusemount.errors import SetupError
from fusemount.replica import Replica

ROOT = NodeId(10)


def folder(node_id: int, parent: int, name: str) -> Node:
    return Node(NodeId(node_id), NodeId(parent), name, "folder", 0, 1, None)


def file(node_id: int, parent: int, name: str, version: int = 1, size: int = 3) -> Node:
    return Node(NodeId(node_id), NodeId(parent), name, "file", size, 1,
                VersionRef(VersionId(version), 1, None))  # fmt: skip


def loaded(tmp_path: Path) -> Replica:
    replica = Replica(tmp_path / "replica.sqlite")
    root = Node(ROOT, None, "", "folder", 0, 1, None)
    replica.load_tree(root, [folder(11, 10, "docs"), file(12, 11, "a.txt"), file(13, 10, "b")], 5)
    return replica


def test_load_and_lookup(tmp_path: Path) -> None:
    replica = loaded(tmp_path)
    assert replica.cursor == 5
    assert replica.root_id == ROOT
    docs = replica.child(ROOT, "docs")
    assert docs is not None and docs.is_folder
    assert [n.name for n in replica.children(ROOT)] == ["docs", "b"]
    assert [n.name for n in replica.children(ROOT, after=11)] == ["b"]
    assert replica.path_of(NodeId(12)) == "/docs/a.txt"
    assert replica.count() == 4


def test_changes_apply_in_order_with_their_cursor(tmp_path: Path) -> None:
    replica = loaded(tmp_path)
    renamed = file(12, 10, "moved.txt", version=2, size=9)
    effects = replica.apply(
        [
            Change(6, "move", NodeId(12), renamed),
            Change(7, "trash", NodeId(11), None),  # the folder (and its subtree) leaves
            Change(8, "create", NodeId(14), file(14, 10, "new")),
        ],
        cursor=8,
    )
    assert replica.cursor == 8
    assert replica.child(ROOT, "moved.txt") == renamed
    assert replica.child(ROOT, "docs") is None
    assert replica.get(NodeId(14)) is not None
    assert [(e.old is None, e.new is None) for e in effects] == [
        (False, False), (False, True), (True, False)
    ]  # fmt: skip


def test_trashing_a_folder_removes_its_subtree_and_pins(tmp_path: Path) -> None:
    replica = loaded(tmp_path)
    replica.pins.add(NodeId(11))
    assert replica.pins.pinned_by(NodeId(12)) == NodeId(11)
    effects = replica.apply([Change(6, "trash", NodeId(11), None)], cursor=6)
    assert {e.old.id for e in effects if e.old} == {11, 12}
    assert replica.get(NodeId(12)) is None
    assert not replica.pins.any()


def test_a_reload_keeps_the_nodes_changed_here_and_not_yet_sent(tmp_path: Path) -> None:
    replica = loaded(tmp_path)
    made_here, renamed_here = file(14, 11, "new.txt"), file(12, 10, "renamed.txt")
    replica.upsert([made_here, renamed_here])
    replica.remove(NodeId(11))  # ... and deleted here, with what is left below it
    root = Node(ROOT, None, "", "folder", 0, 1, None)
    # The server still has the old names and the folder; b is gone there.
    server = [folder(11, 10, "docs"), file(12, 11, "a.txt"), file(15, 10, "c")]
    replica.load_tree(root, server, 9, keep={NodeId(11), NodeId(12), NodeId(14)})
    assert replica.cursor == 9
    assert replica.get(NodeId(12)) == renamed_here
    assert replica.get(NodeId(11)) is None  # still deleted here
    assert [n.name for n in replica.children(ROOT)] == ["renamed.txt", "c"]
    # Without pending changes a reload shows the server's tree alone.
    replica.load_tree(root, server, 10)
    assert [n.name for n in replica.children(ROOT)] == ["docs", "c"]
    assert replica.get(NodeId(14)) is None


def test_pinned_folder_pins_files_that_arrive_later(tmp_path: Path) -> None:
    replica = loaded(tmp_path)
    replica.pins.add(NodeId(11))
    replica.apply([Change(6, "create", NodeId(20), file(20, 11, "later.txt"))], cursor=6)
    assert replica.pins.pinned_by(NodeId(20)) == NodeId(11)
    assert [n.id for n in replica.pins.files()] == [12, 20]
    assert replica.pins.pinned_by(NodeId(13)) is None
    replica.pins.remove_below(ROOT)  # unpinning a folder above removes the pins below
    assert not replica.pins.any()


def test_manifests_are_kept_while_a_node_shows_their_version(tmp_path: Path) -> None:
    replica = loaded(tmp_path)
    spans = (ChunkSpan(0, 2, ChunkHash("aa")), ChunkSpan(2, 1, ChunkHash("bb")))
    manifest = Manifest(NodeId(13), VersionRef(VersionId(1), 1, None), 3, spans)
    replica.store_manifest(manifest)
    assert replica.manifest(VersionId(1)) is not None
    replica.pins.add(NodeId(13))
    assert replica.pins.hashes() == {"aa", "bb"}
    replica.apply([Change(6, "update", NodeId(13), file(13, 10, "b", version=2))], cursor=6)
    replica.apply([Change(7, "trash", NodeId(12), None)], cursor=7)
    assert replica.manifest(VersionId(1)) is None  # no node shows version 1 any more


def test_a_cache_dir_belongs_to_one_drive(tmp_path: Path) -> None:
    replica = Replica(tmp_path / "replica.sqlite")
    replica.bind("http://a/", "alice")
    replica.bind("http://a/", "alice")
    with pytest.raises(SetupError, match="belongs to alice"):
        replica.bind("http://a/", "bob")
    replica.close()


def test_manifest_covering_bisects(tmp_path: Path) -> None:
    spans = tuple(ChunkSpan(i * 10, 10, ChunkHash(str(i))) for i in range(10))
    manifest = Manifest(NodeId(1), VersionRef(VersionId(1), 1, None), 100, spans)
    assert [s.offset for s in manifest.covering(0, 1)] == [0]
    assert [s.offset for s in manifest.covering(9, 2)] == [0, 10]
    assert [s.offset for s in manifest.covering(10, 10)] == [10]
    assert [s.offset for s in manifest.covering(95, 100)] == [90]
    assert manifest.covering(100, 5) == []
    assert [s.offset for s in manifest.after(25, 2)] == [30, 40]
