"""The server of drivegate: one WSGI application (``drivegate serve``) that
answers WebDAV for every user's drive at ``/`` and the rest of the URL space
under ``/.drivegate/`` (``urlspace``). Each face has its room:

- ``dav/``  WebDAV (WsgiDAV over ``core.Drive``): see ``davserver/dav/__init__.py``
- ``api/``  the sync API (Falcon) at ``/.drivegate/api/v1``
- later ``web/`` (the web app) and ``links/`` (public links), beside them

Shared by the faces, in this package: ``app`` (WSGI assembly, health check,
request log), ``urlspace`` (what lives where, the old aliases), ``auth``
(logins, throttling), ``sameorigin`` (the cross-site guard), ``proxied`` (the
client address behind a trusted proxy); the hostile-input guards that run
before any work: ``pathlimits`` (400/414 for paths over a limit), ``framing``
(ambiguous bodies, long header fields), ``slowclients`` (header timeout,
minimum body rate), ``errorbodies`` (error answers' honest Content-Length);
``sockets`` (cheroot's socket files without copies) and ``cli`` (``drivegate
serve``, ``lock list/break``).
"""

from davserver.app import build_app
from davserver.cli import COMMANDS

__all__ = ["COMMANDS", "build_app"]
