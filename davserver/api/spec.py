"""The OpenAPI 3.1 document, built from the routes themselves.

Every responder carries an ``@operation(...)`` describing its query model,
body model, success status and answer; ``openapi_document`` walks the route
table (``routes.py``) and the models (``models.py``), so the document
cannot describe a route that does not exist or miss one that does (a
responder without ``@operation`` is an error at start-up).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from davserver.api.links import LINKS
from davserver.api.models import PATH_PARAMETERS, ErrorOut

F = TypeVar("F", bound=Callable[..., Any])
METHODS = ("get", "put", "post", "patch", "delete")
REF = "#/components/schemas/{model}"
OCTETS = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
ERROR = {"$ref": "#/components/responses/Error"}
# The HTTP server (cheroot) answers a request line over its limit itself, before
# the API sees the request: the one error without a JSON body.
URI_TOO_LONG = 414
TOO_LONG = {"$ref": "#/components/responses/UriTooLong"}
LOGGED_IN = (401, 429, 503)  # any request with a login: bad login, throttled, store down
_FIELD = re.compile(r"\{(\w+)(?::(\w+))?[^}]*\}")


@dataclass(frozen=True)
class Operation:
    """What one responder takes and answers.

    ``answer``: the JSON model of a success (None: no body, or ``octets``);
    ``octets``: the success body (or, with ``upload``, the request body) is
    raw bytes; ``errors``: the statuses it may answer besides those every
    request may get (400, 414; with a login 401, 429, 503; with a body 413, and
    415 for a JSON body); ``admin``: administrators only (403 for anyone else).
    """

    summary: str
    status: int = 200
    answer: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    octets: bool = False
    upload: bool = False
    errors: tuple[int, ...] = ()
    public: bool = False
    admin: bool = False
    also: tuple[int, ...] = ()  # other success statuses with the same answer


def operation(**details: Any) -> Callable[[F], F]:
    """Attach an :class:`Operation` to a responder."""

    def mark(responder: F) -> F:
        responder.__api_operation__ = Operation(**details)  # type: ignore[attr-defined]
        return responder

    return mark


def operations(resource: object) -> dict[str, Operation]:
    """The documented responders of a resource, by lower-case method."""
    found: dict[str, Operation] = {}
    for method in METHODS:
        responder = getattr(resource, f"on_{method}", None)
        if responder is None:
            continue
        described = getattr(responder, "__api_operation__", None)
        if not isinstance(described, Operation):
            raise TypeError(f"{type(resource).__name__}.on_{method} has no @operation")
        found[method] = described
    return found


def openapi_document(routes: list[tuple[str, object]], prefix: str, version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``routes`` (templates relative to ``prefix``)."""
    models: dict[type[BaseModel], JsonSchemaMode] = {ErrorOut: "serialization"}
    paths: dict[str, Any] = {}
    for template, resource in routes:
        path, parameters = _path(template)
        item: dict[str, Any] = {}
        for method, op in operations(resource).items():
            if op.answer is not None:
                models[op.answer] = "serialization"
            if op.body is not None:
                models[op.body] = "validation"
            item[method] = _operation(op, parameters)
            item[method]["operationId"] = method + type(resource).__name__
        paths[path] = item
    _link(paths)
    schemas = _schemas(models)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "drivegate sync API",
            "version": version,
            "description": "See docs/sync-api.md. Every error answers "
            '`{"error": {"code", "message", …}}`.',
        },
        "servers": [{"url": prefix}],
        "security": [{"basic": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"basic": {"type": "http", "scheme": "basic"}},
            "responses": {
                "Error": {
                    "description": "An error (see the code).",
                    "content": _json(ErrorOut),
                },
                "UriTooLong": {
                    "description": "The request line is over the HTTP server's limit "
                    "(64 KiB); answered before the API sees the request, in plain text.",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
            },
        },
    }


def _link(paths: dict[str, Any]) -> None:
    """Add ``links.LINKS`` to the success answers of their source operations."""
    found = {op["operationId"]: op for item in paths.values() for op in item.values()}
    for source, links in LINKS.items():
        for name, link in links.items():
            if source not in found or link.target not in found:
                raise TypeError(f"link {name!r}: no operation {source!r} or {link.target!r}")
            for status, response in found[source]["responses"].items():
                if status.startswith("2"):
                    response.setdefault("links", {})[name] = link.document()


def _path(template: str) -> tuple[str, list[dict[str, Any]]]:
    """OpenAPI path and path parameters of a Falcon template (``{id:int}`` → ``{id}``),
    each described by its type in ``models.PATH_PARAMETERS``."""
    parameters = []
    for name, _ in _FIELD.findall(template):
        if name not in PATH_PARAMETERS:
            raise TypeError(f"path parameter {name!r} of {template} has no type in PATH_PARAMETERS")
        schema = TypeAdapter(PATH_PARAMETERS[name]).json_schema()
        parameters.append({"name": name, "in": "path", "required": True, "schema": schema})
    return _FIELD.sub(lambda m: "{" + m.group(1) + "}", template), parameters


def _operation(op: Operation, path_parameters: list[dict[str, Any]]) -> dict[str, Any]:
    described: dict[str, Any] = {"summary": op.summary, "responses": {}}
    parameters = list(path_parameters)
    if op.query is not None:
        parameters.extend(_query_parameters(op.query))
    if parameters:
        described["parameters"] = parameters
    if op.body is not None:
        described["requestBody"] = {"required": True, "content": _json(op.body)}
    if op.upload:
        described["requestBody"] = {"required": True, "content": OCTETS}
    for status in (op.status, *op.also):
        described["responses"][str(status)] = _success(op, status)
    errors = {400, *op.errors}
    if op.admin:
        errors.add(403)
        described["summary"] += " Administrators only."
    if not op.public:
        errors |= set(LOGGED_IN)
    if op.body is not None or op.upload:
        errors.add(413)
    if op.body is not None:
        errors.add(415)  # JSON only as application/json (davserver.api.wire)
    for status in sorted(errors):
        described["responses"][str(status)] = ERROR
    described["responses"][str(URI_TOO_LONG)] = TOO_LONG
    if op.public:
        described["security"] = []
    return described


def _success(op: Operation, status: int) -> dict[str, Any]:
    response: dict[str, Any] = {"description": op.summary}
    if op.answer is not None:
        response["content"] = _json(op.answer)
    elif op.octets and not op.upload:
        response["content"] = OCTETS
    return response


def _json(model: type[BaseModel]) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": REF.format(model=model.__name__)}}}


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template=REF)
    required = set(schema.get("required", []))
    parameters = []
    for name, field_schema in schema["properties"].items():
        parameter: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": {k: v for k, v in field_schema.items() if k != "description"},
        }
        if "description" in field_schema:
            parameter["description"] = field_schema["description"]
        parameters.append(parameter)
    return parameters


def _schemas(models: dict[type[BaseModel], JsonSchemaMode]) -> dict[str, Any]:
    ordered = sorted(models.items(), key=lambda item: item[0].__name__)
    _, top = models_json_schema(ordered, ref_template=REF)
    return dict(sorted(top.get("$defs", {}).items()))
