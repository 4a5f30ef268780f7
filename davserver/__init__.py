"""The WebDAV face of drivegate: a WsgiDAV provider over ``core.Drive``, Basic
auth against drivegate users, and the cheroot runner (``drivegate serve``).

Modules: ``provider`` (paths → resources), ``resources`` (files and folders),
``errors`` (the DriveError → HTTP seam), ``auth``, ``app`` (WSGI assembly,
health check, request log), ``pathlimits`` (paths over a limit: 400/414 before
any work), ``errorbodies`` (error answers' honest Content-Length), ``cli``.
"""

from davserver.app import build_app
from davserver.cli import COMMANDS

__all__ = ["COMMANDS", "build_app"]
