"""The sync API (``/.drivegate/api/v1``): JSON over HTTP for the FUSE mount and other sync
clients, a Falcon app served by the same process as WebDAV. The contract is
``docs/sync-api.md``; ``GET /.drivegate/api/v1/openapi.json`` describes it.

Modules, one job each: ``app`` (assembly), ``routes`` (the route table),
``auth`` (Basic auth middleware), ``errors`` (DriveError → HTTP, the error
body), ``wire`` (capped bodies, queries, JSON answers), ``models`` (the JSON
shapes), ``spec`` (the OpenAPI document, built from the routes and models),
and the resources: ``sync`` (me, tree, changes), ``nodes``, ``chunks``,
``commit``, ``batch``, ``admin`` (users and groups, administrators only).
"""

from davserver.api.app import PREFIX, build_api

__all__ = ["PREFIX", "build_api"]
