"""The JSON shapes of the share resources (``shares.py``), beside ``models.py``
and built the same way: bodies strict with no unknown fields, answers made
from the core's ``ShareInfo``.

A share answers its node's ``path`` only to the node's owner: anyone else
(a recipient, a resharer) learns the node's id and nothing of where it sits
in the owner's drive.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from core import ShareInfo
from davserver.api.models import Body, Id

# The rule of user and group names (core.users, core.groups).
NAME = "^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"
Name = Annotated[str, Field(pattern=NAME)]
Role = Literal["viewer", "editor"]
ROLE_HELP = "viewer: list, read, see versions; editor: also write, create, rename, delete."

# Exactly one grantee; the document says so (as CommitIn's two shapes), so
# clients and the fuzzer know it too.
_NULL = {"type": "null"}
_STRING = {"type": "string"}
GRANTEES: dict[str, Any] = {
    "oneOf": [
        {"title": "A user", "required": ["user"], "properties": {"user": _STRING, "group": _NULL}},
        {
            "title": "A group",
            "required": ["group"],
            "properties": {"group": _STRING, "user": _NULL},
        },
    ]
}


class ShareOut(BaseModel):
    """A grant of a node (and everything below it) to a user or a group."""

    id: Id
    node_id: Id
    path: str | None = Field(
        description="The node's path in its owner's drive, for the owner; null for anyone else."
    )
    owner: str
    granted_by: str
    user: str | None = Field(description="The user it is shared with (null: a group).")
    group: str | None = Field(description="The group it is shared with (null: a user).")
    role: Role = Field(description=ROLE_HELP)
    reshare: bool = Field(description="The grantee may share it onward, up to this role.")
    created_at: float = Field(description="Seconds since the epoch.")


class SharesOut(BaseModel):
    shares: list[ShareOut] = Field(description="Oldest first.")


class ShareIn(Body):
    """Share ``node_id`` with ``user`` or ``group`` (exactly one: ``GRANTEES``)."""

    model_config = ConfigDict(json_schema_extra=GRANTEES)

    node_id: Id = Field(description="The node (a share entry stands for what it shares).")
    user: Name | None = None
    group: Name | None = None
    role: Role = Field(default="viewer", description=ROLE_HELP)
    reshare: bool = False

    @model_validator(mode="after")
    def _one_grantee(self) -> ShareIn:
        if (self.user is None) == (self.group is None):
            raise PydanticCustomError("grantee", "give user or group, exactly one")
        return self


class ShareUpdateIn(Body):
    role: Role | None = Field(default=None, description="The new role; null: unchanged.")
    reshare: bool | None = Field(default=None, description="null: unchanged.")


def share_out(info: ShareInfo, viewer: str) -> ShareOut:
    """``info`` as the user named ``viewer`` may see it."""
    return ShareOut(
        id=info.id,
        node_id=info.node_id,
        path=info.path if info.owner == viewer else None,
        owner=info.owner,
        granted_by=info.granted_by,
        user=info.user,
        group=info.group,
        role=info.role,  # type: ignore[arg-type]  # the core stores only these roles
        reshare=info.reshare,
        created_at=info.created_at,
    )
