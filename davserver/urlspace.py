"""The server's URL space, decided once: a user's drive is WebDAV at ``/``, and all
the server offers besides lives under one reserved root, ``/.drivegate/``
(``core.SERVICE_ROOT``):

- ``/.drivegate/api/v1/…``  the sync API
- ``/.drivegate/healthz``   the health check for load balancers
- (later) ``/.drivegate/web/`` the web app, ``/.drivegate/s/<token>`` public links

So a new face takes no name from anybody's drive. The paths in use before the
rule stay as aliases, rewritten here before anything else sees the request:
``/api/v1/…`` (mounts in the field) and ``/healthz`` (load-balancer checks).
Their names stay reserved (``core.names.LEGACY_NAMES``) while the aliases live.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from core import SERVICE_ROOT as SERVICE_ROOT_NAME

SERVICE_ROOT = "/" + SERVICE_ROOT_NAME
API = SERVICE_ROOT + "/api/v1"
HEALTH = SERVICE_ROOT + "/healthz"
ALIASES = {"/api/v1": API, "/healthz": HEALTH}

Environ = dict[str, Any]
WsgiApp = Callable[[Environ, Callable[..., Any]], Iterable[bytes]]


def under(path: str, prefix: str) -> bool:
    """Whether ``path`` is ``prefix`` or below it (``/api/v1x`` is not below ``/api/v1``)."""
    return path == prefix or path.startswith(prefix + "/")


class LegacyAliases:
    """Rewrites a request for an alias (``ALIASES``) to its path under the service root."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app

    def __call__(self, environ: Environ, start_response: Callable[..., Any]) -> Iterable[bytes]:
        path: str = environ.get("PATH_INFO", "")
        for alias, target in ALIASES.items():
            if under(path, alias):
                environ["PATH_INFO"] = target + path[len(alias) :]
                break
        return self.app(environ, start_response)
