"""Assembling the sync API: a Falcon app over the route table, with Basic auth,
JSON errors and the OpenAPI document at ``/.drivegate/api/v1/openapi.json``."""

from __future__ import annotations

from typing import Any

import falcon

from core import Drive, DriveError
from davserver.api.auth import BasicAuth
from davserver.api.errors import drive_error_handler, malformed_body_handler, serialize
from davserver.api.routes import CONVERTERS, routes
from davserver.api.spec import openapi_document, operation
from davserver.auth import Authenticator
from davserver.framing import MalformedBody
from davserver.urlspace import API

PREFIX = API
API_VERSION = "1"
OPENAPI_PATH = "/openapi.json"


class OpenApi:
    """The document describing every route (this one included); no login needed."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document

    @operation(summary="This API as an OpenAPI 3.1 document.", public=True)
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self.document


ApiApp = falcon.App[falcon.Request, falcon.Response]


def build_api(drive: Drive, auth: Authenticator, long_polls: int) -> ApiApp:
    """The sync API as a WSGI app answering paths under ``PREFIX``."""
    app = falcon.App(middleware=[BasicAuth(auth, frozenset({PREFIX + OPENAPI_PATH}))])
    app.req_options.strip_url_path_trailing_slash = False
    app.router_options.converters.update(CONVERTERS)
    app.set_error_serializer(serialize)
    app.add_error_handler(DriveError, drive_error_handler(drive))
    app.add_error_handler(MalformedBody, malformed_body_handler)
    table = routes(drive, long_polls)
    openapi = OpenApi({})
    table.append((OPENAPI_PATH, openapi))
    openapi.document = openapi_document(table, PREFIX, API_VERSION)
    for template, resource in table:
        app.add_route(PREFIX + template, resource)
    return app
