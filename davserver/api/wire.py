"""Reading requests and writing responses: capped bodies, JSON validated against
the models, query strings, and JSON answers.

A body is taken only with its declared media type: JSON as ``application/json``,
bytes as ``application/octet-stream`` where a route asks for it (415
otherwise). Neither is a type a cross-site form or a browser's "simple"
request can send, so a hostile page cannot make a logged-in browser change
anything through the API (the other half of the CSRF guard is
``davserver.sameorigin``)."""

from __future__ import annotations

from typing import Any, TypeVar

import falcon
from pydantic import BaseModel, ValidationError

from davserver.api.errors import ApiError, bad_request, too_large

MAX_JSON = 1024 * 1024
M = TypeVar("M", bound=BaseModel)


def read_body(req: falcon.Request, limit: int) -> bytes:
    """The whole request body, at most ``limit`` bytes (413 beyond, before reading
    when Content-Length says so; 400 when the body is shorter than announced)."""
    length = req.content_length
    if length is not None and length > limit:
        raise too_large(f"the body is {length} bytes; the limit is {limit}")
    chunked = "chunked" in (req.get_header("Transfer-Encoding") or "").lower()
    if length is None and not chunked:
        return b""
    stream = req.bounded_stream if length is not None else req.stream
    parts: list[bytes] = []
    received = 0
    while received <= limit:
        part = stream.read(min(limit + 1 - received, 1024 * 1024))
        if not part:
            break
        parts.append(part)
        received += len(part)
    if received > limit:
        raise too_large(f"the body is over the limit of {limit} bytes")
    if length is not None and received < length:
        raise bad_request(f"the body ended after {received} of {length} bytes")
    return b"".join(parts)


JSON = "application/json"
OCTETS = "application/octet-stream"


def require_type(req: falcon.Request, media_type: str) -> None:
    """415 unless the request declares its body as ``media_type`` (parameters aside)."""
    declared = (req.content_type or "").split(";", 1)[0].strip().lower()
    if declared != media_type:
        raise ApiError(
            415, "unsupported_media_type",
            f"the body must be sent as {media_type}, not {declared or 'untyped'}",
        )  # fmt: skip


def read_json(req: falcon.Request, model: type[M], limit: int = MAX_JSON) -> M:
    """The body (``application/json``: 415 otherwise, when there is one) parsed into
    ``model``; 400 with the reasons when it does not fit."""
    body = read_body(req, limit)
    if body:
        require_type(req, JSON)
    try:
        return model.model_validate_json(body or b"null")
    except ValidationError as exc:
        raise bad_request(_reasons(exc)) from None


def read_query(req: falcon.Request, model: type[M]) -> M:
    """The query string parsed into ``model`` (a name given twice is refused)."""
    params: dict[str, Any] = dict(req.params)
    for name, value in params.items():
        if isinstance(value, list):
            raise bad_request(f"query parameter {name!r} given more than once")
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        raise bad_request(_reasons(exc)) from None


def send(resp: falcon.Response, model: BaseModel, status: int = 200) -> None:
    send_body(resp, model.model_dump_json().encode(), status)


def send_body(resp: falcon.Response, body: bytes, status: int = 200) -> None:
    """A JSON body already written (see ``models.manifest_json``)."""
    resp.status = status
    resp.content_type = falcon.MEDIA_JSON
    resp.data = body


def _reasons(error: ValidationError) -> str:
    reasons = []
    for problem in error.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in problem["loc"])
        reasons.append(f"{where}: {problem['msg']}" if where else problem["msg"])
    return "; ".join(reasons)[:2000]
