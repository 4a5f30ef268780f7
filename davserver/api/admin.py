"""What only administrators may do through the API: list the users, and manage
groups and their members (the rules are ``core.groups``).

Every responder checks the login first (``admin_of``): anyone else gets 403
``forbidden`` before the request's body or names are looked at, so nothing
changes and nothing is told about the groups or users that exist."""

from __future__ import annotations

import falcon

from core import Drive, UserInfo
from davserver.api.errors import ApiError
from davserver.api.models import (
    GroupIn,
    GroupOut,
    GroupsOut,
    MembersIn,
    UsersOut,
    group_out,
    user_out,
)
from davserver.api.spec import operation
from davserver.api.sync import user_of
from davserver.api.wire import read_json, send


def admin_of(req: falcon.Request) -> UserInfo:
    """The logged-in user if an administrator (as of this request), else 403."""
    user = user_of(req)
    if not user.is_admin:
        raise ApiError(403, "forbidden", "admins only: this needs an administrator's login")
    return user


class Users:
    def __init__(self, drive: Drive) -> None:
        self.drive = drive

    @operation(summary="Every user, with their quota and use.", answer=UsersOut, admin=True)
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        admin_of(req)
        send(resp, UsersOut(users=[user_out(info) for info in self.drive.list_users()]))


class Groups:
    def __init__(self, drive: Drive) -> None:
        self.drive = drive

    @operation(summary="Every group, with its members.", answer=GroupsOut, admin=True)
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        admin_of(req)
        send(resp, GroupsOut(groups=[group_out(info) for info in self.drive.list_groups()]))

    @operation(summary="Create an empty group (409 name_taken when the name is in use).",
               status=201, answer=GroupOut, body=GroupIn, errors=(409,),
               admin=True)  # fmt: skip
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        admin_of(req)
        body = read_json(req, GroupIn)
        send(resp, group_out(self.drive.add_group(body.name)), 201)


class Group:
    def __init__(self, drive: Drive) -> None:
        self.drive = drive

    @operation(summary="The group and its members.", answer=GroupOut, errors=(404,),
               admin=True)  # fmt: skip
    def on_get(self, req: falcon.Request, resp: falcon.Response, group: str) -> None:
        admin_of(req)
        send(resp, group_out(self.drive.group(group)))

    @operation(summary="Remove the group (its members stay users).", status=204,
               errors=(404,), admin=True)  # fmt: skip
    def on_delete(self, req: falcon.Request, resp: falcon.Response, group: str) -> None:
        admin_of(req)
        self.drive.remove_group(group)
        resp.status = 204


class Members:
    def __init__(self, drive: Drive) -> None:
        self.drive = drive

    @operation(summary="Add users to the group, all or none (404 naming the unknown ones); "
               "members already stay.", answer=GroupOut, body=MembersIn, errors=(404,),
               admin=True)  # fmt: skip
    def on_post(self, req: falcon.Request, resp: falcon.Response, group: str) -> None:
        admin_of(req)
        body = read_json(req, MembersIn)
        send(resp, group_out(self.drive.add_group_members(group, body.users)))


class Member:
    def __init__(self, drive: Drive) -> None:
        self.drive = drive

    @operation(summary="Take the user out of the group (404 when not a member).",
               status=204, errors=(404,), admin=True)  # fmt: skip
    def on_delete(self, req: falcon.Request, resp: falcon.Response, group: str, user: str) -> None:
        admin_of(req)
        self.drive.remove_group_members(group, [user])
        resp.status = 204
