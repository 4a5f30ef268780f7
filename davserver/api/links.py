"""The OpenAPI links of the sync API: which value of an answer another operation
takes (the root folder's id from ``/me``, a new folder's id from ``/mkdir``, a
file's id and version from ``/commit``…), so a client, or the fuzzer's stateful
test, can go from one operation to the next.

Operations are named by ``operationId``: the method and the resource's class,
e.g. ``getNode`` (``spec.py`` checks that every name here exists).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ID = "$response.body#/id"
VERSION_ID = "$response.body#/version/id"
VERSION_NUMBER = "$response.body#/version/number"
ROOT_ID = "$response.body#/root_id"
# A commit by name must not carry the by-node fields, and the other way round.
BY_NAME = {"node_id": None, "splice": None}
BY_NODE = {"parent_id": None, "name": None, "id": None, "create_only": False}


@dataclass(frozen=True)
class Link:
    """``target`` takes ``parameters`` (``"path.node_id": expression``) and, merged
    into its body, ``body`` (values may be expressions) from a success answer."""

    target: str
    parameters: Mapping[str, str] = field(default_factory=dict)
    body: Mapping[str, Any] | None = None

    def document(self) -> dict[str, Any]:
        """The link as an OpenAPI Link Object."""
        described: dict[str, Any] = {"operationId": self.target}
        if self.parameters:
            described["parameters"] = dict(self.parameters)
        if self.body is not None:
            described["requestBody"] = dict(self.body)
        return described


def _node(expression: str = ID) -> dict[str, str]:
    return {"path.node_id": expression}


def _on_node(*targets: str) -> dict[str, Link]:
    """A link to each of ``targets``, for the node answered."""
    return {target: Link(target, _node()) for target in targets}


_FOLDER = {
    **_on_node("getNode", "patchNode", "deleteNode", "getChildren"),
    "mkdirInside": Link("postMkdir", body={"parent_id": ID}),
    "commitInside": Link("postCommit", body={"parent_id": ID, **BY_NAME}),
    "moveIt": Link("postMove", body={"node_id": ID}),
    "moveInto": Link("postMove", body={"parent_id": ID}),
}
_FILE = {
    **_on_node("getNode", "patchNode", "getManifest", "getVersions"),
    "deleteAtVersion": Link(
        "deleteNode", {"path.node_id": ID, "query.base_version_id": VERSION_ID}
    ),
    "restoreVersion": Link("postRestore", {"path.node_id": ID, "path.number": VERSION_NUMBER}),
    "patchVersion": Link(
        "postPatchFile", {"path.node_id": ID, "query.base_version_id": VERSION_ID}
    ),
    "commitOver": Link(
        "postCommit", body={"node_id": ID, "base_version_id": VERSION_ID, **BY_NODE}
    ),
    "moveIt": Link("postMove", body={"node_id": ID}),
}

_SHARE_TARGETS = ("getShare", "patchShare", "deleteShare")

# Source operationId → its links (on each of its success answers).
LINKS: dict[str, dict[str, Link]] = {
    "getMe": {
        "rootChildren": Link("getChildren", _node(ROOT_ID)),
        "mkdirAtRoot": Link("postMkdir", body={"parent_id": ROOT_ID}),
        "commitAtRoot": Link("postCommit", body={"parent_id": ROOT_ID, **BY_NAME}),
        "changesSince": Link("getChanges", {"query.cursor": "$response.body#/cursor"}),
    },
    "getChanges": {
        "changesSince": Link("getChanges", {"query.cursor": "$response.body#/cursor"}),
    },
    "postIds": {
        "mkdirWithId": Link("postMkdir", body={"id": "$response.body#/ids/0"}),
        "commitWithId": Link("postCommit", body={"id": "$response.body#/ids/0", **BY_NAME}),
    },
    "postMkdir": _FOLDER,
    "postCommit": _FILE,
    "postRestore": _FILE,
    "postPatchFile": _FILE,
    "patchNode": _on_node("getNode", "deleteNode"),
    "postMove": _on_node("getNode", "deleteNode"),
    "postShares": {
        **{target: Link(target, {"path.share_id": ID}) for target in _SHARE_TARGETS},
        "whoHasAccess": Link("getNodeShares", _node("$response.body#/node_id")),
    },
    "patchShare": {target: Link(target, {"path.share_id": ID}) for target in _SHARE_TARGETS},
}
