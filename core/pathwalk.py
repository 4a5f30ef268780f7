"""Walking a path's names down the tree in one SQL statement, whatever its depth.

A recursive CTE starts at a node (or a user's root) and goes down one level per
step, to the live child whose name is the next of the path's names; the names
travel as one JSON array parameter, read by index (``->>``, PostgreSQL and
SQLite ≥ 3.38). So every path, one level deep or a thousand, runs the same few
statements: they are built and compiled once, and cost nothing per depth. (A
self-join per level did cost a statement per depth: SQLAlchemy's caches grew
with every depth, SQLite's limit of 64 tables stopped it past 60 levels, and
PostgreSQL's plan search grew slow past 10 levels.)

A share entry (``nodes.target_id``) is crossed like a folder: the walk goes on
among its target's members. Whether the walker may see them is
``core.access``'s question, asked of the node reached.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Integer, ScalarSelect, String, bindparam, func, literal, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from core.db.models import Node, User


class _NameAt(FunctionElement[str]):
    """The ``level``-th (0-based) string of the JSON array ``names``."""

    type = String()
    inherit_cache = True
    name = "name_at"


@compiles(_NameAt)
def _name_at_sqlite(element: _NameAt, compiler: SQLCompiler, **kw: Any) -> str:
    names, level = list(element.clauses)
    return f"({compiler.process(names, **kw)} ->> {compiler.process(level, **kw)})"


@compiles(_NameAt, "postgresql")
def _name_at_postgresql(element: _NameAt, compiler: SQLCompiler, **kw: Any) -> str:
    names, level = list(element.clauses)
    return f"(CAST({compiler.process(names, **kw)} AS JSON) ->> {compiler.process(level, **kw)})"


def target(*, from_root: bool) -> ScalarSelect[Any]:
    """The id of the live node reached from the start along the names (NULL if a name
    is missing on the way). Parameters: those of ``params``."""
    start = (
        select(User.root_id).where(User.id == bindparam("user")).scalar_subquery()
        if from_root
        else bindparam("start", type_=Integer)
    )
    depth = bindparam("depth", type_=Integer)
    # ``inside``: where a node's members live: its own id, or a share entry's target.
    walk = (
        select(
            Node.id.label("id"),
            func.coalesce(Node.target_id, Node.id).label("inside"),
            literal(0, Integer).label("level"),
        )
        .where(Node.id == start)
        .cte("walk", recursive=True)
    )
    walk = walk.union_all(
        select(Node.id, func.coalesce(Node.target_id, Node.id), walk.c.level + 1).where(
            walk.c.level < depth,
            Node.parent_id == walk.c.inside,
            Node.name == _NameAt(bindparam("names", type_=String), walk.c.level),
            Node.trashed_at.is_(None),
        )
    )
    return select(walk.c.id).where(walk.c.level == depth).scalar_subquery()


def params(
    names: list[str], *, user: int | None = None, start: int | None = None
) -> dict[str, Any]:
    """The parameters of ``target``: the names, and the user (from their root) or the
    start node's id."""
    found: dict[str, Any] = {"names": json.dumps(names, ensure_ascii=False), "depth": len(names)}
    if user is not None:
        found["user"] = user
    if start is not None:
        found["start"] = start
    return found
